"""Query-side writes: weather alerts and passenger notifications.

Notifications are once per (booking, reason) by a claim: a sender first inserts the rows of a
chunk as PENDING with its own claim token (the unique constraint lets only one sender insert
a row), then sends them, then marks them SENT or FAILED. A FAILED row, or a PENDING claim
older than `STALE_CLAIM` (the lease: its sender died between claim and mark), may be claimed
again by a conditional update, so a retry sends what is missing.

Delivery is at least once, not exactly once, in one window: a sender that dies (or stalls
longer than the lease) after handing a chunk's messages to the mail backend and before
marking them SENT leaves them PENDING, and they are sent again once the lease has run out.
At most one chunk (CHUNK notices) per dead sender is repeated; a notice marked SENT is never
sent again. Nothing is lost: every unmarked claim becomes claimable after the lease.
"""

import hashlib
import logging
import uuid
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timedelta
from itertools import islice

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


def _chunk_claim(*, drafts: list[Notification], reason: str, token: str) -> list[Notification]:
    """The drafts of this chunk whose rows this sender now owns (pk set): a new row, a FAILED
    one, or a PENDING claim past its lease. One multi-row INSERT IGNORE (the unique constraint
    lets only one sender insert a row), one conditional UPDATE that takes over the retryable
    rows, and one SELECT of the rows carrying `token`: three statements per chunk, whatever
    its size, and atomic per row, so concurrent senders never both own one."""
    by_booking = {draft.booking_id: draft for draft in drafts}
    Notification.objects.bulk_create(drafts, ignore_conflicts=True)
    now = timezone.now()
    retryable = Q(status=NotificationStatus.FAILED) | Q(status=NotificationStatus.PENDING, created_at__lt=now - STALE_CLAIM)
    Notification.objects.filter(retryable, reason=reason, booking_id__in=by_booking).update(
        status=NotificationStatus.PENDING, claim=token, created_at=now
    )
    owned = Notification.objects.filter(reason=reason, booking_id__in=by_booking, claim=token)
    claimed, rewritten = [], []
    for pk, booking_id, recipient, subject, message in owned.values_list("pk", "booking_id", "recipient", "subject", "message"):
        draft = by_booking[booking_id]
        draft.pk = pk
        claimed.append(draft)
        if (recipient, subject, message) != (draft.recipient, draft.subject, draft.message):
            rewritten.append(draft)  # taken over: it now says what holds at this sending
    if rewritten:
        owned.bulk_update(rewritten, ["recipient", "subject", "message"])
    return claimed


def _chunk_send(*, notifications: list[Notification], connection) -> dict[int, str]:
    """Send a claimed chunk over one open mail connection; returns the error of each row that
    failed (the others were sent). One message per `send_messages` call: a backend stops at
    the first message it cannot send, and the rows must know which ones went out."""
    errors = {n.pk: "no email address for this customer in the read model" for n in notifications if not n.recipient}
    sendable = [n for n in notifications if n.recipient]
    if not sendable:
        return errors
    try:
        # Opened at the first chunk with a message (later calls are no-ops): the notifier
        # re-checks events every second and most runs send nothing (an opened file backend
        # leaves an empty file behind). An outage fails the chunk's rows, to be retried.
        connection.open()
    except Exception as exc:  # any transport failure is recorded on the rows and retried later
        return errors | {n.pk: _error_text(exc) for n in sendable}
    for notification in sendable:
        email = EmailMessage(
            subject=notification.subject,
            body=notification.message,
            from_email=settings.DEFAULT_FROM_EMAIL,
            to=[notification.recipient],
        )
        try:
            connection.send_messages([email])
        except Exception as exc:  # as above: this row fails, the next ones are still tried
            errors[notification.pk] = _error_text(exc)
    return errors


def _error_text(exc: Exception) -> str:
    return f"{type(exc).__name__}: {exc}"[:1000]


