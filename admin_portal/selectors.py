"""Read-side questions staff ask, as keyword-only selectors over the read models.

Every passenger selector returns a `Booking` queryset, so the API, the admin and the
notification service share one definition of "the passengers of X". Bookings are matched to
places through `FlightStop` (origin, each transfer, destination), whose
(airport, flight_date, flight) index turns "touches city X between dates" into a range scan.

Customers are attached with `prefetch_related`, not a join: the projection may apply a booking
before its customer (they travel on different shards), and an inner join would hide it.
"""

import functools
import operator
from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from functools import reduce
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.db.models import Count, Exists, Max, Min, OuterRef, Q, QuerySet, Subquery, Sum
from django.utils import timezone

from airticket.airports import airports
from bookings.serializers import FLIGHT_NUMBER

from .models import (
    Booking,
    BookingStatus,
    Customer,
    Flight,
    FlightEvent,
    FlightPassengerCount,
    FlightStop,
    Notification,
    NotificationStatus,
    WeatherAlert,
)

# Multi-flight selections (status fixed) are ordered by flight then order: with status and
# deleted fixed by equalities, that is the passenger index's own order (flight, status,
# deleted, +pk), so MariaDB reads a page straight off the index without sorting.
BY_FLIGHT = ("flight_id", "order_id")

# How many flight keys a selection inlines into its booking query (see `flight_keys`).
KEY_LIST_LIMIT = 5000

# How many customers a name search may expand to before it is refined: keeps the booking
# lookup an index probe per customer instead of a scan.
NAME_SEARCH_LIMIT = 200


def booking_base(*, status: str | None = BookingStatus.ORDERED) -> QuerySet[Booking]:
    """Live bookings (tombstones dropped), optionally of one status."""
    bookings = Booking.objects.filter(deleted=False)
    if status:
        bookings = bookings.filter(status=status)
    return bookings


def customer_of(booking: Booking) -> Customer | None:
    """The booking's (prefetched) customer, or None while the projection has not got it yet."""
    try:
        return booking.customer
    except Customer.DoesNotExist:
        return None


def flight_of(booking: Booking) -> Flight | None:
    """The (prefetched) flight the booking was made on, or None when that incarnation is not
    in the read model: not projected yet, removed, or replaced by a flight created again under
    the same number and date."""
    try:
        flight = booking.flight
    except Flight.DoesNotExist:
        return None
    if flight.deleted or (booking.flight_created_at is not None and flight.created_at != booking.flight_created_at):
        return None
    return flight


@dataclass(frozen=True)
class Schedule:
    """A booking's flight as it is now, and as it was booked where that differs."""

    flight_status: str | None  # None: the flight it was booked on is not in the read model
    departure_time: time
    arrival_time: time
    booked_departure_time: time | None = None
    booked_arrival_time: time | None = None


def booking_schedule(*, booking: Booking) -> Schedule:
    flight = flight_of(booking)
    if flight is None:
        return Schedule(flight_status=None, departure_time=booking.departure_time, arrival_time=booking.arrival_time)
    moved = (flight.departure_time, flight.arrival_time) != (booking.departure_time, booking.arrival_time)
    return Schedule(
        flight_status=flight.status,
        departure_time=flight.departure_time,
        arrival_time=flight.arrival_time,
        booked_departure_time=booking.departure_time if moved else None,
        booked_arrival_time=booking.arrival_time if moved else None,
    )


@dataclass(frozen=True)
class PassengerCounts:
    """What staff see next to a flight or a selection. `by_status` comes from the projection's
    per-flight counts; `affected` is the ORDERED total, the number every surface reports."""

    by_status: dict[str, int]
    no_email: int
    notified: int

    @property
    def affected(self) -> int:
        return self.by_status.get(BookingStatus.ORDERED, 0)

    ordered = affected  # the flight page's word for the same number

    @property
    def total(self) -> int:
        return sum(self.by_status.values())


@dataclass(frozen=True)
class CountFromTable:
    """The exact count of a booking selection, read from the per-flight counts (a sum over a
    few index entries) instead of counting the bookings: for `BookingQuerySet.counted_by`."""

    counts: QuerySet[FlightPassengerCount]

    def count(self) -> int:
        return int(self.counts.order_by().aggregate(n=Sum("passengers"))["n"] or 0)


