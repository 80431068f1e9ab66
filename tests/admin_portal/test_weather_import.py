from datetime import UTC, date, datetime
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from metar import Metar

from admin_portal import selectors, weather
from admin_portal.models import WeatherAlert
from tests.admin_portal.factories import BookingFactory, airport, make_flight

SAMPLES = Path(__file__).resolve().parents[2] / "admin_portal" / "samples"


def import_file(command: str, path: Path) -> str:
    out = StringIO()
    call_command(command, str(path), stdout=out, stderr=StringIO())
    return out.getvalue()


def kinds(report: str) -> set[tuple[str, str]]:
    return {(c.kind, c.severity) for c in weather.metar_conditions(Metar.Metar(report, month=11, year=2026, strict=False))}


@pytest.mark.parametrize(
    ("report", "expected"),
    [
        ("ZSPD 260600Z 09010KT 9999 TS SCT030CB 24/20 Q1008", {("THUNDERSTORM", "SEVERE")}),
        ("CYYZ 260600Z 06012KT 5SM -FZDZ OVC008 M01/M02 A2990", {("FREEZING_RAIN", "SEVERE")}),
        ("RJAA 260600Z 36010KT 2000 +SN OVC010 M03/M04 Q0996", {("SNOW", "SEVERE")}),
        ("RJAA 260600Z 36010KT 3000 -SN OVC010 M03/M04 Q0996", set()),
        ("EGLL 260620Z 00000KT 0750 FG VV002 04/04 Q1031", {("LOW_VISIBILITY", "SEVERE")}),
        ("EGLL 260620Z 00000KT 0800 BR VV002 04/04 Q1031", set()),
        ("KJFK 260551Z 31020G35KT 10SM FEW045 02/M11 A2981", {("HIGH_WIND", "SEVERE")}),
        ("KJFK 260551Z 31020G34KT 10SM FEW045 02/M11 A2981", set()),
        ("KJFK 260551Z 31040G55KT 10SM FEW045 02/M11 A2981", {("HIGH_WIND", "EXTREME")}),
    ],
)
def test_metar_thresholds_raise_alerts_exactly_at_their_documented_limits(report, expected):
    assert kinds(report) == expected


@pytest.mark.django_db
def test_import_metar_raises_alerts_for_the_sample_reports_once():
    first = import_file("import_metar", SAMPLES / "metar.txt")
    again = import_file("import_metar", SAMPLES / "metar.txt")

    assert "created 8" in first and "created 0, existing 8" in again
    pvg = WeatherAlert.objects.filter(airport_id="PVG")
    assert {a.kind for a in pvg} == {"THUNDERSTORM", "LOW_VISIBILITY", "HIGH_WIND"}
    assert all(a.source == "METAR" and a.city == "Shanghai" and a.raw_text.startswith("ZSPD") for a in pvg)
    assert not WeatherAlert.objects.filter(airport_id__in=["PEK", "CAN"]).exists()  # CAVOK and fine weather
    alert = pvg.first()
    assert alert.valid_from == datetime(2026, 11, 26, 6, 0, tzinfo=UTC)
    assert (alert.valid_to - alert.valid_from).total_seconds() == weather.METAR_VALID_HOURS * 3600


@pytest.mark.django_db
def test_an_imported_metar_alert_selects_the_passengers_of_that_airport_on_that_day():
    import_file("import_metar", SAMPLES / "metar.txt")
    hit = BookingFactory(flight=make_flight(day=date(2026, 11, 26), route=("CAN", "PVG", "NRT")))
    BookingFactory(flight=make_flight(day=date(2026, 11, 26), route=("SHA", "PEK")))

    alerts = list(WeatherAlert.objects.filter(airport_id="PVG"))

    assert {b.order_id for b in selectors.passenger_list_by_alerts(alerts=alerts)} == {hit.order_id}


