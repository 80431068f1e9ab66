"""Command-side business rules. Keyword-only, typed; DynamoDB access goes through `repository`.

Concurrency model: every write is conditional. Seat counts are guarded by their own
condition (`seats_booked < capacity`), so bookings on one flight do not conflict with each
other, only with a full cabin. A lost race on an item's version is retried here when the
operation is safe to retry, and surfaces as 409/412 when the caller named a version.
"""

import hashlib
import random
import time
import uuid
from collections.abc import Callable
from datetime import UTC, date, datetime
from datetime import time as clock_time
from zoneinfo import ZoneInfo

from airticket import observability
from airticket.airports import airports
from airticket.errors import BadRequest, Conflict, NotFound, PreconditionFailed

from . import repository as repo
from .repository import ConditionFailed

ORDERED, CANCELLED = "ORDERED", "CANCELLED"
SCHEDULED, DELAYED = "SCHEDULED", "DELAYED"
FLIGHT_CANCELLED = "CANCELLED"
_RETRIES = 12


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def _backoff(attempt: int) -> None:
    observability.count("CommandConditionRetries")  # a lost race, tried again
    time.sleep(random.uniform(0, min(0.2, 0.005 * 2**attempt)))


def _public(item: dict) -> dict:
    return {k: v for k, v in item.items() if k not in ("PK", "SK", "entity")}


# An idempotency outcome to commit with a command's own writes (see `bookings.idempotency`):
# given the command's result, the transaction action that records it.
Recorder = Callable[[dict], dict]


def _commit(actions: list[dict], *, result: dict, record: Recorder | None) -> None:
    """One transaction of `actions`, with `record`'s outcome last when given. A failed record
    condition means another request took over this one's Idempotency-Key: nothing is written,
    and the caller is told to retry (the retry replays whatever the other request answers)."""
    if record is None:
        repo.transact(actions)
        return
    try:
        repo.transact([*actions, record(result)])
    except ConditionFailed as exc:
        if exc.failed(len(actions)):
            raise Conflict("a retry with this Idempotency-Key took over this request", code="idempotency_in_progress") from None
        raise


def _create(key: dict, item: dict, *, record: Recorder | None) -> None:
    """Create an item (ConditionFailed if it exists), with its idempotency outcome if given."""
    if record is None:
        repo.put_new(key, item)
    else:
        _commit([repo.put_action(key, item)], result=_public(item), record=record)


# --- customers ----------------------------------------------------------------------------


def customer_register(*, customer_id: str, full_name: str, mobile: str = "", email: str = "", record: Recorder | None = None) -> dict:
    now = _now()
    item = {
        "entity": repo.CUSTOMER,
        "customer_id": customer_id,
        "full_name": full_name,
        "mobile": mobile,
        "email": email,
        "version": 1,
        "created_at": now,
        "updated_at": now,
    }
    try:
        _create(repo.customer_key(customer_id), item, record=record)
    except ConditionFailed:
        raise Conflict(f"customer {customer_id} already exists", code="customer_exists") from None
    return _public(item)


def customer_get(*, customer_id: str) -> dict:
    profile = repo.get(repo.customer_key(customer_id))
    if profile is None:
        raise NotFound(f"customer {customer_id} not found")
    return _public(profile)


def customer_get_with_orders(*, customer_id: str) -> dict:
    """Profile and orders from one strongly consistent query of the customer's partition."""
    items = repo.query_partition(f"CUSTOMER#{customer_id}")
    profile = next((i for i in items if i["SK"] == "PROFILE"), None)
    if profile is None:
        raise NotFound(f"customer {customer_id} not found")
    orders = sorted((_public(i) for i in items if i.get("entity") == repo.ORDER), key=lambda o: o["created_at"], reverse=True)
    return {**_public(profile), "orders": orders}


