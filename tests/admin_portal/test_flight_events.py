"""Flight events from change record to notice: the CDC handler projects the command side's
records (built by `tests.cdc.changes.Items`, the shape production records have), then the
notifier runs. Tested through the projection, not with hand-made events, so the notices read
what the projection really writes."""

from datetime import timedelta

import pytest
from django.core import mail
from django.utils import timezone

from admin_portal import services
from admin_portal.models import FlightEvent, Notification
from cdc_lambda.handler import handler
from tests.cdc.changes import Items, event

pytestmark = pytest.mark.django_db

DAY = "2026-12-10"
FLIGHT_KEY = {"PK": f"FLIGHT#MU2324#{DAY}", "SK": "FLIGHT"}


def project(*records: dict) -> None:
    assert handler(event(list(records)), None) == {"batchItemFailures": []}


def settle_all() -> None:
    """Age every event past its settle window, and every failed notice past its retry wait."""
    FlightEvent.objects.update(created_at=timezone.now() - services.FLIGHT_EVENT_SETTLE - timedelta(seconds=1))
    Notification.objects.filter(status="FAILED").update(created_at=timezone.now() - services.FAILED_RETRY - timedelta(seconds=1))


def notices() -> dict[str, list[tuple[str, str]]]:
    """Every message sent, by recipient: (subject, body)."""
    sent: dict[str, list[tuple[str, str]]] = {}
    for message in mail.outbox:
        sent.setdefault(message.to[0], []).append((message.subject, message.body))
    return sent


def scheduled(items: Items, *passengers: str) -> list[dict]:
    """MU2324 13:10 -> 15:20 with one ORDERED booking per passenger."""
    records = [items.flight("MU2324", DAY, departure_time="13:10", arrival_time="15:20")]
    for name in passengers:
        records += [items.customer(name), items.booking(name, f"o-{name}", number="MU2324", day=DAY)]
    return records


def test_two_delays_in_one_batch_tell_each_passenger_once_the_schedule_that_holds():
    items = Items()
    project(*scheduled(items, "ann"))
    project(
        items.flight("MU2324", DAY, status="DELAYED", departure_time="15:30", arrival_time="17:40"),
        items.flight("MU2324", DAY, departure_time="16:00", arrival_time="18:10"),
    )
    services.flight_events_process()

    [(subject, body)] = notices()["ann@example.com"]
    assert subject == f"Flight MU2324 on {DAY} is delayed"
    assert "it now departs at 16:00 and arrives at 18:10" in body
    assert "departing 16:00, arriving 18:10 (booked: departing 13:10, arriving 15:20)" in body
    assert "15:30" not in body


def test_each_delay_processed_in_turn_is_news_and_a_replayed_event_is_not():
    items = Items()
    project(*scheduled(items, "ann"))
    first = items.flight("MU2324", DAY, status="DELAYED", departure_time="15:30", arrival_time="17:40")
    project(first)
    services.flight_events_process()
    project(first)  # delivered again
    FlightEvent.objects.update(processed_at=None)
    services.flight_events_process()
    project(items.flight("MU2324", DAY, departure_time="16:00", arrival_time="18:10"))
    services.flight_events_process()

    bodies = [body for _, body in notices()["ann@example.com"]]
    assert len(bodies) == 2
    assert "it now departs at 15:30 and arrives at 17:40" in bodies[0]
    assert "it now departs at 16:00 and arrives at 18:10" in bodies[1]


def test_a_passenger_who_booked_after_a_delay_is_not_told_the_flight_is_delayed():
    items = Items()
    project(*scheduled(items, "ann"))
    delay = items.flight("MU2324", DAY, status="DELAYED", departure_time="15:30", arrival_time="17:40")
    late = [items.customer("bob"), items.booking("bob", "o-bob", number="MU2324", day=DAY)]  # booked at 15:30
    project(delay, *late)  # both reach the read model before the notifier runs
    services.flight_events_process()

    assert set(notices()) == {"ann@example.com"}


def test_a_cancellation_reaches_only_the_bookings_of_the_flight_it_belongs_to_not_a_flight_created_again():
    old, new = Items(), Items()
    project(*scheduled(old, "ann"), old.flight("MU2324", DAY, status="CANCELLED"))
    # The demo's truncate, then the schedule and its bookings again, before the notifier runs.
    project(old.remove({"PK": "CUSTOMER#ann", "SK": "ORDER#o-ann"}), old.remove(FLIGHT_KEY))
    project(*scheduled(new, "ann", "bob"))
    services.flight_events_process()
    settle_all()
    services.flight_events_process()

    assert notices() == {}
    assert not FlightEvent.objects.filter(processed_at__isnull=True).exists()


def test_a_cancellation_notice_quotes_the_flight_as_it_is_when_sent():
    items = Items()
    project(*scheduled(items, "ann"))
    project(items.flight("MU2324", DAY, status="DELAYED", departure_time="15:30", arrival_time="17:40"))
    project(items.flight("MU2324", DAY, status="CANCELLED"))
    services.flight_events_process()

    [(subject, body)] = notices()["ann@example.com"]  # the delay is superseded by the cancellation
    assert subject == f"Flight MU2324 on {DAY} is cancelled"
    assert "departing 15:30, arriving 17:40 (booked: departing 13:10, arriving 15:20); this flight is cancelled" in body


def test_a_booking_that_reaches_the_read_model_after_its_flights_event_was_closed_is_still_notified():
    items = Items()
    records = scheduled(items, "ann", "bob")
    bob = records[-2:]  # bob's records lag behind (a poller outage, a DLQ redrive)
    project(*records[:-2], items.flight("MU2324", DAY, status="CANCELLED"))
    services.flight_events_process()
    settle_all()
    services.flight_events_process()
    assert FlightEvent.objects.get().processed_at is not None

    project(*bob)
    services.flight_events_process()
    services.flight_events_process()

    assert sorted(notices()) == ["ann@example.com", "bob@example.com"]
    assert all(len(sent) == 1 for sent in notices().values())
    assert FlightEvent.objects.get().processed_at is not None


def test_a_failed_notice_keeps_its_event_open_and_is_retried_once_the_address_arrives():
    items = Items()
    project(*scheduled(items, "ann"))
    project(items.customer("ann", email=""), items.flight("MU2324", DAY, status="CANCELLED"))
    services.flight_events_process()
    settle_all()
    services.flight_events_process()
    assert Notification.objects.get().status == "FAILED"
    assert FlightEvent.objects.get().processed_at is None

    project(items.customer("ann", email="ann@example.org"))
    services.flight_events_process()  # failed a moment ago: not retried yet
    assert notices() == {}
    settle_all()
    services.flight_events_process()

    assert list(notices()) == ["ann@example.org"]
    assert FlightEvent.objects.get().processed_at is not None
