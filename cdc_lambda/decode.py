"""One Kinesis record -> one validated change, or a reason it can never be applied.

A record of a Lambda Kinesis event carries, base64-encoded, the JSON that DynamoDB's Kinesis
streaming destination writes. `decode` returns a `Change` for an item the read side projects
(customer, order, flight), `None` for an item it deliberately ignores (booking guards,
idempotency records), and raises `Poison` for anything else. Nothing here touches the database,
so a poison record is known before the batch's transaction starts.

Rows are tuples in the column order of `TARGETS` (key, version, deleted, ...), ready for the
bulk statements in `projection`: no ORM objects in the hot path.
"""

import binascii
import functools
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from decimal import Decimal, InvalidOperation
from typing import NamedTuple

from boto3.dynamodb.types import TypeDeserializer

from admin_portal.models import Booking, BookingStatus, Customer, Flight, FlightEventKind, FlightStatus
from bookings import repository as repo

CUSTOMER, ORDER, FLIGHT = repo.CUSTOMER, repo.ORDER, repo.FLIGHT
# Known item types the read side has no model for: skipped on purpose, never poison.
IGNORED = frozenset({repo.BOOKING_GUARD, repo.IDEMPOTENCY})
EVENT_NAMES = frozenset({"INSERT", "MODIFY", "REMOVE"})

_deserializer = TypeDeserializer()
_json_decode = json.JSONDecoder().decode


class Poison(Exception):
    """The record can never be applied, however often it is retried."""


@dataclass(frozen=True, slots=True)
class Target:
    """Where an entity lands: the table and its columns, key first, then version and deleted."""

    model: type
    columns: tuple[str, ...]

    @property
    def table(self) -> str:
        return self.model._meta.db_table


_PROJECTED = ("version", "deleted", "created_at", "updated_at")
TARGETS = {
    CUSTOMER: Target(Customer, ("customer_id", *_PROJECTED, "full_name", "mobile", "email")),
    ORDER: Target(
        Booking,
        (
            "order_id",
            *_PROJECTED,
            "customer_id",
            "flight_id",
            "flight_number",
            "flight_date",
            "origin",
            "transfers",
            "destination",
            "departure_time",
            "arrival_time",
            "status",
            "flight_created_at",
            "flight_version",
        ),
    ),
    FLIGHT: Target(
        Flight,
        (
            "flight_key",
            *_PROJECTED,
            "flight_number",
            "flight_date",
            "origin_id",
            "transfers",
            "destination_id",
            "departure_time",
            "arrival_time",
            "capacity",
            "seats_booked",
            "status",
        ),
    ),
}


# Where created_at sits in every row (key first, then _PROJECTED).
CREATED_AT = 1 + _PROJECTED.index("created_at")


@dataclass(slots=True)
class Change:
    entity: str
    key: str
    version: int
    deleted: bool
    row: tuple
    route: tuple[str, ...] = ()  # flights only: origin, transfers..., destination
    events: tuple[tuple[str, str], ...] = ()  # flights only: (kind, detail JSON)

    @property
    def rank(self) -> tuple[str, int]:
        """Which of two changes of a key is newer. The version orders the changes of one item;
        the creation time orders incarnations, because a deleted item (a truncate) may be
        created again, starting over at version 1, and must win over its old tombstone."""
        return self.row[CREATED_AT], self.version


def _max_length(model: type, field: str) -> int:
    return model._meta.get_field(field).max_length


def flight_key(flight_number: str, flight_date: str) -> str:
    """Flight.flight_key: the DynamoDB key without its "FLIGHT#" prefix."""
    return f"{flight_number}#{flight_date}"


def _value(attr):
    """DynamoDB JSON -> Python through boto3's TypeDeserializer (the general path)."""
    try:
        return _deserializer.deserialize(attr)
    except (TypeError, ValueError, AttributeError, KeyError, IndexError, InvalidOperation) as exc:
        raise Poison(f"not a DynamoDB attribute value: {attr!r:.80}") from exc


def _fast(attr, tag: str):
    """The hot path for the type an attribute should have ({"S": ...}, {"N": "<digits>"}, a list
    of strings); anything else goes through TypeDeserializer, and the check then decides."""
    if type(attr) is dict:
        raw = attr.get(tag)
        if tag == "S" and type(raw) is str:
            return raw
        if tag == "N" and type(raw) is str and raw.isdigit():
            return int(raw)
        if tag == "L" and type(raw) is list and all(type(item) is dict and type(item.get("S")) is str for item in raw):
            return [item["S"] for item in raw]
    return _value(attr)


