"""Real, public CAP files and METAR reports (tests/data/weather, origins in SOURCES.md), none
written for this project, imported through the management commands: each file's alerts
(place, kind, severity, window) or its reason for none."""

from datetime import UTC, datetime
from io import StringIO
from pathlib import Path

import pytest
import time_machine
from django.core.management import CommandError, call_command

from admin_portal.models import WeatherAlert, WeatherMessage

DATA = Path(__file__).resolve().parents[1] / "data" / "weather"


def run(command: str, path: Path) -> tuple[str, str]:
    out, err = StringIO(), StringIO()
    call_command(command, str(path), stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


def stored() -> set[tuple]:
    return {
        (a.airport_id or f"{a.city}:{a.country}", a.kind, a.severity, a.valid_from, a.valid_to)
        for a in WeatherAlert.objects.filter(source="CAP")
    }


CANADA_SNOW = {
    (code, "SNOW", "MODERATE", at("2013-01-24T21:26:00+00:00"), at("2013-01-25T13:26:00+00:00")) for code in ("YVC", "YVT", "ZPO")
}
MEXICO_AIRPORTS = ("CJT", "CME", "HUX", "IZT", "MTT", "OAX", "PQM", "PXM", "SZT", "TAP", "TGZ", "VSA")

# file -> (alerts, reasons that must appear on stderr)
CAP_FILES = {
    # ECCC (NAADS), English + French, snowfall Update: one alert per airport inside the
    # polygons, not one per language.
    "canada_signed.cap": (CANADA_SNOW, []),
    "canada_signed.atom": (CANADA_SNOW, []),  # the same message inside an ATOM feed
    # ECCC thunderstorm watch ended: an Update whose responseType is AllClear raises nothing.
    "canada.cap": (set(), []),
    "CanadaNaad.xml": (set(), ["weather: no known airport in its area"]),
    # Icelandic Met Office, Icelandic + English gale warning over the capital region: the
    # domestic airport (RKV) is inside the polygon, Keflavik (KEF) is not.
    "iceland_met_office.cap": ({("RKV", "HIGH_WIND", "MODERATE", at("2021-09-12T18:00:00+00:00"), at("2021-09-13T10:00:00+00:00"))}, []),
    # Mexico's SMN, Spanish tropical storm "Vicente": the polygon holds airports whose city
    # is empty in the airport data (CJT, IZT); they count by IATA code.
    "mexico.xml": (
        {(code, "TYPHOON", "MODERATE", at("2018-10-20T07:15:00-05:00"), at("2018-10-20T10:15:00-05:00")) for code in MEXICO_AIRPORTS},
        [],
    ),
    # NWS hurricane warning with two polygons (Acadia Parish): Eunice's airport only.
    "nws_hurricane_multiple_polygons.xml": (
        {("UCE", "TYPHOON", "EXTREME", at("2020-08-26T04:14:10-05:00"), at("2020-08-26T12:15:00-05:00"))},
        [],
    ),
    # NWS CAP 1.1 flood warning: a flood is weather of no listed kind (OTHER); the window ends
    # with the VTEC event (12 July), not the message's expires (11 August).
    "noaa_errors.cap": ({("WMC", "OTHER", "MODERATE", at("2011-07-09T20:52:00-07:00"), at("2011-07-12T03:15:00+00:00"))}, []),
    # NWS Update whose onset is after its expires: the window runs from the onset to the
    # eventEndingTime parameter (22:00 PST on the 30th), not to expires (23:00 on the 29th).
    "nws_beach_hazards_event_ending.xml": (
        {("San Francisco:US", "OTHER", "MODERATE", at("2020-12-29T18:00:00-08:00"), at("2020-12-30T22:00:00-08:00"))},
        [],
    ),
    "weather.cap": (set(), ["Wind Advisory: no known airport in its area"]),  # NWS, CAP 1.1, no geometry
    "weather.atom": (set(), ["Flash Flood Watch: no known airport in its area"]),  # not VOLCANIC_ASH, not "Central"
    "us_nws_weather.atom": (set(), ["linked http://alerts.weather.gov/cap/wwacapget.php"]),  # an index: links only
    "australia_bom.cap": (set(), ["Thunderstorm: no known airport in its area"]),
    "australia.cap": (set(), ["Fire: no known airport in its area"]),
    "rfs.xml": (set(), ["Other Non-Urgent Alerts: category Other, not weather"]),  # EDXL-DE wrapper
    "bushfire_valid.edxlde": (set(), ["Grassfire: category Fire, not weather"]),  # EDXL-DE, three alerts
    "smhi.se.alerts.cap": (set(), ["heavy snow SMHI-B: no known airport in its area"]),  # SMHI's list of 17 alerts
    "sweden.cap": (set(), ["News: category Other, not weather"]),
    "taiwan.cap": (set(), ["category Infra, not weather"]),
    "earthquake.cap": (set(), ["Earthquake: category Geo, not weather"]),  # USGS, CAP 1.1
    "wcatwc-warning.cap": (set(), []),  # a tsunami Update: not weather, but it ends what it updates
    "amber.atom": (set(), ["Child Abduction: category Rescue, not weather"]),
    "ph.cap": (set(), ["status Test, not Actual"]),
    "no_info_tag.cap": (set(), []),  # a Cancel
}


@pytest.mark.django_db
@pytest.mark.parametrize("name", sorted(CAP_FILES))
def test_each_real_cap_file_gives_its_expected_alerts_or_reasons(name):
    alerts, reasons = CAP_FILES[name]

    out, err = run("import_cap", DATA / "cap" / name)

    assert stored() == alerts
    assert f"created {len(alerts)}" in out
    for reason in reasons:
        assert reason in err


@pytest.mark.django_db
def test_a_bilingual_event_is_one_alert_with_the_english_headline():
    run("import_cap", DATA / "cap" / "canada_signed.cap")

    headlines = set(WeatherAlert.objects.values_list("headline", flat=True))

    assert headlines == {"snowfall warning"}
    assert WeatherAlert.objects.count() == 3


@pytest.mark.django_db
def test_every_message_of_a_list_gets_its_own_reason():
    _out, err = run("import_cap", DATA / "cap" / "smhi.se.alerts.cap")
    assert err.count("no known airport in its area") == 17


@pytest.mark.django_db
def test_update_cancel_and_all_clear_files_record_when_they_end_what_they_reference():
    run("import_cap", DATA / "cap" / "canada.cap")  # AllClear Update, sent 23:21:04 UTC
    run("import_cap", DATA / "cap" / "no_info_tag.cap")  # Cancel

    ended = dict(WeatherMessage.objects.filter(imported_at__isnull=True).values_list("identifier", "ended_at"))

    assert ended["2.49.0.1.124.a3f342a4.2012"] == at("2012-05-02T23:21:04+00:00")
    assert ended["2.49.0.1.124.60f31a3a.2012"] == at("2012-05-02T23:21:04+00:00")
    assert ended["1017033100951096-517189320160225203219800"] == at("2016-02-25T12:47:09-08:00")


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("name", "message"),
    [("invalid_xmlns.cap", "not a CAP 1.1/1.2 alert"), ("pelmorex.atom", "not well-formed")],
)
def test_a_file_that_is_no_cap_document_is_refused_with_its_reason(name, message):
    with pytest.raises(CommandError, match=message):
        run("import_cap", DATA / "cap" / name)
    assert not WeatherAlert.objects.exists()


