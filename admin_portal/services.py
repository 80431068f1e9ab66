"""Query-side writes: weather alerts and passenger notifications.

Notifications are exactly-once per (booking, reason) by a claim: a sender first inserts the
row as PENDING (the unique constraint lets only one sender win), then sends, then marks it
SENT or FAILED. A FAILED row, or a PENDING claim older than `STALE_CLAIM` (its sender
crashed between claim and send), may be claimed again by a conditional update, so a retry
sends what is missing and nothing twice.
"""

import hashlib
import logging
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.core.mail import EmailMessage, get_connection
from django.db import IntegrityError, transaction
from django.db.models import Exists, OuterRef, Q, QuerySet
from django.utils import timezone

from . import selectors, weather
from .models import (
    AlertSource,
    Booking,
    BookingStatus,
    Customer,
    Flight,
    FlightEvent,
    FlightEventKind,
    Notification,
    NotificationStatus,
    WeatherAlert,
)

log = logging.getLogger(__name__)

STALE_CLAIM = timedelta(minutes=10)
FLIGHT_EVENT_SETTLE = timedelta(minutes=5)
CHUNK = 500


@dataclass
class NotifyResult:
    sent: int = 0
    skipped: int = 0
    failed: int = 0
    errors: list[str] = field(default_factory=list)

    @property
    def selected(self) -> int:
        return self.sent + self.skipped + self.failed

    def as_dict(self) -> dict:
        return {"selected": self.selected, "sent": self.sent, "skipped": self.skipped, "failed": self.failed}


def message_reason(*, subject: str, message: str) -> str:
    """Staff messages are "the same reason" when they say the same thing."""
    digest = hashlib.sha256(f"{subject}\n{message}".encode()).hexdigest()[:20]
    return f"message:{digest}"


def _claim(*, booking: Booking, customer: Customer | None, reason: str, subject: str, body: str, sent_by: str) -> Notification | None:
    """The notification row this sender now owns, or None when another sender has it."""
    recipient = customer.email if customer else ""
    try:
        with transaction.atomic():
            return Notification.objects.create(
                booking_id=booking.pk,
                customer_id=booking.customer_id,
                reason=reason,
                recipient=recipient,
                subject=subject[:200],
                message=body,
                status=NotificationStatus.PENDING,
                sent_by=sent_by[:150],
            )
    except IntegrityError:
        pass
    existing = Notification.objects.filter(booking_id=booking.pk, reason=reason).first()
    if existing is None or existing.status == NotificationStatus.SENT:
        return None
    retryable = Notification.objects.filter(pk=existing.pk, status=NotificationStatus.FAILED)
    if existing.status == NotificationStatus.PENDING:
        retryable = Notification.objects.filter(
            pk=existing.pk, status=NotificationStatus.PENDING, created_at__lt=timezone.now() - STALE_CLAIM
        )
    now = timezone.now()
    won = retryable.update(status=NotificationStatus.PENDING, created_at=now, recipient=recipient, subject=subject[:200], message=body)
    if not won:
        return None
    existing.status, existing.created_at, existing.recipient, existing.subject, existing.message = (
        NotificationStatus.PENDING,
        now,
        recipient,
        subject[:200],
        body,
    )
    return existing


def _send(*, notification: Notification, connection) -> str:
    """Send one claimed notification; returns the error, or "" when sent."""
    if not notification.recipient:
        return "no email address for this customer in the read model"
    try:
        # Opened at the first message (later calls are no-ops), inside the try so an outage
        # fails this row, to be retried, instead of leaving it claimed.
        connection.open()
        EmailMessage(
            subject=notification.subject,
            body=notification.message,
            from_email=settings.DEFAULT_FROM_EMAIL,
            to=[notification.recipient],
            connection=connection,
        ).send()
    except Exception as exc:  # any transport failure is recorded on the row and retried later
        return f"{type(exc).__name__}: {exc}"[:1000]
    return ""


