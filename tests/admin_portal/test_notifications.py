import threading
from datetime import date, timedelta

import pytest
from django.core import mail
from django.core.management import call_command
from django.db import connection
from django.utils import timezone

from admin_portal import selectors, services
from admin_portal.models import FlightEvent, Notification
from tests.admin_portal.factories import BookingFactory, CustomerFactory, FlightEventFactory, WeatherAlertFactory, local_today, make_flight

DAY = date(2026, 12, 10)


def flight_passengers(flight):
    return selectors.passenger_list_by_flight(flight_number=flight.flight_number, flight_date=flight.flight_date)


@pytest.mark.django_db
def test_a_passenger_is_notified_once_per_reason_but_again_for_a_new_reason():
    flight = make_flight(day=DAY)
    BookingFactory.create_batch(2, flight=flight)

    first = services.passengers_notify(bookings=flight_passengers(flight), reason="r1", subject="s", message="m")
    repeat = services.passengers_notify(bookings=flight_passengers(flight), reason="r1", subject="s", message="m")
    other = services.passengers_notify(bookings=flight_passengers(flight), reason="r2", subject="s", message="m")

    assert (first.sent, repeat.skipped, other.sent) == (2, 2, 2)
    assert len(mail.outbox) == 4


@pytest.mark.django_db
def test_a_failed_send_is_recorded_and_retried_by_the_next_send():
    flight = make_flight(day=DAY)
    BookingFactory(flight=flight, customer=CustomerFactory(email=""))

    failed = services.passengers_notify(bookings=flight_passengers(flight), reason="r", subject="s", message="m")
    Notification.objects.update(recipient="")  # still no address: fails again, is not skipped
    again = services.passengers_notify(bookings=flight_passengers(flight), reason="r", subject="s", message="m")

    assert failed.failed == 1 and again.failed == 1 and again.skipped == 0
    [row] = Notification.objects.all()
    assert row.status == "FAILED" and "no email address" in row.error
    assert not mail.outbox


@pytest.mark.django_db
def test_a_stale_claim_left_by_a_crashed_sender_is_sent_but_a_fresh_one_is_left_alone():
    flight = make_flight(day=DAY)
    booking = BookingFactory(flight=flight)
    Notification.objects.create(
        booking=booking, customer=booking.customer, reason="r", recipient="x@example.com", subject="s", message="m", status="PENDING"
    )

    fresh = services.passengers_notify(bookings=flight_passengers(flight), reason="r", subject="s", message="m")
    Notification.objects.update(created_at=timezone.now() - services.STALE_CLAIM - timedelta(seconds=1))
    stale = services.passengers_notify(bookings=flight_passengers(flight), reason="r", subject="s", message="m")

    assert fresh.skipped == 1 and stale.sent == 1
    assert Notification.objects.get().status == "SENT"


