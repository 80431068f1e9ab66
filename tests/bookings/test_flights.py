from datetime import date, timedelta

from bookings import services
from tests.bookings.api import (
    FLIGHTS,
    booking,
    cancel_flight_url,
    error,
    flight_url,
    patch,
    place_order,
    post,
    stored_flight,
    table_items,
)
from tests.factories import flight_data, make_customer, make_flight


def flight_with_bookings(count: int, **overrides) -> dict:
    flight = make_flight(**overrides)
    for index in range(count):
        make_customer(f"c{index}")
        services.order_place(customer_id=f"c{index}", **booking(flight))
    return flight


def test_staff_create_a_flight_scheduled_with_no_seats_booked(staff):
    data = flight_data(origin="pvg", transfers=["xiy"], destination="urc", capacity=180)
    r = post(staff, FLIGHTS, data)
    assert r.status_code == 201, r.json()
    stored = stored_flight(data)
    assert (stored["origin"], stored["transfers"], stored["destination"]) == ("PVG", ["XIY"], "URC")
    assert (stored["status"], stored["capacity"], stored["seats_booked"], stored["version"]) == ("SCHEDULED", 180, 0, 1)
    assert r.json()["status"] == "SCHEDULED"


def test_creating_a_flight_that_exists_is_409_and_keeps_the_first(staff):
    data = flight_data(capacity=50)
    make_flight(**data)
    r = post(staff, FLIGHTS, {**data, "capacity": 70})
    assert r.status_code == 409
    assert error(r)["code"] == "flight_exists"
    assert stored_flight(data)["capacity"] == 50


def test_a_route_that_visits_an_airport_twice_is_400_on_transfers(staff):
    r = post(staff, FLIGHTS, flight_data(origin="PVG", transfers=["PEK"], destination="PEK"))
    assert r.status_code == 400
    assert "transfers" in error(r)["fields"]
    assert table_items() == []


def test_staff_read_a_flight(staff):
    flight = make_flight()
    r = staff.get(flight_url(flight))
    assert r.status_code == 200
    assert r.json()["flight_number"] == flight["flight_number"]


def test_rescheduling_a_flight_marks_it_delayed_and_bumps_its_version(staff):
    flight = make_flight(departure_time="08:00", arrival_time="10:15")
    r = patch(staff, flight_url(flight), {"departure_time": "09:30", "arrival_time": "11:45"})
    assert r.status_code == 200, r.json()
    stored = stored_flight(flight)
    assert (stored["status"], stored["departure_time"], stored["arrival_time"], stored["version"]) == ("DELAYED", "09:30", "11:45", 2)


def test_changing_only_the_capacity_keeps_the_flight_scheduled(staff):
    flight = make_flight(capacity=100)
    r = patch(staff, flight_url(flight), {"capacity": 150})
    assert r.status_code == 200, r.json()
    assert (stored_flight(flight)["status"], stored_flight(flight)["capacity"]) == ("SCHEDULED", 150)


def test_capacity_below_the_seats_booked_is_409(staff):
    flight = flight_with_bookings(3, capacity=10)
    r = patch(staff, flight_url(flight), {"capacity": 2})
    assert r.status_code == 409
    assert error(r)["code"] == "capacity_below_bookings"
    assert stored_flight(flight)["capacity"] == 10


def test_capacity_equal_to_the_seats_booked_is_accepted(staff):
    flight = flight_with_bookings(3, capacity=10)
    assert patch(staff, flight_url(flight), {"capacity": 3}).status_code == 200
    assert stored_flight(flight)["capacity"] == 3


def test_rescheduling_with_a_stale_if_match_is_412(staff):
    flight = make_flight()
    patch(staff, flight_url(flight), {"capacity": 120})
    r = patch(staff, flight_url(flight), {"departure_time": "23:00"}, if_match=1)
    assert r.status_code == 412
    assert stored_flight(flight)["departure_time"] == flight["departure_time"]


def test_rescheduling_an_unknown_flight_is_404(staff):
    r = patch(staff, f"{FLIGHTS}/ZZ999/2030-01-01", {"capacity": 10})
    assert r.status_code == 404
    assert table_items() == []


def test_rescheduling_a_cancelled_flight_is_409(staff):
    flight = make_flight()
    services.flight_cancel(**booking(flight))
    r = patch(staff, flight_url(flight), {"departure_time": "23:00"})
    assert r.status_code == 409
    assert stored_flight(flight)["departure_time"] == flight["departure_time"]


def test_a_delayed_flight_can_still_be_booked(staff, as_customer):
    flight = make_flight()
    patch(staff, flight_url(flight), {"departure_time": "23:00"})
    make_customer("alice")
    r = place_order(as_customer("alice"), "alice", flight)
    assert r.status_code == 201, r.json()
    assert r.json()["departure_time"] == "23:00"


def test_cancelling_a_flight_marks_it_cancelled_and_then_it_cannot_be_booked(staff, as_customer):
    flight = make_flight()
    r = post(staff, cancel_flight_url(flight))
    assert r.status_code == 200, r.json()
    assert r.json()["status"] == stored_flight(flight)["status"] == "CANCELLED"
    make_customer("alice")
    assert place_order(as_customer("alice"), "alice", flight).status_code == 409


def test_cancelling_a_cancelled_flight_is_a_no_op_200(staff):
    flight = make_flight()
    post(staff, cancel_flight_url(flight))
    before = table_items()
    assert post(staff, cancel_flight_url(flight)).status_code == 200
    assert table_items() == before


def test_cancelling_an_unknown_flight_is_404(staff):
    r = post(staff, f"{FLIGHTS}/ZZ999/2030-01-01/cancel")
    assert r.status_code == 404
    assert error(r)["code"] == "not_found"


def test_a_flight_is_dated_by_its_origins_calendar(staff):
    # At its origin it is already tomorrow (UTC+14) while at another airport it is still today
    # (UTC-10): the same date is in the past at one and fine at the other.
    today_at_kiritimati = services.origin_today(origin="CXI")
    today_at_honolulu = services.origin_today(origin="HNL")
    assert today_at_kiritimati > today_at_honolulu
    yesterday_at_kiritimati = (today_at_kiritimati - timedelta(days=1)).isoformat()
    refused = staff.post(FLIGHTS, flight_data(origin="CXI", destination="HNL", flight_date=yesterday_at_kiritimati), format="json")
    assert refused.status_code == 400, refused.json()
    assert "past" in refused.json()["error"]["message"]
    assert "flight_date" in refused.json()["error"]["fields"]
    accepted = staff.post(FLIGHTS, flight_data(origin="HNL", destination="CXI", flight_date=yesterday_at_kiritimati), format="json")
    assert accepted.status_code == 201, accepted.json()


def test_a_flight_can_be_created_for_today_and_up_to_the_horizon(staff):
    today = services.origin_today(origin="PVG")
    latest = date(today.year + services.FLIGHT_HORIZON_YEARS, 12, 31)
    for day in (today, latest):
        r = staff.post(FLIGHTS, flight_data(flight_date=day.isoformat()), format="json")
        assert r.status_code == 201, r.json()
    r = staff.post(FLIGHTS, flight_data(flight_date=(latest + timedelta(days=1)).isoformat()), format="json")
    assert r.status_code == 400
    assert r.json()["error"]["fields"]["flight_date"] == f"must be {latest} or earlier"