def counts_of(*, flight_keys: list[str] | QuerySet, status: str | None) -> QuerySet[FlightPassengerCount]:
    counts = FlightPassengerCount.objects.filter(flight_id__in=flight_keys)
    return counts.filter(status=status) if status else counts


def status_counts(*, flight_keys: list[str] | QuerySet) -> dict[str, int]:
    """Live bookings per status over flights, from the per-flight counts (an index read per
    flight, not a count over the bookings)."""
    rows = counts_of(flight_keys=flight_keys, status=None).values("status").annotate(n=Sum("passengers")).order_by()
    counts = {status: 0 for status in BookingStatus.values}
    counts.update({row["status"]: int(row["n"] or 0) for row in rows})
    return counts


def passenger_counts(*, flight_keys: list[str] | QuerySet, affected: QuerySet[Booking]) -> PassengerCounts:
    """Counts of a selection: `flight_keys` are its flights, `affected` its ORDERED bookings
    (for the two numbers that depend on other tables: customers without an email address, and
    passengers already sent a notice, for any reason)."""
    affected = affected.order_by()
    no_email = affected.exclude(Exists(Customer.objects.filter(pk=OuterRef("customer_id")).exclude(email=""))).count()
    notified = affected.filter(Exists(Notification.objects.filter(booking_id=OuterRef("pk"), status=NotificationStatus.SENT))).count()
    return PassengerCounts(by_status=status_counts(flight_keys=flight_keys), no_email=no_email, notified=notified)


def flight_passenger_counts(*, flight: Flight) -> PassengerCounts:
    """A flight's passengers: totals by status, ORDERED ones without an email address, and
    ORDERED ones already notified (the staff portal's flight page)."""
    affected = booking_base(status=BookingStatus.ORDERED).filter(flight_id=flight.pk)
    return passenger_counts(flight_keys=[flight.pk], affected=affected)


def passenger_list_by_flight(*, flight_number: str, flight_date: date, status: str | None = BookingStatus.ORDERED) -> QuerySet[Booking]:
    bookings = booking_base(status=status).filter(flight_number=flight_number, flight_date=flight_date)
    key = f"{flight_number}#{flight_date:%Y-%m-%d}"
    counted = CountFromTable(counts=counts_of(flight_keys=[key], status=status))
    # `counted_by` last: any later queryset call would drop the hint (by design, see it).
    return bookings.order_by("order_id").prefetch_related("customer", "flight").counted_by(counted)


@functools.cache
def _airports_by_city() -> dict[str, list[str]]:
    by_city: dict[str, list[str]] = defaultdict(list)
    for code, data in airports().items():
        by_city[data["city"].casefold()].append(code)
    return dict(by_city)


def airport_codes_for_place(*, place: str) -> list[str]:
    """A 3-letter IATA code names that airport; anything else is a city name (every airport in
    it, case-insensitively). Read from the airport data package the Airport table is loaded
    from: static reference data, so no query on the hot path."""
    place = place.strip()
    if len(place) == 3 and place.isalpha() and place.upper() in airports():
        return [place.upper()]
    return sorted(_airports_by_city().get(place.casefold(), []))


def flight_keys(*, stops: QuerySet[FlightStop]) -> list[str] | QuerySet:
    """The flight keys of `stops`, for `flight_id__in`. Up to KEY_LIST_LIMIT keys are inlined:
    MySQL then reads the passenger index range by range, already in (flight, order) order, and
    stops at the end of the page, where a semi-join would sort every match first. A larger
    set stays a subquery."""
    stops = stops.order_by()  # FlightStop orders by its flight, which would join Flight
    keys = list(stops.values_list("flight_id", flat=True)[: KEY_LIST_LIMIT + 1])
    return sorted(set(keys)) if len(keys) <= KEY_LIST_LIMIT else stops.values("flight_id")


def flight_keys_touching(*, airports: list[str], date_from: date | None = None, date_to: date | None = None) -> list[str] | QuerySet:
    """Flights with a stop (origin, transfer or destination) at one of `airports` on a date in
    [date_from, date_to] (either end open when None)."""
    return flight_keys(stops=stops_touching(airports=airports, date_from=date_from, date_to=date_to))


def stops_touching(*, airports: list[str], date_from: date | None = None, date_to: date | None = None) -> QuerySet[FlightStop]:
    """The stops behind `flight_keys_touching`."""
    stops = FlightStop.objects.filter(airport_id__in=airports)
    if date_from:
        stops = stops.filter(flight_date__gte=date_from)
    if date_to:
        stops = stops.filter(flight_date__lte=date_to)
    return stops


