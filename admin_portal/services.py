"""Query-side writes: weather alerts and passenger notifications.

Notifications are exactly-once per (booking, reason) by a claim: a sender first inserts the
row as PENDING (the unique constraint lets only one sender win), then sends, then marks it
SENT or FAILED. A FAILED row, or a PENDING claim older than `STALE_CLAIM` (its sender
crashed between claim and send), may be claimed again by a conditional update, so a retry
sends what is missing and nothing twice.
"""

import hashlib
import logging
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.mail import EmailMessage, get_connection
from django.db import IntegrityError, transaction
from django.db.models import Exists, F, OuterRef, Q, QuerySet
from django.utils import timezone

from airticket import observability

from . import selectors, weather
from .models import (
    AlertSource,
    Booking,
    BookingStatus,
    Customer,
    Flight,
    FlightEvent,
    FlightEventKind,
    FlightStatus,
    Notification,
    NotificationStatus,
    WeatherAlert,
    WeatherMessage,
    WeatherSource,
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
    """The message and the booking, with the schedule that holds now (the flight's current
    times, and the booked ones where they differ), never the booking's old snapshot alone."""
    name = customer.full_name if customer else booking.customer_id
    route = " -> ".join([booking.origin, *booking.transfers, booking.destination])
    schedule = selectors.booking_schedule(booking=booking)
    times = f"departing {schedule.departure_time:%H:%M}, arriving {schedule.arrival_time:%H:%M}"
    if schedule.booked_departure_time is not None:
        times += f" (booked: departing {schedule.booked_departure_time:%H:%M}, arriving {schedule.booked_arrival_time:%H:%M})"
    if schedule.flight_status == FlightStatus.CANCELLED:
        times += "; this flight is cancelled"
    return (
        f"Dear {name},\n\n{message}\n\n"
        f"Your booking {booking.order_id}: flight {booking.flight_number} on {booking.flight_date:%Y-%m-%d}, {route}, {times}.\n"
    )


def passengers_notify(*, bookings: QuerySet[Booking], reason: str, subject: str, message: str, sent_by: str = "") -> NotifyResult:
    """Email every passenger of `bookings` once for `reason`; already notified ones are skipped."""
    result = NotifyResult()
    # Opened by `_send` at the first message, not here: the notifier re-checks events every
    # second and most runs send nothing (an opened file backend leaves an empty file behind).
    connection = get_connection(fail_silently=False)
    try:
        for booking in bookings.prefetch_related("customer", "flight").iterator(chunk_size=CHUNK):
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
    observability.record({"NotificationsSent": result.sent, "NotificationsFailed": result.failed, "NotificationsSkipped": result.skipped})
    return result


# --- flight events (cancelled / delayed), written by the CDC projection -----------------------


def flight_event_reason(*, event: FlightEvent) -> str:
    if event.kind == FlightEventKind.CANCELLED:
        return f"flight-cancelled:{event.flight_id}"
    # Each delay is news: a second delay of the same flight notifies again.
    return f"flight-delayed:{event.flight_id}:v{event.flight_version}"


def _flight_event_text(*, event: FlightEvent, flight: Flight | None) -> tuple[str, str]:
    """Subject and message. A delay quotes the flight's times as they are when the notice is
    sent (`flight`, the event's own incarnation), else the times the event moved it to."""
    number, _, day = event.flight_id.partition("#")
    if event.kind == FlightEventKind.CANCELLED:
        return (
            f"Flight {number} on {day} is cancelled",
            f"We are sorry: flight {number} on {day} has been cancelled. Please contact us to rebook or for a refund.",
        )
    moved_to = event.detail.get("to") or {}
    departure = f"{flight.departure_time:%H:%M}" if flight else moved_to.get("departure_time", "")[:5] or "a later time"
    arrival = f"{flight.arrival_time:%H:%M}" if flight else moved_to.get("arrival_time", "")[:5] or "later"
    return (
        f"Flight {number} on {day} is delayed",
        f"Flight {number} on {day} has been rescheduled: it now departs at {departure} and arrives at {arrival}.",
    )


def flight_event_incarnation(*, event: FlightEvent) -> Flight | None:
    """The event's flight as it is now, or None when that incarnation is gone from the read
    model (removed, or replaced by a flight created again under the same number and date)."""
    flight = Flight.objects.filter(pk=event.flight_id, deleted=False).first()
    if flight is None or (event.flight_created_at is not None and flight.created_at != event.flight_created_at):
        return None
    return flight


def flight_event_superseded(*, event: FlightEvent) -> bool:
    """A delay followed by a later delay or the cancellation of the same incarnation: the later
    event tells the passengers what holds, so this one need not tell them something older."""
    if event.kind != FlightEventKind.DELAYED:
        return False
    later = FlightEvent.objects.filter(
        flight_id=event.flight_id, flight_created_at=event.flight_created_at, flight_version__gt=event.flight_version
    )
    return later.exists()


def flight_event_passengers(*, event: FlightEvent) -> QuerySet[Booking]:
    """Who an event is news to: the ORDERED bookings of the flight incarnation it belongs to;
    for a delay, only those booked before it (a booking made after a delay was made at the
    new times)."""
    bookings = selectors.booking_base(status=BookingStatus.ORDERED).filter(flight_id=event.flight_id)
    if event.flight_created_at is not None:
        # Orders projected before they carried their flight's incarnation: created after it.
        legacy = Q(flight_created_at__isnull=True, created_at__gte=event.flight_created_at)
        bookings = bookings.filter(Q(flight_created_at=event.flight_created_at) | legacy)
    if event.kind == FlightEventKind.DELAYED:
        bookings = bookings.filter(Q(flight_version__lt=event.flight_version) | Q(flight_version__isnull=True))
    return bookings


# A FAILED notice of a flight event (no address yet, mail service down) is tried again at most
# this often, and the event stays open until none is left.
FAILED_RETRY = timedelta(minutes=1)


def flight_event_notify(*, event: FlightEvent) -> NotifyResult:
    if flight_event_superseded(event=event):
        return NotifyResult()
    subject, message = _flight_event_text(event=event, flight=flight_event_incarnation(event=event))
    reason = flight_event_reason(event=event)
    # Only passengers not yet notified for this event (sent, being sent by another process, or
    # failed a moment ago): re-runs cost one query, not one claim per passenger.
    now = timezone.now()
    handled = (
        Q(status=NotificationStatus.SENT)
        | Q(status=NotificationStatus.PENDING, created_at__gte=now - STALE_CLAIM)
        | Q(status=NotificationStatus.FAILED, created_at__gte=now - FAILED_RETRY)
    )
    already = Notification.objects.filter(handled, booking_id=OuterRef("pk"), reason=reason)
    bookings = flight_event_passengers(event=event).exclude(Exists(already)).order_by("order_id")
    return passengers_notify(bookings=bookings, reason=reason, subject=subject, message=message, sent_by="flight-events")


def _flight_event_open(*, event: FlightEvent) -> bool:
    """Whether an event still has work: a passenger whose notice failed (or is being sent)."""
    if flight_event_superseded(event=event):
        return False
    reason = flight_event_reason(event=event)
    unsent = Notification.objects.filter(reason=reason, booking__in=flight_event_passengers(event=event)).exclude(
        status=NotificationStatus.SENT
    )
    return unsent.exists()


def flight_events_process(*, limit: int = 100) -> int:
    """Notify the passengers of every pending flight event, oldest first, `limit` events per
    query; returns how many events were looked at. Safe to run from several processes at once:
    notifications are claimed per passenger.

    An event stays pending for FLIGHT_EVENT_SETTLE after it was written, and while a notice of
    it is unsent (FAILED ones are retried every FAILED_RETRY); each run notifies the
    passengers not yet notified. Bookings travel on other shards than their flight, so a
    booking may reach the read model after its flight's event, even long after (a poller
    outage, a DLQ redrive): the projection then reopens the flight's events
    (`cdc_lambda.projection`), and the next run notifies that passenger. Every pending event
    is visited on each run (paged by id), so events still settling never hold back newer ones."""
    seen, after = 0, 0
    settled_before = timezone.now() - FLIGHT_EVENT_SETTLE
    while True:
        events = list(FlightEvent.objects.filter(processed_at__isnull=True, id__gt=after).order_by("id")[:limit])
        for event in events:
            result = flight_event_notify(event=event)
            if event.created_at <= settled_before and not _flight_event_open(event=event):
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
    return passengers_notify(bookings=bookings, reason=weather_alert_reason(alert=alert), subject=subject, message=text, sent_by=sent_by)


def weather_alert_reason(*, alert: WeatherAlert) -> str:
    """A CAP event raises one alert per airport it covers; its passengers hear of the event
    once, even when their flight touches two of those airports."""
    if alert.source == AlertSource.CAP and "@" in alert.source_id:
        return f"weather-event:{alert.source_id.rsplit('@', 1)[0]}"[:200]
    return f"weather-alert:{alert.pk}"


@dataclass
class ImportCounts:
    """What an import did: alerts created, already there (a replay), ended early by an Update
    that replaced them ("updated") or by a Cancel/AllClear ("ended"); unusable messages."""

    created: int = 0
    existing: int = 0
    updated: int = 0
    ended: int = 0
    skipped: int = 0
    reasons: list[str] = field(default_factory=list)

    def add(self, other: "ImportCounts") -> None:
        for name in ("created", "existing", "updated", "ended", "skipped"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.reasons += other.reasons

    def as_dict(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in ("created", "existing", "updated", "ended", "skipped")}


def _one_line(exc: Exception) -> str:
    if isinstance(exc, ValidationError) and hasattr(exc, "error_dict"):
        text = "; ".join(f"{field}: {' '.join(errors)}" for field, errors in exc.message_dict.items())
    else:
        text = " ".join(exc.messages) if isinstance(exc, ValidationError) else str(exc)
    return " ".join(text.split())[:300]


def _weather_message_end(*, identifier: str, at: datetime, by: weather.Message) -> int:
    """End the alerts of the CAP message `identifier` at `at` (the ending message's own sent
    time); remember the end, so the message arriving later raises nothing past it."""
    record, created = WeatherMessage.objects.select_for_update().get_or_create(
        source=AlertSource.CAP, identifier=identifier, defaults={"ended_at": at, "ended_by": by.identifier}
    )
    if not created and (record.ended_at is None or record.ended_at > at):
        record.ended_at, record.ended_by = at, by.identifier
        record.save(update_fields=["ended_at", "ended_by"])
    alerts = WeatherAlert.objects.filter(source=AlertSource.CAP, source_id__startswith=f"{identifier}#")
    return sum(weather_alert_expire(alert=alert, at=at) for alert in alerts)


def _weather_message_import(*, message: weather.Message) -> ImportCounts:
    """One message, inside the caller's transaction."""
    counts = ImportCounts()
    ended_at = None
    if message.source == AlertSource.CAP:
        record, _ = WeatherMessage.objects.select_for_update().get_or_create(source=message.source, identifier=message.identifier)
        if record.imported_at is not None:  # a replay: its alerts and ends are already applied
            counts.existing += len(message.drafts)
            return counts
        ended_at = record.ended_at  # set when a later message, imported first, referenced it
        record.msg_type, record.sent, record.imported_at = message.msg_type, message.sent, timezone.now()
        record.save()
    for draft in message.drafts:
        if ended_at is not None:
            if ended_at <= draft.valid_from:
                continue  # replaced or cancelled before it began
            draft = replace(draft, valid_to=min(draft.valid_to, ended_at))
        if WeatherAlert.objects.filter(source=draft.source, source_id=draft.source_id).exists():
            counts.existing += 1
            continue
        weather_alert_create(**asdict(draft))
        counts.created += 1
    for identifier in message.references:
        changed = _weather_message_end(identifier=identifier, at=message.sent, by=message)
        if message.msg_type == "Update" and message.drafts:
            counts.updated += changed
        else:
            counts.ended += changed
    return counts


def weather_alerts_import(*, report: weather.ImportReport) -> ImportCounts:
    """Store a reader's messages, oldest first, each in its own transaction: all of a message
    (its alerts, and the ends of the messages it references) or nothing, with a one-line
    reason. Re-importing is a no-op."""
    counts = ImportCounts(skipped=len(report.skipped), reasons=list(report.skipped))
    for message in sorted(report.messages, key=lambda m: m.sent):
        try:
            with transaction.atomic():
                counts.add(_weather_message_import(message=message))
        except (ValidationError, IntegrityError) as exc:  # a value the model refuses; a concurrent import of it
            counts.skipped += 1
            counts.reasons.append(f"{message.identifier}: {_one_line(exc)}")
    return counts


def _weather_source_url(*, url: str) -> str | None:
    """The URL to fetch: `{airports}` becomes the ICAO codes the schedule flies to (None when
    it flies nowhere yet)."""
    if "{airports}" not in url:
        return url
    codes = selectors.weather_airports_scheduled(today=timezone.now().date())
    return url.replace("{airports}", ",".join(codes)) if codes else None


def _weather_source_fetch(*, source: WeatherSource, kind: str, timeout: float) -> tuple[str, ImportCounts, str]:
    """Fetch and import one source: (status line, counts, error for entries that failed)."""
    url = _weather_source_url(url=source.url)
    if url is None:
        return "no scheduled airports to ask for", ImportCounts(), ""
    same_url = url == source.fetched_url
    fetched = weather.feeds.fetch(
        url,
        etag=source.etag if same_url else "",
        last_modified=source.last_modified if same_url else "",
        timeout=timeout,
        accept=weather.feeds.ACCEPT_CAP if kind == "cap" else "*/*",
    )
    if fetched.not_modified:
        return "not modified", ImportCounts(), ""
    report = weather.parse_metar_text(fetched.body.decode("utf-8", "replace")) if kind == "metar" else weather.parse_cap_xml(fetched.body)
    seen, current, errors = set(source.seen_entries), [], []
    for key, link in report.links:
        if key not in seen:
            try:
                report.extend(weather.parse_cap_xml(weather.feeds.fetch(link, timeout=timeout, accept=weather.feeds.ACCEPT_CAP).body))
            except (weather.feeds.FetchError, ValueError, SyntaxError) as exc:
                errors.append(f"{link}: {_one_line(exc)}")
                continue  # not remembered: tried again next time
        current.append(key)
    counts = weather_alerts_import(report=report)
    source.fetched_url, source.etag, source.last_modified, source.seen_entries = url, fetched.etag, fetched.last_modified, current
    source.save(update_fields=["fetched_url", "etag", "last_modified", "seen_entries"])
    status = ", ".join(f"{name} {value}" for name, value in counts.as_dict().items())
    error = f"{len(errors)} linked entr{'y' if len(errors) == 1 else 'ies'} not fetched; first: {errors[0]}" if errors else ""
    return status, counts, error


def weather_source_poll(*, kind: str, url: str, timeout: float) -> WeatherSource:
    """Poll one configured source and record how it went. Never raises for the source's own
    failures (network, HTTP, unreadable feed): they are recorded, and the other sources go on."""
    source, _ = WeatherSource.objects.get_or_create(url=url, defaults={"kind": kind})
    now = timezone.now()
    changes = {"kind": kind, "last_polled_at": now}
    try:
        status, counts, error = _weather_source_fetch(source=source, kind=kind, timeout=timeout)
    except (weather.feeds.FetchError, ValueError, SyntaxError) as exc:  # SyntaxError: XML that does not parse
        changes.update(last_status="failed", last_error=_one_line(exc), last_error_at=now)
    except Exception as exc:  # anything else of this source's must not stop the others
        log.exception("weather source %s failed", url)
        changes.update(last_status="failed", last_error=f"{type(exc).__name__}: {_one_line(exc)}", last_error_at=now)
    else:
        changes.update(
            last_status=status,
            last_success_at=now,
            alerts_created=F("alerts_created") + counts.created,
            alerts_updated=F("alerts_updated") + counts.updated,
            alerts_ended=F("alerts_ended") + counts.ended,
        )
        if error:
            changes.update(last_error=error, last_error_at=now)
    observability.count("WeatherPollFailed" if changes.get("last_status") == "failed" else "WeatherPollSucceeded", source=url)
    WeatherSource.objects.filter(pk=source.pk).update(**changes)
    source.refresh_from_db()
    return source


def weather_sources_poll(*, timeout: float | None = None) -> list[WeatherSource]:
    """Poll every source in settings.WEATHER_SOURCES, one after the other."""
    timeout = timeout or settings.WEATHER_POLL_TIMEOUT
    return [weather_source_poll(kind=kind, url=url, timeout=timeout) for kind, url in settings.WEATHER_SOURCES]
