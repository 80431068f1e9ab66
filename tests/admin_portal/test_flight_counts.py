"""The flight page's counts come from one selector, with the query API's definition of
"affected" (ORDERED bookings)."""

import pytest

from admin_portal import selectors, services
from admin_portal.models import Booking
from tests.admin_portal.factories import BookingFactory, CustomerFactory, FlightEventFactory, make_flight

pytestmark = pytest.mark.django_db


def test_the_counts_split_bookings_by_status_and_count_the_unreachable_and_notified_among_the_affected(staff_api):
    flight = make_flight(number="MU5159")
    other = make_flight(number="MU5160", day=flight.flight_date)
    live = BookingFactory.create_batch(3, flight=flight)
    BookingFactory(flight=flight, customer=CustomerFactory(email=""))
    BookingFactory.create_batch(2, flight=flight, status="CANCELLED")
    BookingFactory(flight=flight, deleted=True)
    BookingFactory(flight=other)
    services.passengers_notify(
        bookings=Booking.objects.filter(pk__in=[b.pk for b in live[:2]]), reason="message:x", subject="Gate", message="B12"
    )

    counts = selectors.flight_passenger_counts(flight=flight)

    assert (counts.by_status, counts.ordered, counts.total) == ({"ORDERED": 4, "CANCELLED": 2}, 4, 6)
    assert (counts.no_email, counts.notified) == (1, 2)
    api = staff_api.get("/api/v1/query/passengers", {"flight_number": "MU5159", "flight_date": flight.flight_date.isoformat()})
    assert api.json()["count"] == counts.ordered


def test_a_flight_with_no_bookings_counts_zero_of_each_status():
    counts = selectors.flight_passenger_counts(flight=make_flight())
    assert counts.by_status == {"ORDERED": 0, "CANCELLED": 0} and counts.no_email == counts.notified == 0


def test_the_booked_schedule_is_the_one_before_the_first_change():
    flight = make_flight()
    assert selectors.flight_booked_schedule(flight=flight) == {"departure_time": "08:00", "arrival_time": "12:30"}
    change = {
        "from": {"departure_time": "07:15:00", "arrival_time": "11:40:00"},
        "to": {"departure_time": "08:00", "arrival_time": "12:30"},
    }
    FlightEventFactory(flight=flight, kind="DELAYED", flight_created_at=flight.created_at, detail=change)
    assert selectors.flight_booked_schedule(flight=flight) == {"departure_time": "07:15", "arrival_time": "11:40"}


def test_the_notice_summary_counts_each_reason_once_per_status():
    flight = make_flight()
    BookingFactory.create_batch(2, flight=flight)
    BookingFactory(flight=flight, customer=CustomerFactory(email=""))
    services.passengers_notify(bookings=selectors.flight_bookings(flight=flight), reason="message:y", subject="Lounge", message="Food")

    [summary] = selectors.flight_notice_summary(flight=flight)

    assert (summary["subject"], summary["sent"], summary["failed"], summary["pending"]) == ("Lounge", 2, 1, 0)
