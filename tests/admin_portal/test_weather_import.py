from datetime import UTC, date, datetime, timedelta
from io import StringIO
from pathlib import Path

import pytest
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command

from admin_portal import selectors, services, weather
from admin_portal.models import WeatherAlert, WeatherMessage
from tests.admin_portal.factories import BookingFactory, make_flight

SAMPLES = Path(__file__).resolve().parents[2] / "admin_portal" / "samples"


def import_file(command: str, path: Path) -> str:
    return run(command, path)[0]


def run(command: str, path: Path) -> tuple[str, str]:
    out, err = StringIO(), StringIO()
    call_command(command, str(path), stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def kinds(report: str) -> set[tuple[str, str]]:
    return {(c.kind, c.severity) for c in weather.metar_conditions(weather.read_metar(report, month=11, year=2026))}


@pytest.mark.parametrize(
    ("report", "expected"),
    [
        ("ZSPD 260600Z 09010KT 9999 TS SCT030CB 24/20 Q1008", {("THUNDERSTORM", "SEVERE")}),
        ("CYYZ 260600Z 06012KT 5SM -FZDZ OVC008 M01/M02 A2990", {("FREEZING_RAIN", "SEVERE")}),
        ("RJAA 260600Z 36010KT 2000 +SN OVC010 M03/M04 Q0996", {("SNOW", "SEVERE")}),
        ("RJAA 260600Z 36010KT 3000 -SN OVC010 M03/M04 Q0996", set()),
        # CAT I: 800 m (ICAO) / 1/2 SM (FAA) visibility, 550 m RVR; below CAT II (300 m RVR) EXTREME.
        ("EGLL 260620Z 00000KT 0750 FG VV002 04/04 Q1031", {("LOW_VISIBILITY", "SEVERE")}),
        ("EGLL 260620Z 00000KT 0800 BR VV002 04/04 Q1031", {("LOW_VISIBILITY", "SEVERE")}),
        ("EGLL 260620Z 00000KT 0900 BR VV002 04/04 Q1031", set()),
        ("KJFK 260551Z 31010KT 1/2SM FG VV002 02/02 A2981", {("LOW_VISIBILITY", "SEVERE")}),
        ("KJFK 260551Z 31010KT 3/4SM BR OVC004 02/02 A2981", set()),
        ("EGLL 260620Z 00000KT 1200 R27L/0500 BR VV002 04/04 Q1031", {("LOW_VISIBILITY", "SEVERE")}),
        ("EGLL 260620Z 00000KT 0350 R27L/0175 FG VV001 04/04 Q1031", {("LOW_VISIBILITY", "EXTREME")}),
        ("KJFK 260551Z 31010KT 1SM R04R/1600FT BR OVC002 02/02 A2981", {("LOW_VISIBILITY", "SEVERE")}),
        ("KJFK 260551Z 31020G35KT 10SM FEW045 02/M11 A2981", {("HIGH_WIND", "SEVERE")}),
        ("KJFK 260551Z 31020G34KT 10SM FEW045 02/M11 A2981", set()),
        ("KJFK 260551Z 31040G55KT 10SM FEW045 02/M11 A2981", {("HIGH_WIND", "EXTREME")}),
        # No unit: knots (ICAO's default), not m/s (which would make 40 a 78 kt EXTREME gust).
        ("EDDF 260550Z 26026G40 9999 FEW045 02/M11 Q1001", {("HIGH_WIND", "SEVERE")}),
        ("EDDF 260550Z 26026G40KT 9999 FEW045 02/M11 Q1001", {("HIGH_WIND", "SEVERE")}),
        ("UUEE 260550Z 26012G20MPS 9999 FEW045 02/M11 Q1001", {("HIGH_WIND", "SEVERE")}),
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
@pytest.mark.parametrize(
    ("today", "report", "observed"),
    [
        ("2026-12-01T00:30Z", "ZSPD 301200Z 09028G42KT 9999 FEW030 24/20 Q1008", "2026-11-30T12:00Z"),
        ("2027-01-01T00:30Z", "ZSPD 311200Z 09028G42KT 9999 FEW030 24/20 Q1008", "2026-12-31T12:00Z"),
        ("2026-03-05T00:30Z", "ZSPD 311200Z 09028G42KT 9999 FEW030 24/20 Q1008", "2026-01-31T12:00Z"),
        ("2026-12-15T09:00Z", "ZSPD 150600Z 09028G42KT 9999 FEW030 24/20 Q1008", "2026-12-15T06:00Z"),
    ],
)
def test_an_undated_metar_is_dated_by_the_metar_package_rolling_back_to_last_month(tmp_path, time_machine, today, report, observed):
    time_machine.move_to(datetime.fromisoformat(today), tick=False)
    (tmp_path / "metar.txt").write_text(report + "\n")

    import_file("import_metar", tmp_path / "metar.txt")

    [alert] = WeatherAlert.objects.all()
    assert alert.valid_from == datetime.fromisoformat(observed)  # never a phantom alert weeks ahead


@pytest.mark.django_db
def test_aviationweather_json_dates_each_report_by_its_obstime(tmp_path):
    (tmp_path / "metar.json").write_text(
        '[{"icaoId": "ZSPD", "obsTime": 1796040000, "rawOb": "ZSPD 301200Z 09028G42KT 9999 FEW030 24/20 Q1008"}]'
    )
    import_file("import_metar", tmp_path / "metar.json")
    [alert] = WeatherAlert.objects.all()
    assert alert.valid_from == datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


@pytest.mark.django_db
def test_an_imported_metar_alert_selects_the_passengers_of_that_airport_on_that_day():
    import_file("import_metar", SAMPLES / "metar.txt")
    hit = BookingFactory(flight=make_flight(day=date(2026, 11, 26), route=("CAN", "PVG", "NRT")))
    BookingFactory(flight=make_flight(day=date(2026, 11, 26), route=("SHA", "PEK")))

    alerts = list(WeatherAlert.objects.filter(airport_id="PVG"))

    assert {b.order_id for b in selectors.passenger_list_by_alerts(alerts=alerts)} == {hit.order_id}


# --- CAP --------------------------------------------------------------------------------------

TYPHOON = (SAMPLES / "cap_typhoon_shanghai.xml").read_text()
PVG_ONLY = "31.00,121.60 31.30,121.60 31.30,122.00 31.00,122.00 31.00,121.60"  # Pudong, not Hongqiao


def cap(tmp_path: Path, text: str, name: str = "alert.xml") -> Path:
    (tmp_path / name).write_text(text)
    return tmp_path / name


def update(*, identifier: str, sent: str, references: str, body: str) -> str:
    return f"""<alert xmlns="urn:oasis:names:tc:emergency:cap:1.2">
  <identifier>{identifier}</identifier><sender>typhoon@smb.example.cn</sender><sent>{sent}</sent>
  <status>Actual</status><msgType>Update</msgType><scope>Public</scope>
  <references>{references}</references>{body}
</alert>"""


ORIGINAL_REF = "typhoon@smb.example.cn,CN-SMB-2026-11-26-TY-0007,2026-11-26T08:00:00+08:00"
UPGRADE_INFO = """<info><language>en-US</language><category>Met</category><event>Typhoon Red Warning</event>
  <urgency>Immediate</urgency><severity>Extreme</severity><certainty>Observed</certainty>
  <onset>2026-11-26T16:00:00+08:00</onset><expires>2026-11-28T20:00:00+08:00</expires>
  <headline>Typhoon Red Warning for Pudong</headline>
  <area><areaDesc>Pudong</areaDesc><polygon>31.00,121.60 31.30,121.60 31.30,122.00 31.00,122.00 31.00,121.60</polygon></area></info>"""
ALL_CLEAR_INFO = """<info><language>en-US</language><category>Met</category><event>Typhoon Warning</event>
  <responseType>AllClear</responseType><urgency>Past</urgency><severity>Minor</severity><certainty>Observed</certainty>
  <area><areaDesc>Shanghai</areaDesc></area></info>"""


@pytest.mark.django_db
def test_import_cap_maps_a_polygon_to_the_airports_inside_it():
    out = import_file("import_cap", SAMPLES / "cap_typhoon_shanghai.xml")

    alerts = WeatherAlert.objects.order_by("airport_id")
    assert "created 2" in out
    assert [(a.airport_id, a.city, a.country, a.kind, a.severity, a.source) for a in alerts] == [
        ("PVG", "Shanghai", "CN", "TYPHOON", "SEVERE", "CAP"),
        ("SHA", "Shanghai", "CN", "TYPHOON", "SEVERE", "CAP"),
    ]
    alert = alerts[0]
    assert alert.valid_from == datetime(2026, 11, 26, 4, 0, tzinfo=UTC)
    assert alert.valid_to == datetime(2026, 11, 28, 0, 0, tzinfo=UTC)
    assert "Pudong" in alert.raw_text
    hongqiao = BookingFactory(flight=make_flight(day=date(2026, 11, 27), route=("SHA", "PEK")))
    assert [b.order_id for b in selectors.passenger_list_by_alerts(alerts=list(alerts))] == [hongqiao.order_id]


@pytest.mark.django_db
def test_a_polygon_marks_only_the_airports_inside_it_not_every_airport_of_their_city(tmp_path):
    path = cap(tmp_path, TYPHOON.replace("30.68,120.85 31.88,120.85 31.88,122.00 30.68,122.00 30.68,120.85", PVG_ONLY))

    import_file("import_cap", path)

    [alert] = WeatherAlert.objects.all()
    assert alert.airport_id == "PVG"
    BookingFactory(flight=make_flight(day=date(2026, 11, 27), route=("SHA", "PEK")))
    assert not selectors.passenger_list_by_alerts(alerts=[alert]).exists()


@pytest.mark.django_db
def test_import_cap_maps_area_descriptions_to_cities_when_there_is_no_geometry():
    import_file("import_cap", SAMPLES / "cap_winter_storm_new_york.xml")
    assert set(WeatherAlert.objects.values_list("city", "kind")) == {("New York", "SNOW"), ("Newark", "SNOW")}


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("Flash Flood Warning", None),
        ("Ashfall Advisory", "VOLCANIC_ASH"),
        ("Tropical Storm Warning", "TYPHOON"),
        ("Winter Storm Warning", "SNOW"),
        ("Dust Storm Warning", "SANDSTORM"),
        ("High Wind Warning", "HIGH_WIND"),
        ("avertissement d'orages violents", "THUNDERSTORM"),
        ("Aviso de Ciclón Tropical en el Pacífico", "TYPHOON"),
        ("Veðurviðvörun: Vindur", "HIGH_WIND"),
        ("Washington Dense Fog Advisory", "LOW_VISIBILITY"),
    ],
)
def test_event_text_is_matched_on_whole_words_in_several_languages(text, kind):
    assert weather.cap_text_kind(text) == kind


@pytest.mark.django_db
def test_a_flash_flood_warning_with_its_nws_code_is_other_weather_not_volcanic_ash(tmp_path):
    flood = TYPHOON.replace("<event>Typhoon Orange Warning</event>", "<event>Flash Flood Warning</event>").replace(
        "<responseType>", "<eventCode><valueName>SAME</valueName><value>FFW</value></eventCode><responseType>"
    )
    import_file("import_cap", cap(tmp_path, flood))
    assert set(WeatherAlert.objects.values_list("kind", flat=True)) == {"OTHER"}


CANCEL = """<alert xmlns="urn:oasis:names:tc:emergency:cap:1.2">
  <identifier>CN-SMB-2026-11-26-TY-0007-C</identifier><sender>typhoon@smb.example.cn</sender>
  <sent>2026-11-26T20:00:00+08:00</sent><status>Actual</status><msgType>Cancel</msgType><scope>Public</scope>
  <references>typhoon@smb.example.cn,CN-SMB-2026-11-26-TY-0007,2026-11-26T08:00:00+08:00</references>
</alert>"""


@pytest.mark.django_db
def test_a_cap_cancel_ends_the_alerts_it_references_at_its_own_sent_time(tmp_path):
    import_file("import_cap", SAMPLES / "cap_typhoon_shanghai.xml")

    out = import_file("import_cap", cap(tmp_path, CANCEL))
    again = import_file("import_cap", cap(tmp_path, CANCEL))

    # The alerts end when the Cancel was sent (20:00 in Shanghai), whenever the feed is read.
    assert {a.valid_to for a in WeatherAlert.objects.all()} == {datetime(2026, 11, 26, 12, 0, tzinfo=UTC)}
    assert selectors.weather_alert_list(active_at=datetime(2026, 11, 26, 11, 59, tzinfo=UTC)).exists()
    assert not selectors.weather_alert_list(active_at=datetime(2026, 11, 26, 12, 0, tzinfo=UTC)).exists()
    assert "ended 2" in out
    assert "ended 0" in again  # replaying the Cancel changes nothing, and says so


@pytest.mark.django_db
def test_an_update_replaces_the_alerts_it_references_from_its_sent_time(tmp_path):
    import_file("import_cap", SAMPLES / "cap_typhoon_shanghai.xml")
    upgrade = update(identifier="CN-SMB-2026-11-26-TY-0008", sent="2026-11-26T14:00:00+08:00", references=ORIGINAL_REF, body=UPGRADE_INFO)

    out = import_file("import_cap", cap(tmp_path, upgrade))

    assert "created 1" in out and "updated 2" in out
    old = WeatherAlert.objects.filter(source_id__startswith="CN-SMB-2026-11-26-TY-0007#")
    assert {a.valid_to for a in old} == {datetime(2026, 11, 26, 6, 0, tzinfo=UTC)}  # 14:00 in Shanghai
    [new] = WeatherAlert.objects.filter(source_id__startswith="CN-SMB-2026-11-26-TY-0008#")
    assert (new.airport_id, new.severity, new.valid_from, new.valid_to) == (
        "PVG",
        "EXTREME",
        datetime(2026, 11, 26, 8, 0, tzinfo=UTC),
        datetime(2026, 11, 28, 12, 0, tzinfo=UTC),
    )


@pytest.mark.django_db
def test_an_all_clear_update_ends_what_it_references_and_raises_nothing(tmp_path):
    import_file("import_cap", SAMPLES / "cap_typhoon_shanghai.xml")
    clear = update(identifier="CN-SMB-2026-11-26-TY-0009", sent="2026-11-27T08:00:00+08:00", references=ORIGINAL_REF, body=ALL_CLEAR_INFO)

    out = import_file("import_cap", cap(tmp_path, clear))

    assert "created 0" in out and "ended 2" in out
    assert WeatherAlert.objects.count() == 2
    assert {a.valid_to for a in WeatherAlert.objects.all()} == {datetime(2026, 11, 27, 0, 0, tzinfo=UTC)}


@pytest.mark.django_db
def test_a_message_arriving_after_the_update_that_replaced_it_raises_nothing_past_that_update(tmp_path):
    upgrade = update(identifier="CN-SMB-2026-11-26-TY-0008", sent="2026-11-26T14:00:00+08:00", references=ORIGINAL_REF, body=UPGRADE_INFO)
    import_file("import_cap", cap(tmp_path, upgrade))

    import_file("import_cap", SAMPLES / "cap_typhoon_shanghai.xml")  # the original, late

    old = WeatherAlert.objects.filter(source_id__startswith="CN-SMB-2026-11-26-TY-0007#")
    assert {(a.valid_from, a.valid_to) for a in old} == {
        (datetime(2026, 11, 26, 4, 0, tzinfo=UTC), datetime(2026, 11, 26, 6, 0, tzinfo=UTC))
    }


@pytest.mark.django_db
def test_an_alert_whose_onset_is_after_its_expires_lasts_from_the_onset(tmp_path):
    late = TYPHOON.replace("<expires>2026-11-28T08:00:00+08:00</expires>", "<expires>2026-11-26T10:00:00+08:00</expires>")

    import_file("import_cap", cap(tmp_path, late))

    alert = WeatherAlert.objects.first()
    assert alert.valid_from == datetime(2026, 11, 26, 4, 0, tzinfo=UTC)
    assert alert.valid_to == alert.valid_from + timedelta(hours=weather.CAP_DEFAULT_HOURS)


@pytest.mark.django_db
def test_a_message_is_stored_whole_or_not_at_all_and_the_others_still_go(tmp_path):
    good = weather.parse_cap_xml(TYPHOON.encode())
    bad = weather.parse_cap_xml(TYPHOON.replace("CN-SMB-2026-11-26-TY-0007", "BROKEN-1").encode())
    bad.messages[0].drafts[1].kind = "NOT-A-KIND"  # its second alert is refused by the model
    report = weather.ImportReport(messages=bad.messages + good.messages)

    counts = services.weather_alerts_import(report=report)

    assert (counts.created, counts.skipped) == (2, 1)
    assert counts.reasons[0].startswith("BROKEN-1: kind")
    assert not WeatherAlert.objects.filter(source_id__startswith="BROKEN-1#").exists()
    assert not WeatherMessage.objects.filter(identifier="BROKEN-1").exists()


@pytest.mark.django_db
def test_a_cap_message_without_a_sent_time_is_refused_with_its_reason(tmp_path):
    _out, err = run("import_cap", cap(tmp_path, CANCEL.replace("<sent>2026-11-26T20:00:00+08:00</sent>", "")))
    assert "CN-SMB-2026-11-26-TY-0007-C: no <sent> time" in err


@pytest.mark.django_db
def test_cap_1_0_is_refused_as_unsupported(tmp_path):
    old = TYPHOON.replace("urn:oasis:names:tc:emergency:cap:1.2", "http://www.incident.com/cap/1.0")
    with pytest.raises(CommandError, match="CAP 1.0 is not supported"):
        import_file("import_cap", cap(tmp_path, old))


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
    import_file("import_cap", cap(tmp_path, TYPHOON.replace("<status>Actual</status>", "<status>Exercise</status>")))
    assert not WeatherAlert.objects.exists()


@pytest.mark.django_db
def test_passengers_of_one_event_are_notified_once_though_it_covers_two_of_their_airports():
    import_file("import_cap", SAMPLES / "cap_typhoon_shanghai.xml")
    BookingFactory(flight=make_flight(day=date(2026, 11, 27), route=("SHA", "PVG")))

    sent = [services.weather_alert_notify(alert=alert) for alert in WeatherAlert.objects.order_by("airport_id")]

    assert [(r.sent, r.skipped) for r in sent] == [(1, 0), (0, 1)]


def test_import_metar_says_which_file_it_cannot_read(tmp_path):
    with pytest.raises(CommandError, match="cannot read"):
        call_command("import_metar", str(tmp_path / "missing.txt"))


@pytest.mark.django_db
def test_every_way_in_refuses_an_alert_whose_city_is_not_its_airports():
    # The admin, the importers and the API all store alerts through this service.
    window = {"valid_from": datetime(2030, 1, 1, tzinfo=UTC), "valid_to": datetime(2030, 1, 2, tzinfo=UTC)}
    with pytest.raises(ValidationError) as refused:
        services.weather_alert_create(kind="SNOW", severity="SEVERE", city="Beijing", airport="PVG", **window)
    assert "city" in refused.value.message_dict
    with pytest.raises(ValidationError):
        services.weather_alert_create(kind="SNOW", severity="SEVERE", city="Atlantis", **window)
    alert = services.weather_alert_create(kind="SNOW", severity="SEVERE", city="shanghai", airport="PVG", **window)
    assert [a.pk for a in selectors.weather_alert_list(city="Shanghai")] == [alert.pk]
    assert not selectors.weather_alert_list(city="Beijing").exists()
