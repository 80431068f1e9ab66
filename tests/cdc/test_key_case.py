"""Keys compare the way DynamoDB compares them: byte for byte. `Alice` and `alice` are two
customers on the command side, so they are two rows here, with their own bookings and their
own notices. Runs on MariaDB (whose default collation ignores case) and on SQLite."""

import pytest
from django.core import mail

from admin_portal import selectors, services
from admin_portal.models import Booking, Customer, Flight, FlightStop, Notification
from cdc_lambda.handler import handler
from tests.cdc.changes import Items, event

pytestmark = pytest.mark.django_db(transaction=True)

NO_FAILURES = {"batchItemFailures": []}


def apply(records: list[dict]) -> None:
    assert handler(event(records), None) == NO_FAILURES


def two_customers_differing_in_case(items: Items) -> list[dict]:
    return [
        items.customer("Alice", full_name="Upper Case", email="upper@example.com"),
        items.customer("alice", full_name="Lower Case", email="lower@example.com"),
    ]


def test_customer_ids_that_differ_only_in_case_are_two_customers():
    items = Items()
    apply(two_customers_differing_in_case(items))
    emails = dict(Customer.objects.values_list("customer_id", "email"))
    assert emails == {"Alice": "upper@example.com", "alice": "lower@example.com"}
    assert Customer.objects.get(pk="Alice").full_name == "Upper Case"


def test_a_flight_cancellation_notifies_each_of_them_at_their_own_address():
    items = Items()
    apply(
        [
            *two_customers_differing_in_case(items),
            items.flight("MU5159"),
            items.order("Alice", "o-upper", number="MU5159"),
            items.order("alice", "o-lower", number="MU5159"),
        ]
    )
    apply([items.flight("MU5159", status="CANCELLED")])

    services.flight_events_process()

    assert sorted(m.to[0] for m in mail.outbox) == ["lower@example.com", "upper@example.com"]
    sent = dict(Notification.objects.values_list("customer_id", "recipient"))
    assert sent == {"Alice": "upper@example.com", "alice": "lower@example.com"}
    assert set(Notification.objects.values_list("status", flat=True)) == {"SENT"}


def test_order_ids_that_differ_only_in_case_are_two_bookings():
    items = Items()
    apply([items.order("alice", "Order1"), items.order("alice", "order1", status="CANCELLED")])
    assert dict(Booking.objects.values_list("order_id", "status")) == {"Order1": "ORDERED", "order1": "CANCELLED"}


def test_flight_numbers_that_differ_only_in_case_are_two_flights_with_their_own_stops_and_bookings():
    items = Items()
    apply(
        [
            items.flight("MU1", origin="SHA", transfers=[], destination="PEK"),
            items.flight("mu1", origin="CAN", transfers=[], destination="CTU"),
            items.order("alice", "o1", number="MU1"),
            items.order("bob", "o2", number="mu1"),
        ]
    )
    assert Flight.objects.count() == 2
    routes = {
        key: sorted(FlightStop.objects.filter(flight_id=key).values_list("airport_id", flat=True))
        for key in ("MU1#2026-12-01", "mu1#2026-12-01")
    }
    assert routes == {"MU1#2026-12-01": ["PEK", "SHA"], "mu1#2026-12-01": ["CAN", "CTU"]}
    assert [b.customer_id for b in Booking.objects.filter(flight_id="mu1#2026-12-01")] == ["bob"]


def test_the_admin_search_for_a_customer_id_finds_that_customer_and_not_the_other_case():
    items = Items()
    apply([*two_customers_differing_in_case(items), items.order("Alice", "o-upper"), items.order("alice", "o-lower")])
    found = selectors.booking_search(bookings=Booking.objects.all(), term="alice")
    assert [b.order_id for b in found] == ["o-lower"]
    assert selectors.booking_search_parse(term="Alice").customer_ids == ("Alice",)


def test_the_admin_flight_search_still_finds_a_flight_number_typed_in_lower_case():
    apply([Items().flight("MU5159")])
    found = selectors.flight_search(flights=Flight.objects.all(), term="mu51")
    assert [f.flight_number for f in found] == ["MU5159"]