def passengers_of_stops(*, stops: QuerySet[FlightStop], status: str | None) -> QuerySet[Booking]:
    """Bookings whose flight has one of `stops`, in flight order, for a paginated list.

    Two plans for one set of rows: a page is read with the flight keys inlined (`flight_keys`),
    and the exact count is summed from the per-flight counts of the same flights, a semi-join
    on the stops: one index entry per flight and status instead of one per booking (~18,000
    for a 7-day hub selection), and, unlike a plain join, a flight touching two selected
    airports (JFK and LHR under two alerts) is counted once."""
    stops = stops.order_by()  # FlightStop orders by its flight, which would join Flight
    bookings = booking_base(status=status)
    counted = CountFromTable(counts=counts_of(flight_keys=stops.values("flight_id"), status=status))
    # `counted_by` last: any later queryset call would drop the hint (by design, see it).
    return (
        bookings.filter(flight_id__in=flight_keys(stops=stops))
        .order_by(*BY_FLIGHT)
        .prefetch_related("customer", "flight")
        .counted_by(counted)
    )


def passenger_list_by_city(
    *, city: str, date_from: date | None = None, date_to: date | None = None, status: str | None = BookingStatus.ORDERED
) -> QuerySet[Booking]:
    airports = airport_codes_for_place(place=city)
    if not airports:
        return Booking.objects.none()
    return passengers_of_stops(stops=stops_touching(airports=airports, date_from=date_from, date_to=date_to), status=status)


def weather_alert_list(*, active_at: datetime | None = None, city: str = "") -> QuerySet[WeatherAlert]:
    alerts = WeatherAlert.objects.all()
    if active_at is not None:
        alerts = alerts.filter(valid_from__lte=active_at, valid_to__gt=active_at)
    if city:
        alerts = alerts.filter(Q(city__iexact=city) | Q(airport_id=city.upper()))
    return alerts.order_by("-valid_from", "-id")


@dataclass(frozen=True)
class AlertFootprint:
    """The airports an alert covers and, per airport, the local flight dates inside its window."""

    dates_by_airport: dict[str, tuple[date, date]]

    def stops_q(self) -> Q | None:
        # Airports sharing a date range (one city, one time zone) share a single IN clause.
        by_range: dict[tuple[date, date], list[str]] = defaultdict(list)
        for code, window in self.dates_by_airport.items():
            by_range[window].append(code)
        parts = [Q(airport_id__in=sorted(codes), flight_date__range=window) for window, codes in by_range.items()]
        return reduce(operator.or_, parts) if parts else None


def _local_dates(*, valid_from: datetime, valid_to: datetime, tz_name: str) -> tuple[date, date]:
    """The local calendar days that overlap the half-open window [valid_from, valid_to)."""
    try:
        tz = ZoneInfo(tz_name) if tz_name else ZoneInfo("UTC")
    except (ZoneInfoNotFoundError, ValueError):
        tz = ZoneInfo("UTC")
    return _local_day(valid_from, tz), _local_day(valid_to - timedelta(microseconds=1), tz)


def _local_day(instant: datetime, tz: ZoneInfo) -> date:
    """The local date of an instant; the calendar's own end at its ends. New alerts are kept
    within sane years (`WeatherAlert.clean`), but a row stored before that rule, or written
    another way, must not break every weather page with an OverflowError."""
    try:
        return instant.astimezone(tz).date()
    except OverflowError:
        return date.min if instant.year <= 1 else date.max


def alert_footprint(*, alert: WeatherAlert) -> AlertFootprint:
    if alert.airport_id:
        codes = [alert.airport_id]
    else:
        codes = [
            code
            for code in _airports_by_city().get(alert.city.casefold(), [])
            if not alert.country or airports()[code]["country"] == alert.country
        ]
    # An airport unknown to the airport data still has flights: its dates are taken in UTC.
    dates = {
        code: _local_dates(valid_from=alert.valid_from, valid_to=alert.valid_to, tz_name=airports().get(code, {}).get("tz", "UTC"))
        for code in codes
    }
    return AlertFootprint(dates_by_airport=dates)


def flight_keys_alerted(*, alerts: list[WeatherAlert]) -> list[str] | QuerySet | None:
    """Flights touching an alerted place on a date inside the alert (a subquery of flight
    keys), or None when the alerts cover no known airport."""
    stops = stops_alerted(alerts=alerts)
    return flight_keys(stops=stops) if stops is not None else None