# --- what each attribute must be ----------------------------------------------------------------
# A check takes the deserialised value and returns what the row stores, or raises ValueError or
# TypeError; `what` names the expectation in the poison message.


@dataclass(frozen=True, slots=True)
class Kind:
    tag: str
    check: Callable
    what: str


def _text(limit: int, *, blank: bool = False) -> Kind:
    def check(value):
        if type(value) is not str or len(value) > limit or (not blank and not value):
            raise ValueError
        return value

    return Kind("S", check, f"a {'' if blank else 'non-empty '}string of at most {limit} characters")


def _count(limit: int) -> Kind:
    """A non-negative integer the column can hold (a bigger one is poison, not a database error
    that would fail the whole batch)."""

    def check(value) -> int:
        if type(value) is Decimal and value == value.to_integral_value():
            value = int(value)
        if type(value) is not int or not 0 <= value <= limit:
            raise ValueError
        return value

    return Kind("N", check, f"an integer from 0 to {limit}")


def _code(value) -> str:
    if type(value) is not str or len(value) != 3:
        raise ValueError
    return value


def _codes(value) -> list[str]:
    if type(value) is not list or not all(type(code) is str and len(code) == 3 for code in value):
        raise ValueError
    return value


def _choice(choices) -> Kind:
    def check(value):
        if value not in choices:
            raise ValueError
        return value

    return Kind("S", check, f"one of {sorted(choices)}")


# Dates and times of day repeat across a batch (flight dates, departure times): parse each once.
@functools.lru_cache(maxsize=4096)
def _iso_day(value: str) -> str:
    # Re-serialised: fromisoformat also accepts forms such as "20261201".
    return date.fromisoformat(value).isoformat()


@functools.lru_cache(maxsize=4096)
def _iso_clock(value: str) -> str:
    parsed = time.fromisoformat(value)
    if parsed.tzinfo is not None:
        raise ValueError("a time of day with an offset")
    return parsed.isoformat()


def _utc_text(value: str) -> str:
    parsed = datetime.fromisoformat(value)
    if parsed.tzinfo is None:
        raise ValueError("no UTC offset")
    if len(value) == 27 and value[26] == "Z" and value[20:26] != "000000":
        # What the command side writes ("2026-11-26T14:45:49.123456Z"): already UTC, and
        # slicing gives exactly str() of the naive datetime, without building one.
        return f"{value[:10]} {value[11:26]}"
    return str(parsed.astimezone(UTC).replace(tzinfo=None))


VERSION = _count(2**63 - 1)  # PositiveBigIntegerField
SEATS = _count(2**31 - 1)  # PositiveIntegerField
CODE = Kind("S", _code, "an IATA code")
CODES = Kind("L", _codes, "a list of IATA codes")
DAY = Kind("S", _iso_day, "an ISO date")
CLOCK = Kind("S", _iso_clock, "a local time of day")
INSTANT = Kind("S", _utc_text, "an ISO timestamp with a UTC offset")
OPTIONAL = True  # third element of a field: the attribute may be absent (stored as "")


def _from_digits(check: Callable) -> Callable:
    def fast(raw):
        if type(raw) is not str or not raw.isdigit():
            raise ValueError
        return check(int(raw))

    return fast


def _from_strings(check: Callable) -> Callable:
    return lambda raw: check([item["S"] for item in raw])


_FROM_RAW = {"S": lambda check: check, "N": _from_digits, "L": _from_strings}


class Fields(NamedTuple):
    """What `values` reads: `fast` as (attribute, tag, check of the raw DynamoDB value), for
    the usual image; `exact` as (attribute, tag, check, what, optional), for everything else."""

    fast: tuple
    exact: tuple


def fields(*spec: tuple) -> Fields:
    """(attribute, Kind[, OPTIONAL]) ... -> flat tuples, so the hot loop does no attribute look-ups."""
    return Fields(
        fast=tuple((name, kind.tag, _FROM_RAW[kind.tag](kind.check)) for name, kind, *_ in spec),
        exact=tuple((name, kind.tag, kind.check, kind.what, bool(rest and rest[0])) for name, kind, *rest in spec),
    )


