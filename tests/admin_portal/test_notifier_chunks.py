"""The notifier at scale: notices claimed, sent and marked a chunk at a time by several
notifiers side by side (`services.passengers_notify`, `flight_events_process`)."""

import threading
from collections import Counter
from datetime import date, timedelta

import pytest
from django.core import mail
from django.core.management import CommandError, call_command
from django.db import connection
from django.utils import timezone

from admin_portal import selectors, services
from admin_portal.models import Notification
from airticket.local import supervisor
from tests.admin_portal.factories import BookingFactory, CustomerFactory, FlightEventFactory, make_flight

DAY = date(2026, 12, 10)


def flight_passengers(flight):
    return selectors.passenger_list_by_flight(flight_number=flight.flight_number, flight_date=flight.flight_date)


def recipients() -> Counter:
    return Counter(address for message in mail.outbox for address in message.to)


@pytest.mark.django_db(transaction=True)
def test_concurrent_notifiers_never_send_a_notice_twice_and_miss_none(monkeypatch):
    monkeypatch.setattr(services, "CHUNK", 7)  # many small chunks, so the notifiers' claims interleave
    flights = [make_flight(day=DAY, status="CANCELLED") for _ in range(3)]
    bookings = [b for flight in flights for b in BookingFactory.create_batch(25, flight=flight)]
    for flight in flights:
        FlightEventFactory(flight=flight)
    # Four notifiers: two as `make run` shares the events out, two that start where the first does.
    shares = [(0, 2), (1, 2), (0, 2), (0, 1)]
    barrier, failures = threading.Barrier(len(shares)), []

    def notifier(worker: int, workers: int) -> None:
        try:
            barrier.wait()
            for _ in range(2):
                services.flight_events_process(worker=worker, workers=workers)
        except Exception as exc:  # reported below: a thread's exception would be lost
            failures.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=notifier, args=share) for share in shares]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert failures == []
    assert recipients() == Counter({b.customer.email: 1 for b in bookings})
    assert Notification.objects.filter(status="SENT").count() == len(bookings) == 75
    assert not Notification.objects.exclude(status="SENT").exists()


@pytest.mark.django_db
def test_a_chunk_whose_notifier_died_before_sending_is_sent_once_its_lease_has_run_out(monkeypatch):
    flight = make_flight(day=DAY)
    bookings = BookingFactory.create_batch(3, flight=flight)

    def die(**_):
        raise SystemExit("killed between claim and send")

    with monkeypatch.context() as patch:
        patch.setattr(services, "_chunk_send", die)
        with pytest.raises(SystemExit):
            services.passengers_notify(bookings=flight_passengers(flight), reason="r", subject="s", message="m")
    held = services.passengers_notify(bookings=flight_passengers(flight), reason="r", subject="s", message="m")
    Notification.objects.update(created_at=timezone.now() - services.STALE_CLAIM - timedelta(seconds=1))
    after_lease = services.passengers_notify(bookings=flight_passengers(flight), reason="r", subject="s", message="m")

    assert (held.sent, held.skipped) == (0, 3)  # within the lease the dead notifier's claim stands
    assert (after_lease.sent, after_lease.skipped) == (3, 0)
    assert recipients() == Counter({b.customer.email: 1 for b in bookings})
    assert set(Notification.objects.values_list("status", flat=True)) == {"SENT"}


@pytest.mark.django_db
def test_a_notifier_that_outlived_its_lease_cannot_mark_the_rows_another_took_over():
    flight = make_flight(day=DAY)
    booking = BookingFactory(flight=flight)
    draft = services._draft(booking=booking, reason="r", subject="s", message="m", sent_by="", token="slow")
    [claimed] = services._chunk_claim(drafts=[draft], reason="r", token="slow")
    Notification.objects.update(created_at=timezone.now() - services.STALE_CLAIM - timedelta(seconds=1))
    taken_over = services.passengers_notify(bookings=flight_passengers(flight), reason="r", subject="s", message="m")

    services._chunk_mark(notifications=[claimed], errors={claimed.pk: "late failure"}, token="slow")

    row = Notification.objects.get()
    assert taken_over.sent == 1
    assert (row.status, row.error) == ("SENT", "")
    assert row.claim not in ("", "slow")


@pytest.mark.django_db
def test_a_chunk_is_claimed_and_marked_sent_and_failed_in_a_fixed_number_of_statements(django_assert_max_num_queries):
    flight = make_flight(day=DAY)
    sendable = BookingFactory.create_batch(40, flight=flight)
    no_email = [BookingFactory(flight=flight, customer=CustomerFactory(email="")) for _ in range(2)]

    # Selection + 2 prefetches, claim (insert, takeover, read back), mark (sent, failed) and
    # the metrics: not 3 per passenger as before.
    with django_assert_max_num_queries(15):
        result = services.passengers_notify(bookings=flight_passengers(flight), reason="r", subject="s", message="m")

    rows = {n.booking_id: n for n in Notification.objects.all()}
    assert (result.sent, result.failed, result.skipped) == (40, 2, 0)
    assert {rows[b.pk].status for b in sendable} == {"SENT"}
    assert [(rows[b.pk].status, rows[b.pk].error) for b in no_email] == [
        ("FAILED", "no email address for this customer in the read model")
    ] * 2
    assert sorted(result.errors) == sorted(f"{b.pk}: no email address for this customer in the read model" for b in no_email)
    assert len(mail.outbox) == 40


@pytest.mark.django_db
def test_notices_taken_over_after_a_failure_say_what_holds_now():
    flight = make_flight(day=DAY)
    BookingFactory(flight=flight, customer=CustomerFactory(email=""))
    services.passengers_notify(bookings=flight_passengers(flight), reason="r", subject="old", message="old news")
    Notification.objects.update(recipient="")
    customer = Notification.objects.get().customer
    customer.email = "found@example.com"
    customer.save()

    services.passengers_notify(bookings=flight_passengers(flight), reason="r", subject="new", message="new news")

    row = Notification.objects.get()
    assert (row.status, row.recipient, row.subject) == ("SENT", "found@example.com", "new")
    assert "new news" in row.message
    assert [(m.to, m.subject) for m in mail.outbox] == [(["found@example.com"], "new")]


def test_make_run_starts_the_configured_number_of_notifiers_each_with_its_share():
    notifiers = [args for name, args in supervisor.worker_commands({"NOTIFIERS": "3"}) if name.startswith("notifier")]

    assert notifiers == [["notify_flight_events", "--loop", "--worker", f"{i}/3"] for i in (1, 2, 3)]
    assert len([name for name, _ in supervisor.worker_commands({}) if name.startswith("notifier")]) == 2
    with pytest.raises(ValueError, match="NOTIFIERS must be a whole number"):
        supervisor.worker_commands({"NOTIFIERS": "0"})


@pytest.mark.parametrize("share", ["0/2", "3/2", "two", "1/"])
def test_the_notifier_command_refuses_a_share_that_is_not_i_of_n(share):
    with pytest.raises(CommandError, match="--worker must be I/N"):
        call_command("notify_flight_events", "--worker", share)