def stops_alerted(*, alerts: list[WeatherAlert]) -> QuerySet[FlightStop] | None:
    """The stops behind `flight_keys_alerted` (None when the alerts cover no known airport)."""
    parts = [q for alert in alerts if (q := alert_footprint(alert=alert).stops_q()) is not None]
    return FlightStop.objects.filter(reduce(operator.or_, parts)) if parts else None


def passenger_list_by_alerts(*, alerts: list[WeatherAlert], status: str | None = BookingStatus.ORDERED) -> QuerySet[Booking]:
    """Bookings whose flight touches an alerted city or airport on a local date inside the
    alert's validity window."""
    stops = stops_alerted(alerts=alerts)
    if stops is None:
        return Booking.objects.none()
    return passengers_of_stops(stops=stops, status=status)


def passenger_list_by_weather(*, at: datetime | None = None, status: str | None = BookingStatus.ORDERED) -> QuerySet[Booking]:
    """Passengers affected by every alert valid at `at` (default: now)."""
    alerts = list(weather_alert_list(active_at=at or timezone.now()))
    return passenger_list_by_alerts(alerts=alerts, status=status)


def weather_airports_scheduled(*, today: date) -> list[str]:
    """ICAO codes of the airports flights stop at from yesterday to the day after tomorrow:
    the stations whose METARs `poll_weather` asks for."""
    stops = FlightStop.objects.filter(flight_date__range=(today - timedelta(days=1), today + timedelta(days=2)))
    codes = stops.order_by().values_list("airport_id", flat=True).distinct()
    return sorted({icao for code in codes if (icao := airports().get(code, {}).get("icao"))})


def weather_alerts_new_affecting(*, since: datetime, now: datetime, limit: int = 100) -> list[tuple[WeatherAlert, int]]:
    """Alerts created since `since` and not yet over that affect ORDERED passengers, with how
    many, most passengers first (the newest `limit` alerts are counted)."""
    alerts = WeatherAlert.objects.filter(created_at__gte=since, valid_to__gt=now).order_by("-created_at")[:limit]
    counted = [(alert, weather_alert_affected_count(alert=alert)[0]) for alert in alerts]
    return sorted([pair for pair in counted if pair[1]], key=lambda pair: -pair[1])


def customer_list(*, search: str = "") -> QuerySet[Customer]:
    """Live customers; `search` matches a customer id or a name prefix (both indexed)."""
    customers = Customer.objects.filter(deleted=False)
    if search:
        customers = customers.filter(Q(customer_id__istartswith=search) | Q(full_name__istartswith=search))
    return customers.order_by("customer_id")


@dataclass(frozen=True)
class BookingSearch:
    """What the admin's booking search box was given. Read as the most specific thing it can
    be, so the lookup stays on an index: a flight number; else an airport code or city name
    and/or a customer (id or name prefix) - both when the term is both, "Alice" being a
    customer and a city in Texas - else an order id."""

    kind: str  # "flight", "place", "customer" or "place+customer"
    airports: tuple[str, ...] = ()
    customer_ids: tuple[str, ...] = ()


def booking_search_parse(*, term: str) -> BookingSearch:
    if FLIGHT_NUMBER.fullmatch(term.upper()):
        return BookingSearch(kind="flight")
    airports = tuple(airport_codes_for_place(place=term))
    customers = Customer.objects.filter(Q(pk=term) | Q(full_name__istartswith=term)).order_by()
    # Unordered: any NAME_SEARCH_LIMIT matches will do, read straight off the two indexes.
    customer_ids = tuple(customers.values_list("customer_id", flat=True)[:NAME_SEARCH_LIMIT])
    if airports:
        return BookingSearch(kind="place+customer" if customer_ids else "place", airports=airports, customer_ids=customer_ids)
    return BookingSearch(kind="customer", customer_ids=customer_ids)


def booking_search(*, bookings: QuerySet[Booking], term: str) -> QuerySet[Booking]:
    """Bookings matching the search box (see `BookingSearch`); a place matches every booking
    whose flight touches it, transfers included; any term also matches an order id."""
    term = term.strip()
    if not term:
        return bookings
    search = booking_search_parse(term=term)
    if search.kind == "flight":
        return bookings.filter(flight_number=term.upper())
    matches = Q(order_id=term)
    if search.customer_ids:
        matches |= Q(customer_id__in=search.customer_ids)
    if search.airports:
        matches |= Q(flight_id__in=flight_keys_touching(airports=list(search.airports)))
    return bookings.filter(matches)