def values(image: dict, spec: Fields, label: str) -> list:
    """The checked values of the fields, in order; Poison names the first attribute that is
    missing or wrong."""
    try:  # nearly every image: each attribute present, with the tag and value it should have
        return [check(image[name][tag]) for name, tag, check in spec.fast]
    except (KeyError, TypeError, ValueError, AttributeError):
        pass  # the loop below accepts other encodings of a value (through TypeDeserializer), or finds the culprit
    out = []
    for name, tag, check, what, optional in spec.exact:
        attr = image.get(name)
        if attr is None:
            if optional:
                out.append("")
                continue
            raise Poison(f"{label}.{name} is missing")
        raw = attr.get(tag) if type(attr) is dict else None
        try:
            out.append(check(raw if tag == "S" and type(raw) is str else _fast(attr, tag)))
        except (TypeError, ValueError, Poison):
            raise Poison(f"{label}.{name} is not {what}: {attr!r:.80}") from None
    return out


def _image(stream: dict, which: str) -> dict:
    image = stream.get(which)
    if type(image) is not dict:
        raise Poison(f"{which} is missing" if image is None else f"{which} is not a map")
    return image


# --- one parser per projected entity -------------------------------------------------------

_STAMPS = (("version", VERSION), ("created_at", INSTANT), ("updated_at", INSTANT))
_ROUTE = (("origin", CODE), ("transfers", CODES), ("destination", CODE), ("departure_time", CLOCK), ("arrival_time", CLOCK))
_FLIGHT_NUMBER = _text(_max_length(Flight, "flight_number"))
_FIELDS = {
    CUSTOMER: fields(
        ("customer_id", _text(_max_length(Customer, "customer_id"))),
        *_STAMPS,
        ("full_name", _text(_max_length(Customer, "full_name"))),
        ("mobile", _text(_max_length(Customer, "mobile"), blank=True), OPTIONAL),
        ("email", _text(_max_length(Customer, "email"), blank=True), OPTIONAL),
    ),
    ORDER: fields(
        ("order_id", _text(_max_length(Booking, "order_id"))),
        *_STAMPS,
        ("customer_id", _text(_max_length(Customer, "customer_id"))),
        ("flight_number", _FLIGHT_NUMBER),
        ("flight_date", DAY),
        *_ROUTE,
        ("status", _choice(frozenset(BookingStatus.values))),
        # Absent from orders written before they carried their flight's incarnation.
        ("flight_created_at", INSTANT, OPTIONAL),
        ("flight_version", VERSION, OPTIONAL),
    ),
    FLIGHT: fields(
        ("flight_number", _FLIGHT_NUMBER),
        *_STAMPS,
        ("flight_date", DAY),
        *_ROUTE,
        ("capacity", SEATS),
        ("seats_booked", SEATS),
        ("status", _choice(frozenset(FlightStatus.values))),
    ),
}


def _require_key(keys: dict, expected: dict) -> None:
    """The item's key must be the one its attributes imply, or the row would land elsewhere."""
    if keys != expected:
        raise Poison(f"key {keys} does not match the item's attributes (expected {expected})")


def _customer(image: dict, label: str, keys: dict, removed: bool) -> Change:
    customer_id, version, created, updated, full_name, mobile, email = values(image, _FIELDS[CUSTOMER], label)
    _require_key(keys, repo.customer_key(customer_id))
    version += removed  # a removal leaves a tombstone one version past the last image
    return Change(CUSTOMER, customer_id, version, removed, (customer_id, version, removed, created, updated, full_name, mobile, email))


@functools.lru_cache(maxsize=4096)
def _codes_json(*codes: str) -> str:
    """The JSON of a list of transfer airports: few routes recur across a batch."""
    return json.dumps(list(codes))


def _order(image: dict, label: str, keys: dict, removed: bool) -> Change:
    order_id, version, created, updated, customer_id, number, day, origin, transfers, destination, departs, arrives, status, *flight = (
        values(image, _FIELDS[ORDER], label)
    )
    incarnation, flight_version = flight
    _require_key(keys, repo.order_key(customer_id, order_id))
    version += removed
    row = (order_id, version, removed, created, updated, customer_id, flight_key(number, day), number, day, origin)
    row += (_codes_json(*transfers), destination, departs, arrives, status, incarnation or None)
    row += (None if flight_version == "" else flight_version,)
    return Change(ORDER, order_id, version, removed, row)


def _flight(image: dict, label: str, keys: dict, removed: bool) -> Change:
    number, version, created, updated, day, origin, transfers, destination, departs, arrives, capacity, seats, status = values(
        image, _FIELDS[FLIGHT], label
    )
    _require_key(keys, repo.flight_key(number, day))
    key = flight_key(number, day)
    version += removed
    row = (key, version, removed, created, updated, number, day, origin, _codes_json(*transfers), destination, departs, arrives, capacity)
    row += (seats, status)
    return Change(FLIGHT, key, version, removed, row, route=(origin, *transfers, destination))