@pytest.mark.django_db
def test_import_cap_maps_a_polygon_to_every_airport_city_inside_it():
    out = import_file("import_cap", SAMPLES / "cap_typhoon_shanghai.xml")

    [alert] = WeatherAlert.objects.all()
    assert "created 1" in out
    assert (alert.city, alert.country, alert.kind, alert.severity, alert.source) == ("Shanghai", "CN", "TYPHOON", "SEVERE", "CAP")
    assert alert.valid_from == datetime(2026, 11, 26, 4, 0, tzinfo=UTC)
    assert alert.valid_to == datetime(2026, 11, 28, 0, 0, tzinfo=UTC)
    assert "Pudong" in alert.raw_text
    airport("SHA")
    hongqiao = BookingFactory(flight=make_flight(day=date(2026, 11, 27), route=("SHA", "PEK")))
    assert [b.order_id for b in selectors.passenger_list_by_alerts(alerts=[alert])] == [hongqiao.order_id]


@pytest.mark.django_db
def test_import_cap_maps_area_descriptions_to_cities_when_there_is_no_geometry():
    import_file("import_cap", SAMPLES / "cap_winter_storm_new_york.xml")
    assert set(WeatherAlert.objects.values_list("city", "kind")) == {("New York", "SNOW"), ("Newark", "SNOW")}


CANCEL = """<alert xmlns="urn:oasis:names:tc:emergency:cap:1.2">
  <identifier>CN-SMB-2026-11-26-TY-0007-C</identifier><sender>typhoon@smb.example.cn</sender>
  <sent>2026-11-26T20:00:00+08:00</sent><status>Actual</status><msgType>Cancel</msgType><scope>Public</scope>
  <references>typhoon@smb.example.cn,CN-SMB-2026-11-26-TY-0007,2026-11-26T08:00:00+08:00</references>
</alert>"""


@pytest.mark.django_db
def test_a_cap_cancel_expires_the_alerts_it_references(tmp_path):
    import_file("import_cap", SAMPLES / "cap_typhoon_shanghai.xml")
    (tmp_path / "cancel.xml").write_text(CANCEL)

    out = import_file("import_cap", tmp_path / "cancel.xml")
    again = import_file("import_cap", tmp_path / "cancel.xml")

    # The alert ends when the Cancel was sent (20:00 in Shanghai), whenever the feed is read.
    [alert] = WeatherAlert.objects.all()
    assert alert.valid_to == datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
    assert selectors.weather_alert_list(active_at=datetime(2026, 11, 26, 11, 59, tzinfo=UTC)).exists()
    assert not selectors.weather_alert_list(active_at=datetime(2026, 11, 26, 12, 0, tzinfo=UTC)).exists()
    assert "expired 1" in out
    assert "expired 0" in again  # replaying the Cancel changes nothing, and says so


@pytest.mark.django_db
def test_a_cap_message_without_a_sent_time_is_refused(tmp_path):
    (tmp_path / "cancel.xml").write_text(CANCEL.replace("<sent>2026-11-26T20:00:00+08:00</sent>", ""))
    with pytest.raises(CommandError, match="no <sent> time"):
        import_file("import_cap", tmp_path / "cancel.xml")


@pytest.mark.django_db
@pytest.mark.parametrize(
    "content",
    [
        "<alert>not cap</alert>",
        "<alert xmlns='urn:oasis:names:tc:emergency:cap:1.2'",
        '<!DOCTYPE x [<!ENTITY a "aaaa"><!ENTITY b "&a;&a;&a;">]><alert xmlns="urn:oasis:names:tc:emergency:cap:1.2">&b;</alert>',
    ],
)
def test_import_cap_refuses_malformed_or_hostile_xml_without_storing_anything(tmp_path, content):
    (tmp_path / "bad.xml").write_text(content)
    with pytest.raises(CommandError):
        import_file("import_cap", tmp_path / "bad.xml")
    assert not WeatherAlert.objects.exists()


@pytest.mark.django_db
def test_a_test_cap_message_is_not_imported(tmp_path):
    sample = (SAMPLES / "cap_typhoon_shanghai.xml").read_text().replace("<status>Actual</status>", "<status>Exercise</status>")
    (tmp_path / "exercise.xml").write_text(sample)
    import_file("import_cap", tmp_path / "exercise.xml")
    assert not WeatherAlert.objects.exists()


def test_import_metar_says_which_file_it_cannot_read(tmp_path):
    with pytest.raises(CommandError, match="cannot read"):
        call_command("import_metar", str(tmp_path / "missing.txt"))