def orders_digest(*, orders: list[dict]) -> str:
    """A digest of the orders' ids and versions: it changes when an order is added, removed or
    changed (every change bumps the order's version). Part of a customer's entity tag."""
    text = "\n".join(sorted(f"{order['order_id']}:{order['version']}" for order in orders))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def customer_update(
    *, customer_id: str, changes: dict, expected_version: int | None = None, expected_orders_digest: str | None = None
) -> dict:
    """Set profile fields in one conditional update (no read first): the item must exist and,
    with If-Match, carry the expected version. Fields are set, not computed from what was
    read, so without If-Match the last writer wins per field and the version still moves.

    `expected_orders_digest` comes with the tag of the customer read with its orders: the
    orders must still be the ones read. They are checked by a read just before the update
    (the profile's own version is still checked by the update itself): an order changed in the
    milliseconds between the two is not seen, which only a transaction over every order could."""
    if expected_orders_digest is not None:
        current = customer_get_with_orders(customer_id=customer_id)
        if orders_digest(orders=current["orders"]) != expected_orders_digest:
            raise PreconditionFailed("the customer's orders changed since they were read")
    if changes:
        try:
            return _public(repo.update_versioned(repo.customer_key(customer_id), changes, expected_version=expected_version, now=_now()))
        except ConditionFailed:
            pass  # absent, or another version: read to say which
    current = customer_get(customer_id=customer_id)
    if expected_version is not None and current["version"] != expected_version:
        raise PreconditionFailed(f"customer version is {current['version']}, not {expected_version}")
    if changes:  # it exists at the expected version now: it was created or reverted meanwhile
        raise Conflict("customer is being changed concurrently, try again", code="busy")
    return current


# --- flights --------------------------------------------------------------------------------


# A flight is dated by its origin's calendar. It can be created from that airport's today up to
# the end of the year this many years ahead: airlines sell about a year out, the margin leaves room for long-range
# schedules, and a year-9999 (or year-1) typo is refused rather than booked.
FLIGHT_HORIZON_YEARS = 10


def origin_today(*, origin: str) -> date:
    """Today's date at an airport, by the clock the code reads."""
    return datetime.now(UTC).astimezone(ZoneInfo(airports()[origin]["tz"])).date()


def flight_departure(*, flight: dict) -> datetime:
    """When a flight leaves (its current schedule), as an aware instant."""
    local = datetime.combine(date.fromisoformat(flight["flight_date"]), clock_time.fromisoformat(flight["departure_time"]))
    return local.replace(tzinfo=ZoneInfo(airports()[flight["origin"]]["tz"]))


def _flight_date_check(*, flight_date: str, origin: str) -> None:
    today = origin_today(origin=origin)
    day = date.fromisoformat(flight_date)
    if day < today:
        raise BadRequest(
            f"flight date {flight_date} is in the past at {origin} (today there is {today})",
            fields={"flight_date": f"must be {today} or later (the date at {origin})"},
        )
    latest = date(today.year + FLIGHT_HORIZON_YEARS, 12, 31)
    if day > latest:
        raise BadRequest(
            f"flight date {flight_date} is more than {FLIGHT_HORIZON_YEARS} years ahead",
            fields={"flight_date": f"must be {latest} or earlier"},
        )


def flight_create(
    *,
    flight_number: str,
    flight_date: str,
    origin: str,
    transfers: list[str],
    destination: str,
    departure_time: str,
    arrival_time: str,
    capacity: int,
    record: Recorder | None = None,
) -> dict:
    _flight_date_check(flight_date=flight_date, origin=origin)
    now = _now()
    item = {
        "entity": repo.FLIGHT,
        "flight_number": flight_number,
        "flight_date": flight_date,
        "origin": origin,
        "transfers": list(transfers),
        "destination": destination,
        "departure_time": departure_time,
        "arrival_time": arrival_time,
        "capacity": capacity,
        "seats_booked": 0,
        "status": SCHEDULED,
        # Bumped only when the route or times change: bookings check it so their route
        # snapshot is current, without conflicting with each other on `version`.
        "schedule_version": 1,
        "version": 1,
        "created_at": now,
        "updated_at": now,
    }
    try:
        _create(repo.flight_key(flight_number, flight_date), item, record=record)
    except ConditionFailed:
        raise Conflict(f"flight {flight_number} on {flight_date} already exists", code="flight_exists") from None
    return _public(item)