_PARSERS = {CUSTOMER: _customer, ORDER: _order, FLIGHT: _flight}


# --- flight domain events --------------------------------------------------------------------

_SCHEDULE = fields(("status", _choice(frozenset(FlightStatus.values))), ("departure_time", CLOCK), ("arrival_time", CLOCK))


def _schedule(image: dict, label: str) -> dict:
    return dict(zip(("status", "departure_time", "arrival_time"), values(image, _SCHEDULE, label), strict=True))


def flight_events(old: dict, new: dict) -> tuple[tuple[str, str], ...]:
    """CANCELLED when a flight becomes cancelled; DELAYED when it becomes delayed or its times
    move. Derived from the record's own two images, not from the read model, so a late or
    repeated record yields the same event (FlightEvent is unique per flight/kind/version)."""
    before, after = _schedule(old, "OldImage"), _schedule(new, "NewImage")
    cancelled = FlightStatus.CANCELLED
    if after["status"] == cancelled:
        kind = FlightEventKind.CANCELLED if before["status"] != cancelled else None
    elif (after["status"] == FlightStatus.DELAYED and before["status"] != FlightStatus.DELAYED) or _times(before) != _times(after):
        kind = FlightEventKind.DELAYED
    else:
        kind = None
    if kind is None:
        return ()
    return ((str(kind), json.dumps({"from": before, "to": after}, sort_keys=True, separators=(",", ":"))),)


def _times(schedule: dict) -> tuple[str, str]:
    return schedule["departure_time"], schedule["arrival_time"]


# --- the record --------------------------------------------------------------------------------


def payload(record: dict) -> dict:
    """The change record inside a Lambda Kinesis record: base64 -> JSON object."""
    try:
        # strict_mode: refuse non-alphabet characters and bad padding (C speed, no regex).
        raw = binascii.a2b_base64(record["kinesis"]["data"], strict_mode=True)
    except (KeyError, TypeError, binascii.Error, ValueError) as exc:
        raise Poison(f"data is not base64: {exc}") from None
    try:
        decoded = _json_decode(raw.decode())  # the streaming destination writes UTF-8
    except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError
        raise Poison(f"data is not JSON: {exc}") from None
    if type(decoded) is not dict:
        raise Poison("data is not a JSON object")
    return decoded


_KEY_TEXT = _text(1024)
_KEYS = fields(("PK", _KEY_TEXT), ("SK", _KEY_TEXT))


def decode(record: dict) -> Change | None:
    """The change a Lambda Kinesis record carries; None for items the read model skips;
    Poison for anything that can never be applied."""
    try:
        return _decode(record)
    except (TypeError, ArithmeticError) as exc:
        # The checks above name what they expect; this catches what they did not foresee
        # (an unhashable eventName, a number too large for Decimal, a year-1 timestamp that
        # overflows on conversion to UTC), so no malformed record escapes as a function error.
        raise Poison(f"malformed record: {type(exc).__name__}: {exc}"[:300]) from None


def _decode(record: dict) -> Change | None:
    change = payload(record)
    event_name = change.get("eventName")
    if event_name not in EVENT_NAMES:
        raise Poison(f"eventName is not INSERT, MODIFY or REMOVE: {event_name!r:.40}")
    if change.get("eventSource") != "aws:dynamodb":
        raise Poison(f"eventSource is not aws:dynamodb: {change.get('eventSource')!r:.40}")
    stream = change.get("dynamodb")
    if type(stream) is not dict:
        raise Poison("dynamodb is missing")
    pk, sk = values(_image(stream, "Keys"), _KEYS, "Keys")
    removed = event_name == "REMOVE"
    label = "OldImage" if removed else "NewImage"
    image = _image(stream, label)
    entity = image.get("entity")
    entity = _fast(entity, "S") if entity is not None else None
    if entity in IGNORED:
        return None
    parser = _PARSERS.get(entity) if type(entity) is str else None
    if parser is None:
        raise Poison(f"unknown item type {entity!r:.40}")
    result = parser(image, label, {"PK": pk, "SK": sk}, removed)
    if entity == FLIGHT and event_name == "MODIFY":
        result.events = flight_events(_image(stream, "OldImage"), image)
    return result