def _chunk_mark(*, notifications: list[Notification], errors: dict[int, str], token: str) -> None:
    """SENT and FAILED for a whole chunk in two statements, each only on rows still held by
    `token` (a sender slower than the lease has lost them to another and must not overwrite)."""
    held = Notification.objects.filter(claim=token)
    failed = [n for n in notifications if n.pk in errors]
    for notification in failed:
        notification.status, notification.error = NotificationStatus.FAILED, errors[notification.pk]
    with transaction.atomic():
        held.filter(pk__in=[n.pk for n in notifications if n.pk not in errors]).update(status=NotificationStatus.SENT, error="")
        if failed:
            held.bulk_update(failed, ["status", "error"])


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
    """Email every passenger of `bookings` once for `reason`; already notified ones are skipped.

    CHUNK passengers at a time: their notices are rendered, claimed together (`_chunk_claim`),
    sent over one mail connection and marked SENT/FAILED together, so a notice costs a
    fraction of a database round trip instead of three. Several senders may run at once
    (threads, processes, the admin beside the notifier): each owns the rows it claimed."""
    result = NotifyResult()
    token = uuid.uuid4().hex
    connection = get_connection(fail_silently=False)  # opened by `_chunk_send` when there is mail
    rows = bookings.prefetch_related("customer", "flight").iterator(chunk_size=CHUNK)
    try:
        while chunk := list(islice(rows, CHUNK)):
            drafts = [_draft(booking=b, reason=reason, subject=subject, message=message, sent_by=sent_by, token=token) for b in chunk]
            claimed = _chunk_claim(drafts=drafts, reason=reason, token=token)
            errors = _chunk_send(notifications=claimed, connection=connection)
            _chunk_mark(notifications=claimed, errors=errors, token=token)
            result.skipped += len(chunk) - len(claimed)
            result.failed += len(errors)
            result.sent += len(claimed) - len(errors)
            result.errors += [f"{n.booking_id}: {errors[n.pk]}" for n in claimed if n.pk in errors]
    finally:
        connection.close()
    if result.selected:  # the notifier calls this every second per open event: log only work done
        log.info("notified %s for %s: %s", bookings.model.__name__, reason, result.as_dict())
    observability.record({"NotificationsSent": result.sent, "NotificationsFailed": result.failed, "NotificationsSkipped": result.skipped})
    return result


def _draft(*, booking: Booking, reason: str, subject: str, message: str, sent_by: str, token: str) -> Notification:
    """The PENDING row a sender inserts to claim a passenger's notice, with its content."""
    customer = selectors.customer_of(booking)
    return Notification(
        booking_id=booking.pk,
        customer_id=booking.customer_id,
        reason=reason,
        recipient=customer.email if customer else "",
        subject=subject[:200],
        message=_personal(booking=booking, customer=customer, message=message),
        status=NotificationStatus.PENDING,
        sent_by=sent_by[:150],
        claim=token,
    )


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


def flight_events_process(*, limit: int = 100, worker: int = 0, workers: int = 1) -> int:
    """Notify the passengers of every pending flight event, oldest first, `limit` events per
    query; returns how many events were looked at. Safe to run from several processes at once:
    notifications are claimed per passenger.

    An event stays pending for FLIGHT_EVENT_SETTLE after it was written, and while a notice of
    it is unsent (FAILED ones are retried every FAILED_RETRY); each run notifies the
    passengers not yet notified. Bookings travel on other shards than their flight, so a
    booking may reach the read model after its flight's event, even long after (a poller
    outage, a DLQ redrive): the projection then reopens the flight's events
    (`cdc_lambda.projection`), and the next run notifies that passenger. Every pending event
    is visited on each run (paged by id), so events still settling never hold back newer ones.

    Several notifier processes may run side by side (`worker` of `workers`): each starts its
    pass over a page at its own share of it, so on a mass cancellation they work on different
    flights instead of racing for the same passengers' claims (which stays safe either way)."""
    seen, after = 0, 0
    settled_before = timezone.now() - FLIGHT_EVENT_SETTLE
    while True:
        events = list(FlightEvent.objects.filter(processed_at__isnull=True, id__gt=after).order_by("id")[:limit])
        start = len(events) * worker // max(workers, 1)
        for event in events[start:] + events[:start]:
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
