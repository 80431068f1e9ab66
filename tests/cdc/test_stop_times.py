"""Each stop is on the local date (and at the local time) the flight is there: overnight
arrivals on the next day, flights across the date line, transfers that the flight may pass on
either side of midnight. Projected through the CDC handler and asked through the selectors the
admin, the query API and the weather notices use. Runs on MariaDB and on SQLite."""

from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from admin_portal import selectors
from admin_portal.models import AlertKind, FlightStop, Severity, WeatherAlert
from cdc_lambda import rebuild
from cdc_lambda.handler import handler
from tests.cdc.changes import Items, event
from tests.cdc.test_stream import sync
from tests.factories import make_flight

pytestmark = pytest.mark.django_db(transaction=True)

DAY = date(2026, 12, 1)
NEXT_DAY = DAY + timedelta(days=1)
SHANGHAI = ZoneInfo("Asia/Shanghai")


def apply(records: list[dict]) -> None:
    assert handler(event(records), None) == {"batchItemFailures": []}


def stops(number: str, day: date = DAY) -> list[tuple]:
    rows = FlightStop.objects.filter(flight_id=f"{number}#{day}").order_by("seq", "flight_date")
    return list(rows.values_list("airport_id", "kind", "flight_date", "local_time"))


def overnight_to_shanghai(items: Items) -> list[dict]:
    """PEK 23:30 -> PVG 01:45 the next morning, with one passenger."""
    return [
        items.flight("MU5101", origin="PEK", transfers=[], destination="PVG", departure_time="23:30", arrival_time="01:45"),
        items.order("alice", "o1", number="MU5101", origin="PEK", transfers=[], destination="PVG"),
    ]


def shanghai_alert(day: date, start: int, end: int) -> WeatherAlert:
    return WeatherAlert.objects.create(
        city="Shanghai",
        country="CN",
        kind=AlertKind.TYPHOON,
        severity=Severity.EXTREME,
        valid_from=datetime.combine(day, time(start), SHANGHAI),
        valid_to=datetime.combine(day, time(end), SHANGHAI),
    )


def test_an_overnight_flight_arrives_on_the_next_local_day():
    apply(overnight_to_shanghai(Items()))
    assert stops("MU5101") == [("PEK", "ORIGIN", DAY, time(23, 30)), ("PVG", "DESTINATION", NEXT_DAY, time(1, 45))]


def test_a_weather_alert_on_the_arrival_morning_catches_the_overnight_passengers():
    apply(overnight_to_shanghai(Items()))
    alert = shanghai_alert(NEXT_DAY, 0, 6)
    assert [b.order_id for b in selectors.passenger_list_by_alerts(alerts=[alert])] == ["o1"]


def test_a_weather_alert_in_the_arrival_city_on_the_departure_day_does_not():
    apply(overnight_to_shanghai(Items()))
    alert = shanghai_alert(DAY, 0, 6)
    assert list(selectors.passenger_list_by_alerts(alerts=[alert])) == []


def test_a_city_query_finds_an_overnight_flight_on_the_local_date_it_is_there():
    apply(overnight_to_shanghai(Items()))
    on_arrival_day = selectors.passenger_list_by_city(city="Shanghai", date_from=NEXT_DAY, date_to=NEXT_DAY)
    on_departure_day = selectors.passenger_list_by_city(city="Shanghai", date_from=DAY, date_to=DAY)
    assert ([b.order_id for b in on_arrival_day], list(on_departure_day)) == (["o1"], [])


def test_an_eastbound_flight_across_the_pacific_arrives_two_local_days_later():
    # LAX 23:00 (UTC-8) is 07:00 UTC the next day; 14 hours later it is 05:00 in Shanghai, two local days on.
    apply([Items().flight("MU586", origin="LAX", transfers=[], destination="PVG", departure_time="23:00", arrival_time="05:00")])
    assert stops("MU586")[-1] == ("PVG", "DESTINATION", DAY + timedelta(days=2), time(5, 0))


