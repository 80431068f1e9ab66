from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from admin_portal import selectors
from admin_portal.models import Customer
from tests.admin_portal.factories import BookingFactory, CustomerFactory, WeatherAlertFactory, airport, make_flight

pytestmark = pytest.mark.django_db

DAY = date(2026, 12, 10)
SHANGHAI = ZoneInfo("Asia/Shanghai")


def ids(bookings) -> set[str]:
    return {b.order_id for b in bookings}


def test_passengers_of_a_flight_are_its_ordered_bookings_by_default():
    flight = make_flight(number="MU5159", day=DAY)
    booked = BookingFactory.create_batch(3, flight=flight)
    cancelled = BookingFactory(flight=flight, status="CANCELLED")
    BookingFactory(flight=make_flight(number="MU5159", day=DAY + timedelta(days=1)))

    assert ids(selectors.passenger_list_by_flight(flight_number="MU5159", flight_date=DAY)) == ids(booked)
    assert ids(selectors.passenger_list_by_flight(flight_number="MU5159", flight_date=DAY, status="CANCELLED")) == {cancelled.order_id}
    assert len(selectors.passenger_list_by_flight(flight_number="MU5159", flight_date=DAY, status=None)) == 4


def test_tombstoned_bookings_are_never_passengers():
    flight = make_flight(day=DAY)
    BookingFactory(flight=flight, deleted=True)
    assert not selectors.passenger_list_by_flight(flight_number=flight.flight_number, flight_date=DAY).exists()


def test_a_city_matches_origin_transfer_and_destination_including_a_transfer_only_stop():
    starts = BookingFactory(flight=make_flight(day=DAY, route=("PVG", "PEK")))
    ends = BookingFactory(flight=make_flight(day=DAY, route=("CAN", "SHA")))
    transfers = BookingFactory(flight=make_flight(day=DAY, route=("CAN", "PVG", "NRT")))
    elsewhere = BookingFactory(flight=make_flight(day=DAY, route=("CAN", "PEK")))

    found = ids(selectors.passenger_list_by_city(city="Shanghai", date_from=DAY, date_to=DAY))

    assert found == {starts.order_id, ends.order_id, transfers.order_id}
    assert elsewhere.order_id not in found


def test_a_city_is_matched_by_name_case_insensitively_or_by_one_airport_code():
    pudong = BookingFactory(flight=make_flight(day=DAY, route=("PVG", "PEK")))
    hongqiao = BookingFactory(flight=make_flight(day=DAY, route=("SHA", "PEK")))

    assert ids(selectors.passenger_list_by_city(city="shanghai")) == {pudong.order_id, hongqiao.order_id}
    assert ids(selectors.passenger_list_by_city(city="pvg")) == {pudong.order_id}
    assert not selectors.passenger_list_by_city(city="Atlantis").exists()


def test_a_city_date_range_includes_both_ends_and_nothing_outside():
    on = {
        offset: BookingFactory(flight=make_flight(day=DAY + timedelta(days=offset), route=("CAN", "PVG", "NRT")))
        for offset in (-1, 0, 6, 7)
    }

    found = ids(selectors.passenger_list_by_city(city="PVG", date_from=DAY, date_to=DAY + timedelta(days=6)))

    assert found == {on[0].order_id, on[6].order_id}


def test_weather_selects_ordered_bookings_touching_the_alerted_city_during_the_window():
    now = datetime(2026, 12, 10, 4, 0, tzinfo=ZoneInfo("UTC"))
    WeatherAlertFactory(city="Shanghai", country="CN", valid_from=now - timedelta(hours=1), valid_to=now + timedelta(hours=6))
    airport("SHA")
    through = BookingFactory(flight=make_flight(day=DAY, route=("CAN", "SHA", "NRT")))
    BookingFactory(flight=through.flight, status="CANCELLED")
    BookingFactory(flight=make_flight(day=DAY + timedelta(days=1), route=("PVG", "PEK")))
    BookingFactory(flight=make_flight(day=DAY, route=("CAN", "PEK")))

    assert ids(selectors.passenger_list_by_weather(at=now)) == {through.order_id}


def test_an_alert_window_covers_the_local_days_it_overlaps_and_ends_exclusively():
    # 2026-12-09 16:00 UTC is midnight in Shanghai: the window is exactly the local day of the 10th.
    start = datetime(2026, 12, 9, 16, 0, tzinfo=ZoneInfo("UTC"))
    alert = WeatherAlertFactory(city="", airport=airport("PVG"), valid_from=start, valid_to=start + timedelta(days=1))
    alert.full_clean()
    days = {offset: BookingFactory(flight=make_flight(day=DAY + timedelta(days=offset), route=("PVG", "PEK"))) for offset in (-1, 0, 1)}

    found = ids(selectors.passenger_list_by_alerts(alerts=[alert]))

    assert found == {days[0].order_id}