def flight_get(*, flight_number: str, flight_date: str) -> dict:
    flight = repo.get(repo.flight_key(flight_number, flight_date))
    if flight is None:
        raise NotFound(f"flight {flight_number} on {flight_date} not found")
    return _public(flight)


def flight_reschedule(
    *,
    flight_number: str,
    flight_date: str,
    departure_time: str | None = None,
    arrival_time: str | None = None,
    capacity: int | None = None,
    expected_version: int | None = None,
) -> dict:
    """Change times (which marks the flight DELAYED) and/or capacity (never below seats booked)."""
    for attempt in range(_RETRIES):
        flight = flight_get(flight_number=flight_number, flight_date=flight_date)
        if expected_version is not None and flight["version"] != expected_version:
            raise PreconditionFailed(f"flight version is {flight['version']}, not {expected_version}")
        if flight["status"] == FLIGHT_CANCELLED:
            raise Conflict("flight is cancelled", code="flight_cancelled")
        if capacity is not None and capacity < flight["seats_booked"]:
            raise Conflict(
                f"capacity {capacity} is below the {flight['seats_booked']} seats already booked", code="capacity_below_bookings"
            )
        changes: dict = {}
        times = {"departure_time": departure_time, "arrival_time": arrival_time}
        for field, value in times.items():
            if value is not None and value != flight[field]:
                changes[field] = value
        if changes:
            changes["status"] = DELAYED
            changes["schedule_version"] = flight.get("schedule_version", 1) + 1
        if capacity is not None and capacity != flight["capacity"]:
            changes["capacity"] = capacity
        if not changes:
            return flight
        try:
            return _public(
                repo.update_versioned(
                    repo.flight_key(flight_number, flight_date),
                    changes,
                    expected_version=flight["version"],
                    now=_now(),
                )
            )
        except ConditionFailed:
            if expected_version is not None:
                raise PreconditionFailed("flight changed concurrently") from None
            _backoff(attempt)
    raise Conflict("flight is being changed concurrently, try again", code="busy")


def flight_cancel(*, flight_number: str, flight_date: str) -> dict:
    """Cancel a flight. Cancelling a cancelled flight is a no-op. Bookings stay as they are:
    the query side notifies their passengers when the change reaches it."""
    for attempt in range(_RETRIES):
        flight = flight_get(flight_number=flight_number, flight_date=flight_date)
        if flight["status"] == FLIGHT_CANCELLED:
            return flight
        try:
            return _public(
                repo.update_versioned(
                    repo.flight_key(flight_number, flight_date),
                    {"status": FLIGHT_CANCELLED},
                    expected_version=flight["version"],
                    now=_now(),
                )
            )
        except ConditionFailed:
            _backoff(attempt)
    raise Conflict("flight is being changed concurrently, try again", code="busy")


# --- orders ---------------------------------------------------------------------------------


def _seat_take(flight: dict, now: str) -> dict:
    return repo.versioned_update(
        repo.flight_key(flight["flight_number"], flight["flight_date"]),
        {},
        expected_version=None,
        now=now,
        increments={"seats_booked": 1},
        # The snapshot the order copies must still be this flight's: same incarnation
        # (created_at) and schedule; and the cabin must still have room.
        extra_condition="#status <> :cancelled AND seats_booked < #capacity AND schedule_version = :sv AND created_at = :created",
        extra_values=repo.values(cancelled=FLIGHT_CANCELLED, sv=flight.get("schedule_version", 1), created=flight["created_at"]),
        extra_names={"#status": "status", "#capacity": "capacity"},
    )


def _seat_free(order: dict, now: str) -> list[dict]:
    """The action freeing an order's seat on the flight incarnation it was booked on, or none
    when that incarnation is gone (the flight removed, or removed and created again under the
    same number and date): its seats are not the new flight's to give back."""
    incarnation = order.get("flight_created_at")
    flight = repo.get(repo.flight_key(order["flight_number"], order["flight_date"]))
    if flight is None or (incarnation is not None and flight["created_at"] != incarnation):
        return []
    # Orders written before they carried their flight's incarnation free a seat on whatever
    # flight holds the key, as before.
    condition, condition_values = "seats_booked > :zero", repo.values(zero=0)
    if incarnation is not None:
        condition, condition_values = f"{condition} AND created_at = :created", repo.values(zero=0, created=incarnation)
    return [
        repo.versioned_update(
            repo.flight_key(order["flight_number"], order["flight_date"]),
            {},
            expected_version=None,
            now=now,
            increments={"seats_booked": -1},
            extra_condition=condition,
            extra_values=condition_values,
        )
    ]