def _personal(*, booking: Booking, customer: Customer | None, message: str) -> str:
    name = customer.full_name if customer else booking.customer_id
    route = " -> ".join([booking.origin, *booking.transfers, booking.destination])
    return (
        f"Dear {name},\n\n{message}\n\n"
        f"Your booking {booking.order_id}: flight {booking.flight_number} on {booking.flight_date:%Y-%m-%d}, {route}, "
        f"departing {booking.departure_time:%H:%M}.\n"
    )


def passengers_notify(*, bookings: QuerySet[Booking], reason: str, subject: str, message: str, sent_by: str = "") -> NotifyResult:
    """Email every passenger of `bookings` once for `reason`; already notified ones are skipped."""
    result = NotifyResult()
    # Opened by `_send` at the first message, not here: the notifier re-checks events every
    # second and most runs send nothing (an opened file backend leaves an empty file behind).
    connection = get_connection(fail_silently=False)
    try:
        for booking in bookings.prefetch_related("customer").iterator(chunk_size=CHUNK):
            customer = selectors.customer_of(booking)
            claimed = _claim(
                booking=booking,
                customer=customer,
                reason=reason,
                subject=subject,
                body=_personal(booking=booking, customer=customer, message=message),
                sent_by=sent_by,
            )
            if claimed is None:
                result.skipped += 1
                continue
            error = _send(notification=claimed, connection=connection)
            status = NotificationStatus.FAILED if error else NotificationStatus.SENT
            Notification.objects.filter(pk=claimed.pk).update(status=status, error=error)
            if error:
                result.failed += 1
                result.errors.append(f"{booking.order_id}: {error}")
            else:
                result.sent += 1
    finally:
        connection.close()
    if result.selected:  # the notifier calls this every second per open event: log only work done
        log.info("notified %s for %s: %s", bookings.model.__name__, reason, result.as_dict())
    return result


# --- flight events (cancelled / delayed), written by the CDC projection -----------------------


def flight_event_reason(*, event: FlightEvent) -> str:
    if event.kind == FlightEventKind.CANCELLED:
        return f"flight-cancelled:{event.flight_id}"
    # Each delay is news: a second delay of the same flight notifies again.
    return f"flight-delayed:{event.flight_id}:v{event.flight_version}"


def _flight_event_text(*, event: FlightEvent, flight: Flight | None) -> tuple[str, str]:
    number, _, day = event.flight_id.partition("#")
    if event.kind == FlightEventKind.CANCELLED:
        return (
            f"Flight {number} on {day} is cancelled",
            f"We are sorry: flight {number} on {day} has been cancelled. Please contact us to rebook or for a refund.",
        )
    departure = event.detail.get("departure_time") or (flight and f"{flight.departure_time:%H:%M}") or "a later time"
    arrival = event.detail.get("arrival_time") or (flight and f"{flight.arrival_time:%H:%M}") or "later"
    return (
        f"Flight {number} on {day} is delayed",
        f"Flight {number} on {day} has been rescheduled: it now departs at {departure} and arrives at {arrival}.",
    )


def flight_event_notify(*, event: FlightEvent) -> NotifyResult:
    flight = Flight.objects.filter(pk=event.flight_id).first()
    subject, message = _flight_event_text(event=event, flight=flight)
    reason = flight_event_reason(event=event)
    # Only passengers not yet notified for this event (sent, or being sent by another process):
    # re-runs during the settle window cost one query, not one claim per passenger, and a
    # failed send (no address yet, mail service down) is tried again.
    claimed = Q(status=NotificationStatus.SENT) | Q(status=NotificationStatus.PENDING, created_at__gte=timezone.now() - STALE_CLAIM)
    already = Notification.objects.filter(claimed, booking_id=OuterRef("pk"), reason=reason)
    bookings = (
        selectors.booking_base(status=BookingStatus.ORDERED).filter(flight_id=event.flight_id).exclude(Exists(already)).order_by("order_id")
    )
    return passengers_notify(bookings=bookings, reason=reason, subject=subject, message=message, sent_by="flight-events")