def test_an_airport_alert_leaves_the_other_airports_of_the_city_alone():
    alert = WeatherAlertFactory(
        city="Shanghai",
        airport=airport("SHA"),
        valid_from=datetime(2026, 12, 10, 0, tzinfo=SHANGHAI),
        valid_to=datetime(2026, 12, 11, 0, tzinfo=SHANGHAI),
    )
    hongqiao = BookingFactory(flight=make_flight(day=DAY, route=("SHA", "PEK")))
    BookingFactory(flight=make_flight(day=DAY, route=("PVG", "PEK")))

    assert ids(selectors.passenger_list_by_alerts(alerts=[alert])) == {hongqiao.order_id}


def test_no_active_alert_means_no_weather_passengers():
    WeatherAlertFactory(valid_from=datetime(2020, 1, 1, tzinfo=ZoneInfo("UTC")), valid_to=datetime(2020, 1, 2, tzinfo=ZoneInfo("UTC")))
    BookingFactory()
    assert not selectors.passenger_list_by_weather().exists()


def test_a_booking_whose_customer_is_not_projected_yet_is_still_a_passenger():
    flight = make_flight(day=DAY)
    orphan = BookingFactory(flight=flight, customer=CustomerFactory.build(customer_id="late"))
    assert not Customer.objects.filter(pk="late").exists()

    [found] = selectors.passenger_list_by_flight(flight_number=flight.flight_number, flight_date=DAY)

    assert found.order_id == orphan.order_id
    assert selectors.customer_of(found) is None


def test_customer_search_matches_an_id_or_a_name_prefix():
    alice = CustomerFactory(customer_id="alice", full_name="Alice Liddell")
    CustomerFactory(customer_id="bob", full_name="Bob Alison")
    CustomerFactory(customer_id="gone", full_name="Alice Gone", deleted=True)

    assert [c.customer_id for c in selectors.customer_list(search="ali")] == [alice.customer_id]
    assert [c.customer_id for c in selectors.customer_list(search="BOB")] == ["bob"]
    assert len(selectors.customer_list()) == 2


def test_a_flight_touching_two_selected_airports_is_listed_and_counted_once():
    # PVG -> SHA touches Shanghai twice; JFK -> LHR is under both alerts below.
    shanghai_hop = BookingFactory(flight=make_flight(day=DAY, route=("PVG", "SHA")))
    atlantic = BookingFactory(flight=make_flight(day=DAY, route=("JFK", "LHR")))
    window = {
        "valid_from": datetime(2026, 12, 10, 12, tzinfo=ZoneInfo("UTC")),
        "valid_to": datetime(2026, 12, 10, 13, tzinfo=ZoneInfo("UTC")),
    }
    alerts = [WeatherAlertFactory(city="", airport=airport(code), **window) for code in ("JFK", "LHR")]

    by_city = selectors.passenger_list_by_city(city="Shanghai", date_from=DAY, date_to=DAY)
    by_alerts = selectors.passenger_list_by_alerts(alerts=alerts)

    assert by_city.count() == 1 and ids(by_city) == {shanghai_hop.order_id}
    assert by_alerts.count() == 1 and ids(by_alerts) == {atlantic.order_id}


def test_a_place_selection_is_counted_by_a_semi_join_on_the_stops(django_assert_num_queries):
    flights = [make_flight(day=DAY + timedelta(days=offset), route=("CAN", "PVG", "NRT")) for offset in range(3)]
    for flight in flights:
        BookingFactory.create_batch(2, flight=flight)
    BookingFactory(flight=flights[0], status="CANCELLED")
    selection = selectors.passenger_list_by_city(city="PVG", date_from=DAY, date_to=DAY + timedelta(days=2))

    with django_assert_num_queries(1) as captured:
        assert selection.count() == 6
    [count_sql] = [query["sql"] for query in captured.captured_queries]
    assert "admin_portal_flightstop" in count_sql  # the stops subquery, not the inlined keys
    assert flights[0].flight_key not in count_sql
    assert len(selection) == 6


def test_a_narrowed_place_selection_counts_itself_not_the_wider_selection():
    flight = make_flight(day=DAY, route=("CAN", "PVG", "NRT"))
    BookingFactory(flight=flight, customer=CustomerFactory(customer_id="alice"))
    BookingFactory(flight=flight)
    selection = selectors.passenger_list_by_city(city="PVG")

    assert selection.count() == 2
    assert selection.filter(customer_id="alice").count() == 1
    assert selection.order_by("order_id")[:1].count() == 1