def _route(flight: dict) -> dict:
    return {
        "flight_number": flight["flight_number"],
        "flight_date": flight["flight_date"],
        "origin": flight["origin"],
        "transfers": flight["transfers"],
        "destination": flight["destination"],
        "departure_time": flight["departure_time"],
        "arrival_time": flight["arrival_time"],
        # Which incarnation of the flight the seat was taken on (see `_seat_free`), and which
        # version of it the booking saw: `_seat_take` conditions on the schedule, so a booking
        # saw every schedule change below this version and none above (the query side tells a
        # passenger only of the delays made after they booked).
        "flight_created_at": flight["created_at"],
        "flight_version": flight["version"],
    }


# Flights a booking copied recently, per process: (expires at, flight). Booking on a cached copy
# is safe because `_seat_take` conditions on the copy's incarnation, schedule, status and
# seats; a stale copy costs one failed transaction, and the retry reads the flight afresh. It
# saves a read per booking (bookings on one flight are the common case).
_FLIGHTS: dict[tuple[str, str], tuple[float, dict]] = {}
_FLIGHT_CACHE_SECONDS = 30.0
_FLIGHT_CACHE_SIZE = 4096


def _flight_to_book(flight_number: str, flight_date: str, *, fresh: bool) -> dict:
    key = (flight_number, flight_date)
    cached = None if fresh else _FLIGHTS.get(key)
    if cached and cached[0] > time.monotonic():
        return cached[1]
    flight = _bookable_flight(flight_number, flight_date)
    if len(_FLIGHTS) >= _FLIGHT_CACHE_SIZE:
        _FLIGHTS.clear()
    _FLIGHTS[key] = (time.monotonic() + _FLIGHT_CACHE_SECONDS, flight)
    return flight


def _flight_not_departed(flight: dict) -> dict:
    """A flight that has left (by its current schedule) takes no new bookings: 409, a state the
    caller cannot change by fixing the request. Checked on the cached copy too: time moves on."""
    if flight_departure(flight=flight) <= datetime.now(UTC):
        raise Conflict(f"flight {flight['flight_number']} on {flight['flight_date']} has departed", code="flight_departed")
    return flight


def _bookable_flight(flight_number: str, flight_date: str) -> dict:
    flight = flight_get(flight_number=flight_number, flight_date=flight_date)
    if flight["status"] == FLIGHT_CANCELLED:
        raise Conflict(f"flight {flight_number} on {flight_date} is cancelled", code="flight_cancelled")
    if flight["seats_booked"] >= flight["capacity"]:
        raise Conflict(f"flight {flight_number} on {flight_date} is full", code="flight_full")
    return flight


def _guard(customer_id: str, flight: dict, order_id: str, now: str) -> dict:
    return repo.put_action(
        repo.guard_key(customer_id, flight["flight_number"], flight["flight_date"]),
        {"entity": repo.BOOKING_GUARD, "order_id": order_id, "created_at": now},
    )


def _guard_release(customer_id: str, flight_number: str, flight_date: str, order_id: str) -> dict:
    # A guard already gone (a truncate removed it with the flight) has nothing to release.
    return repo.delete_action(
        repo.guard_key(customer_id, flight_number, flight_date),
        condition="attribute_not_exists(PK) OR order_id = :oid",
        condition_values=repo.values(oid=order_id),
    )