def flight_events_process(*, limit: int = 100) -> int:
    """Notify the passengers of every pending flight event, oldest first, `limit` events per
    query; returns how many events were looked at. Safe to run from several processes at once:
    notifications are claimed per passenger.

    An event stays pending for FLIGHT_EVENT_SETTLE after it was written, and each run notifies
    the passengers not yet notified: bookings travel on other shards than their flight, so a
    booking made just before the cancellation may reach the read model just after its event.
    Every pending event is visited on each run (paged by id), so events still settling never
    hold back newer ones."""
    seen, after = 0, 0
    settled_before = timezone.now() - FLIGHT_EVENT_SETTLE
    while True:
        events = list(FlightEvent.objects.filter(processed_at__isnull=True, id__gt=after).order_by("id")[:limit])
        for event in events:
            result = flight_event_notify(event=event)
            if event.created_at <= settled_before:
                FlightEvent.objects.filter(pk=event.pk, processed_at__isnull=True).update(processed_at=timezone.now())
            if result.selected:
                log.info("flight event %s %s %s: %s", event.pk, event.kind, event.flight_id, result.as_dict())
        seen += len(events)
        if len(events) < limit:
            return seen
        after = events[-1].id


# --- weather alerts ---------------------------------------------------------------------------


def weather_alert_create(
    *,
    kind: str,
    severity: str,
    valid_from: datetime,
    valid_to: datetime,
    city: str = "",
    country: str = "",
    airport: str | None = None,
    source: str = AlertSource.MANUAL,
    source_id: str = "",
    headline: str = "",
    raw_text: str = "",
) -> WeatherAlert:
    """Validate and store an alert. An alert with the same source and source id is returned
    as it is, so re-importing a report is a no-op."""
    if source_id:
        existing = WeatherAlert.objects.filter(source=source, source_id=source_id).first()
        if existing is not None:
            return existing
    alert = WeatherAlert(
        kind=kind,
        severity=severity,
        valid_from=valid_from,
        valid_to=valid_to,
        city=city,
        country=country,
        airport_id=airport or None,
        source=source,
        source_id=source_id,
        headline=headline[:200],
        raw_text=raw_text,
    )
    # The airport is checked against the airport data in `clean`, not the Airport table.
    alert.full_clean(exclude=["airport"])
    alert.save()
    return alert


def weather_alert_expire(*, alert: WeatherAlert, at: datetime | None = None) -> bool:
    """End an alert at `at` (default: now). An alert already over by then keeps its end.
    Returns whether anything changed."""
    at = at or timezone.now()
    if alert.valid_to <= at:
        return False
    alert.valid_to = max(at, alert.valid_from)
    alert.save(update_fields=["valid_to"])
    return True


def weather_alert_notify(*, alert: WeatherAlert, message: str = "", sent_by: str = "") -> NotifyResult:
    place = alert.airport_id or alert.city
    subject = f"Weather warning for {place}: your flight may be affected"
    text = message or (
        f"{alert.headline or alert.get_kind_display()} ({alert.get_severity_display().lower()}) is expected at {place} "
        f"between {alert.valid_from:%Y-%m-%d %H:%M} and {alert.valid_to:%Y-%m-%d %H:%M} UTC. "
        "Your flight may be delayed, diverted or cancelled; we will keep you informed."
    )
    bookings = selectors.passenger_list_by_alerts(alerts=[alert])
    return passengers_notify(bookings=bookings, reason=f"weather-alert:{alert.pk}", subject=subject, message=text, sent_by=sent_by)


def weather_alerts_import(*, report: weather.ImportReport) -> dict[str, int]:
    """Store an importer's drafts (each once: re-importing is a no-op) and expire what a CAP
    Cancel withdraws."""
    created = existing = 0
    for draft in report.drafts:
        if WeatherAlert.objects.filter(source=draft.source, source_id=draft.source_id).exists():
            existing += 1
            continue
        weather_alert_create(**asdict(draft))
        created += 1
    expired = 0
    for identifier in report.cancels:
        for alert in WeatherAlert.objects.filter(source=AlertSource.CAP, source_id__startswith=f"{identifier}#"):
            expired += weather_alert_expire(alert=alert, at=report.cancelled_at)
    return {"created": created, "existing": existing, "expired": expired, "skipped": len(report.skipped)}