def metar_alerts() -> set[tuple]:
    return {(a.airport_id, a.kind, a.severity, a.valid_from) for a in WeatherAlert.objects.filter(source="METAR")}


def obs(text: str) -> datetime:
    return datetime.fromisoformat(f"{text}+00:00")


@pytest.mark.django_db
def test_the_us_reports_raise_cat_i_visibility_and_thunderstorm_alerts_dated_by_the_feed():
    # 60 reports from 9 January 2018; the feed's observation_time dates each one, whatever today is.
    out, err = run("import_metar", DATA / "metar" / "adds_2018-01-09_us.json")

    assert metar_alerts() == {
        ("POF", "LOW_VISIBILITY", "SEVERE", obs("2018-01-09 22:45")),  # 1/4SM FG
        ("MVN", "LOW_VISIBILITY", "SEVERE", obs("2018-01-09 22:43")),
        ("JMS", "LOW_VISIBILITY", "SEVERE", obs("2018-01-09 22:42")),
        ("PUC", "LOW_VISIBILITY", "SEVERE", obs("2018-01-09 22:39")),  # 1/4SM -SN FG
        ("KNT", "LOW_VISIBILITY", "SEVERE", obs("2018-01-09 22:35")),
        ("SAR", "LOW_VISIBILITY", "SEVERE", obs("2018-01-09 22:35")),  # 1/2SM: at the CAT I limit
        ("VJI", "LOW_VISIBILITY", "SEVERE", obs("2018-01-09 22:35")),
        ("UTM", "LOW_VISIBILITY", "SEVERE", obs("2018-01-09 22:35")),  # 1/2SM
        ("ALM", "THUNDERSTORM", "SEVERE", obs("2018-01-09 22:35")),  # VCTS
    }
    assert "created 9" in out
    assert err.count("not an airport with an IATA code") == 23  # small fields without an IATA code


@pytest.mark.django_db
def test_the_australian_reports_raise_nothing():
    out, _err = run("import_metar", DATA / "metar" / "adds_2018-01-09_au.json")
    assert "created 0" in out and "skipped 0" in out
    assert not WeatherAlert.objects.exists()


@pytest.mark.django_db
def test_python_metar_s_own_reports_roll_back_to_last_month_on_the_first():
    # Undated reports: the metar package takes this month unless the day is still ahead, so
    # on 1 December "301200Z" is 30 November, never 30 December.
    with time_machine.travel(datetime(2026, 12, 1, 0, 30, tzinfo=UTC), tick=False):
        out, err = run("import_metar", DATA / "metar" / "python_metar_tests.txt")

    assert metar_alerts() == {
        ("EWR", "THUNDERSTORM", "SEVERE", obs("2026-11-11 18:51")),
        ("PIT", "THUNDERSTORM", "SEVERE", obs("2026-11-09 19:55")),
        ("SIN", "THUNDERSTORM", "EXTREME", obs("2026-11-28 09:00")),
        ("SIN", "LOW_VISIBILITY", "SEVERE", obs("2026-11-28 09:00")),  # 600 m
        ("IMF", "SANDSTORM", "SEVERE", obs("2026-11-30 12:00")),
        ("IMF", "HIGH_WIND", "EXTREME", obs("2026-11-30 12:00")),  # squall / funnel cloud
    }
    assert "LOXZ: not an airport with an IATA code" in err
    assert "created 6" in out