def test_a_westbound_flight_across_the_date_line_arrives_on_the_local_day_before():
    # HND 00:30 (UTC+9) is 15:30 UTC the day before; seven hours later it is 12:30 in Honolulu (UTC-10), still that day.
    apply([Items().flight("NH186", origin="HND", transfers=[], destination="HNL", departure_time="00:30", arrival_time="12:30")])
    assert stops("NH186") == [("HND", "ORIGIN", DAY, time(0, 30)), ("HNL", "DESTINATION", DAY - timedelta(days=1), time(12, 30))]


def test_a_transfer_the_flight_may_pass_either_side_of_midnight_is_on_both_local_dates():
    apply([Items().flight("CA1505", origin="PEK", transfers=["XIY"], destination="KMG", departure_time="22:00", arrival_time="03:00")])
    assert stops("CA1505") == [
        ("PEK", "ORIGIN", DAY, time(22, 0)),
        ("XIY", "TRANSFER", DAY, None),
        ("XIY", "TRANSFER", NEXT_DAY, None),
        ("KMG", "DESTINATION", NEXT_DAY, time(3, 0)),
    ]


def test_a_transfer_in_another_time_zone_takes_that_zones_dates():
    # PVG 20:00 (12:00 UTC) -> DXB -> LHR 06:00 (06:00 UTC): 16:00 to 10:00 in Dubai, over its midnight.
    apply([Items().flight("MU551", origin="PVG", transfers=["DXB"], destination="LHR", departure_time="20:00", arrival_time="06:00")])
    assert [(code, day) for code, kind, day, _ in stops("MU551") if kind == "TRANSFER"] == [("DXB", DAY), ("DXB", NEXT_DAY)]


def test_a_daytime_transfer_is_on_its_one_local_date():
    apply([Items().flight("CA1501", origin="PEK", transfers=["XIY"], destination="KMG", departure_time="10:15", arrival_time="16:30")])
    assert [(code, day) for code, _, day, _ in stops("CA1501")] == [("PEK", DAY), ("XIY", DAY), ("KMG", DAY)]


def test_a_delay_past_midnight_moves_the_arrival_to_the_next_day():
    items = Items()
    evening = items.flight("MU5102", origin="PEK", transfers=[], destination="PVG", departure_time="20:00", arrival_time="22:15")
    apply([evening])
    assert stops("MU5102")[-1][2] == DAY
    apply([items.flight("MU5102", departure_time="23:30", arrival_time="01:45", status="DELAYED")])
    assert stops("MU5102")[-1] == ("PVG", "DESTINATION", NEXT_DAY, time(1, 45))


# --- reconcile knows the rule -----------------------------------------------------------------


def overnight_flight_through_xian() -> str:
    flight = make_flight(origin="PEK", transfers=["XIY"], destination="KMG", departure_time="22:00", arrival_time="03:00")
    sync()
    return f"{flight['flight_number']}#{flight['flight_date']}"


def test_reconcile_sees_no_difference_in_a_transfer_stored_on_two_local_dates(aws_env):
    key = overnight_flight_through_xian()
    assert FlightStop.objects.filter(flight_id=key, seq=1).count() == 2
    assert rebuild.reconcile(segments=1).differences == 0


def test_reconcile_repairs_stops_left_on_the_departure_date(aws_env):
    key = overnight_flight_through_xian()
    departure_day = FlightStop.objects.get(flight_id=key, seq=0).flight_date
    # What the projection wrote before stops had local dates: every stop on the departure date.
    FlightStop.objects.filter(flight_id=key, seq=1, flight_date__gt=departure_day).delete()
    FlightStop.objects.filter(flight_id=key, flight_date__gt=departure_day).update(flight_date=departure_day)

    found = rebuild.reconcile(segments=1)
    repaired = rebuild.reconcile(segments=1, repair=True)

    assert found.counts == {"FLIGHT": {"stops": 1}}
    assert repaired.repaired == 1
    assert [
        (code, day - departure_day)
        for code, day in FlightStop.objects.filter(flight_id=key).order_by("seq", "flight_date").values_list("airport_id", "flight_date")
    ] == [
        ("PEK", timedelta(0)),
        ("XIY", timedelta(0)),
        ("XIY", timedelta(days=1)),
        ("KMG", timedelta(days=1)),
    ]
    assert rebuild.reconcile(segments=1).differences == 0
