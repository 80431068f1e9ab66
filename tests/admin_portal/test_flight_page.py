"""The flight page and its action pages, through Django's test client (the browser tests
drive the same pages end to end)."""

from datetime import date

import pytest

from bookings import services as commands
from tests import factories as command_factories
from tests.admin_portal.factories import BookingFactory, CustomerFactory, make_flight

pytestmark = pytest.mark.django_db
DAY = date(2026, 12, 10)


def page_of(flight, action: str = "change") -> str:
    return f"/admin/admin_portal/flight/{flight.pk.replace('#', '_23')}/{action}/"


def test_the_flight_page_shows_counts_contacts_and_no_internals(admin_client):
    flight = make_flight(number="MU5159", day=DAY, route=("SHA", "PEK"))
    BookingFactory(flight=flight, customer=CustomerFactory(full_name="Alice Liddell", email="alice@example.com"))
    BookingFactory(flight=flight, customer=CustomerFactory(email=""))
    BookingFactory(flight=flight, status="CANCELLED")

    page = admin_client.get(page_of(flight)).content.decode()

    assert 'id="count-ordered">2<' in page and 'id="count-cancelled">1<' in page and 'id="count-no-email">1<' in page
    assert "Alice Liddell" in page and "alice@example.com" in page and "no email" in page
    assert "08:00 CST" in page and "00:00 UTC" in page  # local time with its zone, UTC beside it
    assert "version" not in page.lower() and "MU5159#" not in page


def test_an_unknown_flight_sends_staff_back_to_the_list(admin_client):
    response = admin_client.get("/admin/admin_portal/flight/XX1_232026-12-10/cancel/")
    assert response.status_code == 302 and response["Location"] == "/admin/"


def test_the_delay_page_refuses_the_current_times_or_a_bad_time_and_changes_nothing(admin_client, aws_env):
    created = command_factories.make_flight(departure_time="08:00", arrival_time="12:30")
    flight = make_flight(number=created["flight_number"], day=date.fromisoformat(created["flight_date"]))

    same = admin_client.post(page_of(flight, "delay"), {"departure_time": "08:00", "arrival_time": "12:30", "reason": "none"})
    bad = admin_client.post(page_of(flight, "delay"), {"departure_time": "25:00", "arrival_time": "12:30", "reason": "x"})
    silent = admin_client.post(page_of(flight, "delay"), {"departure_time": "09:00", "arrival_time": "13:30", "reason": ""})

    assert "these are the current times" in same.content.decode()
    assert "a time as HH:MM" in bad.content.decode()
    assert "This field is required" in silent.content.decode()
    assert commands.flight_get(flight_number=created["flight_number"], flight_date=created["flight_date"])["status"] == "SCHEDULED"


def test_a_cancelled_flight_offers_no_cancel_and_cancelling_again_is_a_recorded_no_op(admin_client, aws_env):
    created = command_factories.make_flight()
    commands.flight_cancel(flight_number=created["flight_number"], flight_date=created["flight_date"])
    flight = make_flight(number=created["flight_number"], day=date.fromisoformat(created["flight_date"]), status="CANCELLED")

    page = admin_client.post(page_of(flight, "cancel"), follow=True).content.decode()

    assert "Cancelled " in page  # a no-op on the command side, recorded like any action
    assert "Cancel flight…" not in page  # the page offers no cancel for a cancelled flight