def flight_search(*, flights: QuerySet, term: str) -> QuerySet:
    """Flight number prefix, or flights touching an airport code or city."""
    term = term.strip()
    airports = airport_codes_for_place(place=term) if term else []
    if airports:
        return flights.filter(pk__in=flight_keys_touching(airports=airports))
    # Flight numbers are upper case (the command side's format) and compared byte for byte.
    return flights.filter(flight_number__startswith=term.upper()) if term else flights


# --- one flight (the staff portal's flight page) ----------------------------------------------
# Every count the flight page and its actions show comes from here, so the page, the action
# confirmations and the query API agree; the implementation can change (a counts table kept by
# the projection) without touching the pages.


def flight_bookings(*, flight: Flight, status: str | None = BookingStatus.ORDERED) -> QuerySet[Booking]:
    """The live bookings of this flight (default: ORDERED, the affected ones)."""
    return booking_base(status=status).filter(flight_id=flight.pk)


def _sent_notices() -> QuerySet[Notification]:
    return Notification.objects.filter(booking_id=OuterRef("pk"), status=NotificationStatus.SENT)


def flight_passenger_list(*, flight: Flight, status: str | None = None) -> QuerySet[Booking]:
    """The flight's passengers for the page: ORDERED first, each with its customer and the
    subject and time of the last notice sent about it."""
    last = _sent_notices().order_by("-created_at")
    bookings = flight_bookings(flight=flight, status=status).annotate(
        last_notice_subject=Subquery(last.values("subject")[:1]),
        last_notice_at=Subquery(last.values("created_at")[:1]),
    )
    return bookings.order_by("-status", "order_id").prefetch_related("customer")


def flight_event_list(*, flight: Flight) -> QuerySet[FlightEvent]:
    """Cancellations and delays the projection recorded for this flight, newest first."""
    return FlightEvent.objects.filter(flight_id=flight.pk).order_by("-created_at", "-id")


def flight_booked_schedule(*, flight: Flight) -> dict[str, str]:
    """The times the flight was booked under: the schedule before its first recorded change,
    or the current one when it never changed."""
    first = FlightEvent.objects.filter(flight_id=flight.pk, flight_created_at=flight.created_at).order_by("id").first()
    before = (first.detail or {}).get("from", {}) if first else {}
    return {
        # HH:MM (the images may carry seconds)
        "departure_time": (before.get("departure_time") or f"{flight.departure_time:%H:%M}")[:5],
        "arrival_time": (before.get("arrival_time") or f"{flight.arrival_time:%H:%M}")[:5],
    }


def flight_notice_summary(*, flight: Flight) -> list[dict]:
    """The notices sent about this flight's bookings, one row per reason: subject, how many
    were sent / failed / pending, first and last time."""
    bookings = Booking.objects.filter(flight_id=flight.pk).values("pk")
    rows = (
        Notification.objects.filter(booking_id__in=bookings)
        .values("reason")
        .annotate(
            subject=Max("subject"),
            sent=Count("pk", filter=Q(status=NotificationStatus.SENT)),
            failed=Count("pk", filter=Q(status=NotificationStatus.FAILED)),
            pending=Count("pk", filter=Q(status=NotificationStatus.PENDING)),
            first_at=Min("created_at"),
            last_at=Max("created_at"),
        )
        .order_by("-last_at")
    )
    return list(rows)


def flights_affected_count(*, flights: QuerySet[Flight]) -> int:
    """ORDERED bookings on any of `flights` (what a bulk cancel or delay reaches)."""
    return booking_base().filter(flight_id__in=flights.order_by().values("pk")).count()


AFFECTED_COUNT_CAP = 10_000


def weather_alert_affected_count(*, alert: WeatherAlert, cap: int = AFFECTED_COUNT_CAP) -> tuple[int, bool]:
    """(ORDERED bookings the alert touches, whether there are more than `cap`): exact up to the
    cap, like the admin's list counts, so a list of alerts never counts a hub's whole month."""
    n = passenger_list_by_alerts(alerts=[alert]).order_by().values("pk")[: cap + 1].count()
    return min(n, cap), n > cap