@pytest.mark.django_db(transaction=True)
def test_concurrent_senders_notify_each_passenger_exactly_once():
    flight = make_flight(day=DAY)
    BookingFactory.create_batch(20, flight=flight)
    results, barrier = [], threading.Barrier(4)

    def send():
        try:
            barrier.wait()
            results.append(services.passengers_notify(bookings=flight_passengers(flight), reason="storm", subject="s", message="m"))
        finally:
            connection.close()

    threads = [threading.Thread(target=send) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sum(r.sent for r in results) == 20
    assert sum(r.skipped for r in results) == 60
    assert len(mail.outbox) == 20
    assert Notification.objects.filter(reason="storm", status="SENT").count() == 20


@pytest.mark.django_db
def test_a_cancelled_flight_notifies_every_ordered_passenger_once_and_marks_the_event_processed():
    flight = make_flight(number="MU5159", day=DAY, status="CANCELLED")
    BookingFactory.create_batch(3, flight=flight)
    BookingFactory(flight=flight, status="CANCELLED")
    event = FlightEventFactory(flight=flight, kind="CANCELLED")
    services.flight_events_process()
    services.flight_events_process()
    settle(event)

    assert services.flight_events_process() == 1
    assert services.flight_events_process() == 0
    event.refresh_from_db()
    assert event.processed_at is not None
    assert len(mail.outbox) == 3
    assert mail.outbox[0].subject == "Flight MU5159 on 2026-12-10 is cancelled"
    assert set(Notification.objects.values_list("reason", flat=True)) == {"flight-cancelled:MU5159#2026-12-10"}


def settle(event) -> None:
    """Age an event past the window in which late bookings are still picked up."""
    FlightEvent.objects.filter(pk=event.pk).update(created_at=timezone.now() - services.FLIGHT_EVENT_SETTLE - timedelta(seconds=1))


@pytest.mark.django_db
def test_a_booking_that_reaches_the_read_model_after_its_flights_cancellation_is_still_notified():
    flight = make_flight(day=DAY, status="CANCELLED")
    BookingFactory(flight=flight)
    event = FlightEventFactory(flight=flight)
    services.flight_events_process()
    late = BookingFactory(flight=flight)  # projected from another shard, a moment later

    services.flight_events_process()
    settle(event)
    services.flight_events_process()
    BookingFactory(flight=flight)  # after the event settled: no longer its business
    services.flight_events_process()

    assert len(mail.outbox) == 2
    assert mail.outbox[1].to == [late.customer.email]
    assert FlightEvent.objects.get().processed_at is not None


@pytest.mark.django_db
def test_the_notify_flight_events_command_processes_pending_events():
    flight = make_flight(day=DAY, status="CANCELLED")
    BookingFactory(flight=flight)
    settle(FlightEventFactory(flight=flight))

    call_command("notify_flight_events")

    assert len(mail.outbox) == 1
    assert not FlightEvent.objects.filter(processed_at__isnull=True).exists()


@pytest.mark.django_db
def test_notifying_a_weather_alert_reaches_its_passengers_once():
    alert = WeatherAlertFactory(city="Shanghai")
    BookingFactory(flight=make_flight(day=local_today("PVG"), route=("CAN", "PVG", "NRT")))

    first = services.weather_alert_notify(alert=alert)
    second = services.weather_alert_notify(alert=alert)

    assert (first.sent, second.skipped) == (1, 1)
    assert "Weather warning for Shanghai" in mail.outbox[0].subject


@pytest.mark.django_db
def test_notifications_go_out_through_ses_with_the_production_backend(aws_env, settings):
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.ses.models import ses_backends

    from airticket import aws

    settings.EMAIL_BACKEND = "django_ses.SESBackend"
    aws.client("ses").verify_email_identity(EmailAddress=settings.DEFAULT_FROM_EMAIL)
    flight = make_flight(day=DAY)
    BookingFactory.create_batch(2, flight=flight)

    result = services.passengers_notify(bookings=flight_passengers(flight), reason="ses", subject="s", message="m")

    # The moto server runs in this process: read what reached its SES.
    sent = ses_backends[DEFAULT_ACCOUNT_ID][settings.AWS_REGION].sent_messages
    assert result.sent == 2
    assert sorted(message.destinations[0] for message in sent) == sorted(b.customer.email for b in flight_passengers(flight))


@pytest.mark.django_db
def test_a_run_that_sends_nothing_leaves_no_empty_mail_file(settings, tmp_path):
    settings.EMAIL_BACKEND = "django.core.mail.backends.filebased.EmailBackend"
    settings.EMAIL_FILE_PATH = str(tmp_path)
    flight = make_flight(day=DAY)
    BookingFactory(flight=flight)

    services.passengers_notify(bookings=flight_passengers(flight), reason="r", subject="s", message="m")
    services.passengers_notify(bookings=flight_passengers(flight), reason="r", subject="s", message="m")  # all skipped

    files = list(tmp_path.iterdir())
    assert len(files) == 1
    assert "Subject: s" in files[0].read_text()


@pytest.mark.django_db
def test_a_passenger_whose_customer_arrives_after_the_cancellation_is_notified_when_it_does():
    flight = make_flight(day=DAY, status="CANCELLED")
    booking = BookingFactory(flight=flight)
    customer = booking.customer
    customer_id, email = customer.customer_id, customer.email
    customer.delete()  # the customer's row is on another shard, not projected yet
    FlightEventFactory(flight=flight)

    services.flight_events_process()
    assert Notification.objects.get().status == "FAILED"
    CustomerFactory(customer_id=customer_id, email=email)
    # A failed notice of a flight event is retried at most every FAILED_RETRY.
    Notification.objects.update(created_at=timezone.now() - services.FAILED_RETRY - timedelta(seconds=1))
    services.flight_events_process()

    assert Notification.objects.get().status == "SENT"
    assert [m.to for m in mail.outbox] == [[email]]


@pytest.mark.django_db
def test_a_mail_service_that_cannot_be_reached_fails_the_row_for_a_retry_instead_of_raising(settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_TIMEOUT = "127.0.0.1", 9, 2  # nothing listens there
    flight = make_flight(day=DAY)
    BookingFactory(flight=flight)

    result = services.passengers_notify(bookings=flight_passengers(flight), reason="r", subject="s", message="m")

    assert (result.sent, result.failed) == (0, 1)
    assert Notification.objects.get().status == "FAILED"
    assert "ConnectionRefusedError" in Notification.objects.get().error


@pytest.mark.django_db
def test_events_still_settling_do_not_hold_back_newer_ones():
    for _ in range(3):  # older events, no passengers, still settling
        FlightEventFactory(flight=make_flight(day=DAY, status="CANCELLED"))
    newest = make_flight(day=DAY, status="CANCELLED")
    BookingFactory(flight=newest)
    FlightEventFactory(flight=newest)

    assert services.flight_events_process(limit=2) == 4
    assert [m.subject for m in mail.outbox] == [f"Flight {newest.flight_number} on 2026-12-10 is cancelled"]
    assert FlightEvent.objects.filter(processed_at__isnull=True).count() == 4  # all still in their settle window