def order_place(*, customer_id: str, flight_number: str, flight_date: str, record: Recorder | None = None) -> dict:
    """Book a seat: the order, its guard and the flight's seat count change in one transaction."""
    for attempt in range(_RETRIES):
        flight = _flight_not_departed(_flight_to_book(flight_number, flight_date, fresh=attempt > 0))
        now = _now()
        order_id = uuid.uuid4().hex
        order = {
            "entity": repo.ORDER,
            "order_id": order_id,
            "customer_id": customer_id,
            **_route(flight),
            "status": ORDERED,
            "version": 1,
            "created_at": now,
            "updated_at": now,
        }
        actions = [
            repo.check_exists_action(repo.customer_key(customer_id)),
            _guard(customer_id, flight, order_id, now),
            _seat_take(flight, now),
            repo.put_action(repo.order_key(customer_id, order_id), order),
        ]
        try:
            _commit(actions, result=_public(order), record=record)
            return _public(order)
        except ConditionFailed as exc:
            if exc.failed(0):
                raise NotFound(f"customer {customer_id} not found") from None
            if exc.failed(1):
                raise Conflict(
                    f"customer {customer_id} already holds a booking on {flight_number} {flight_date}", code="already_booked"
                ) from None
            # The flight changed (full, cancelled, rescheduled) or the transaction collided:
            # re-read and try again; `_bookable_flight` raises the right error if it is final.
            _backoff(attempt)
    raise Conflict("flight is too busy, try again", code="busy")


def order_list(*, customer_id: str) -> list[dict]:
    return customer_get_with_orders(customer_id=customer_id)["orders"]


def order_get(*, customer_id: str, order_id: str) -> dict:
    order = repo.get(repo.order_key(customer_id, order_id))
    if order is None:
        raise NotFound(f"order {order_id} not found")
    return _public(order)


def order_cancel(*, customer_id: str, order_id: str) -> dict:
    """Cancel a booking and free its seat. Cancelling a cancelled order is a no-op."""
    for attempt in range(_RETRIES):
        order = order_get(customer_id=customer_id, order_id=order_id)
        if order["status"] == CANCELLED:
            return order
        now = _now()
        actions = [
            repo.versioned_update(repo.order_key(customer_id, order_id), {"status": CANCELLED}, expected_version=order["version"], now=now),
            _guard_release(customer_id, order["flight_number"], order["flight_date"], order_id),
            *_seat_free(order, now),
        ]
        try:
            repo.transact(actions)
            return {**order, "status": CANCELLED, "version": order["version"] + 1, "updated_at": now}
        except ConditionFailed:
            _backoff(attempt)
    raise Conflict("order is being changed concurrently, try again", code="busy")


def order_change(
    *,
    customer_id: str,
    order_id: str,
    flight_number: str,
    flight_date: str,
    expected_version: int | None = None,
) -> dict:
    """Move a booking to another flight or date: frees the old seat, takes the new one."""
    for attempt in range(_RETRIES):
        order = order_get(customer_id=customer_id, order_id=order_id)
        if expected_version is not None and order["version"] != expected_version:
            raise PreconditionFailed(f"order version is {order['version']}, not {expected_version}")
        if order["status"] != ORDERED:
            raise Conflict("only an ORDERED booking can be changed", code="order_not_active")
        if (order["flight_number"], order["flight_date"]) == (flight_number, flight_date):
            return order
        flight = _flight_not_departed(_flight_to_book(flight_number, flight_date, fresh=attempt > 0))
        now = _now()
        changes = _route(flight)
        actions = [
            repo.versioned_update(repo.order_key(customer_id, order_id), changes, expected_version=order["version"], now=now),
            _guard(customer_id, flight, order_id, now),
            _seat_take(flight, now),
            _guard_release(customer_id, order["flight_number"], order["flight_date"], order_id),
            *_seat_free(order, now),
        ]
        try:
            repo.transact(actions)
            return {**order, **changes, "version": order["version"] + 1, "updated_at": now}
        except ConditionFailed as exc:
            if exc.failed(1):
                raise Conflict(
                    f"customer {customer_id} already holds a booking on {flight_number} {flight_date}", code="already_booked"
                ) from None
            if exc.failed(0) and expected_version is not None:
                raise PreconditionFailed("order changed concurrently") from None
            _backoff(attempt)
    raise Conflict("order is being changed concurrently, try again", code="busy")
