"""One Kinesis record -> one validated change, or a reason it can never be applied.

A record of a Lambda Kinesis event carries, base64-encoded, the JSON that DynamoDB's Kinesis
streaming destination writes. `decode` returns a `Change` for an item the read side projects
(customer, order, flight), `None` for an item it deliberately ignores (booking guards,
idempotency records), and raises `Poison` for anything else. Nothing here touches the database,
so a poison record is known before the batch's transaction starts.

Rows are tuples in the column order of `TARGETS` (key, version, deleted, ...), ready for the
bulk statements in `projection`: no ORM objects in the hot path.
"""

import base64
import binascii
import functools
import json
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from decimal import Decimal, InvalidOperation

from boto3.dynamodb.types import TypeDeserializer

from admin_portal.models import Booking, BookingStatus, Customer, Flight, FlightEventKind, FlightStatus
from bookings import repository as repo

CUSTOMER, ORDER, FLIGHT = repo.CUSTOMER, repo.ORDER, repo.FLIGHT
# Known item types the read side has no model for: skipped on purpose, never poison.
IGNORED = frozenset({repo.BOOKING_GUARD, repo.IDEMPOTENCY})
EVENT_NAMES = frozenset({"INSERT", "MODIFY", "REMOVE"})

_deserializer = TypeDeserializer()


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
    """DynamoDB JSON -> Python. Strings, integers and lists of them (nearly every attribute)
    take a fast path; anything else goes through boto3's TypeDeserializer."""
    if type(attr) is dict and len(attr) == 1:
        if "S" in attr:
            return attr["S"]
        raw = attr.get("N")
        if type(raw) is str and raw.isdigit():
            return int(raw)
        items = attr.get("L")
        if type(items) is list:
            return [_value(item) for item in items]
    try:
        return _deserializer.deserialize(attr)
    except (TypeError, ValueError, AttributeError, KeyError, InvalidOperation) as exc:
        raise Poison(f"not a DynamoDB attribute value: {attr!r:.80}") from exc


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


class Image:
    """Typed, validating access to one image (NewImage or OldImage); every failure is Poison."""

    __slots__ = ("attrs", "label")

    def __init__(self, attrs, label: str):
        if type(attrs) is not dict:
            raise Poison(f"{label} is not a map")
        self.attrs = attrs
        self.label = label

    def raw(self, name: str):
        attr = self.attrs.get(name)
        if attr is None:
            raise Poison(f"{self.label}.{name} is missing")
        return _value(attr)

    def _string(self, name: str):
        """The hot path: most attributes are {"S": ...}; anything else takes the general one."""
        attr = self.attrs.get(name)
        if type(attr) is dict:
            value = attr.get("S")
            if type(value) is str:
                return value
        return self.raw(name)

    def _fail(self, name: str, what: str, value) -> Poison:
        return Poison(f"{self.label}.{name} is not {what}: {value!r:.80}")

    def text(self, name: str, *, max_length: int, blank: bool = False) -> str:
        value = self._string(name)
        if type(value) is not str or len(value) > max_length or (not blank and not value):
            raise self._fail(name, f"a {'' if blank else 'non-empty '}string of at most {max_length} characters", value)
        return value

    def optional_text(self, name: str, *, max_length: int) -> str:
        return self.text(name, max_length=max_length, blank=True) if name in self.attrs else ""

    def integer(self, name: str) -> int:
        value = self.raw(name)
        if type(value) is Decimal and value == value.to_integral_value():
            value = int(value)
        if type(value) is not int or value < 0:
            raise self._fail(name, "a non-negative integer", value)
        return value

    def choice(self, name: str, choices) -> str:
        value = self._string(name)
        if value not in choices:
            raise self._fail(name, f"one of {sorted(choices)}", value)
        return value

    def _parsed(self, name: str, parse, what: str) -> str:
        value = self._string(name)
        try:
            return parse(value)
        except (TypeError, ValueError):
            raise self._fail(name, what, value) from None

    def day(self, name: str) -> str:
        return self._parsed(name, _iso_day, "an ISO date")

    def clock(self, name: str) -> str:
        return self._parsed(name, _iso_clock, "a local time of day")

    def instant(self, name: str) -> str:
        """An ISO timestamp with an offset ("...Z"), as the naive UTC text Django stores."""
        return self._parsed(name, _utc_text, "an ISO timestamp with a UTC offset")

    def codes(self, name: str) -> list[str]:
        value = self.raw(name)
        if type(value) is not list or not all(type(code) is str and len(code) == 3 for code in value):
            raise self._fail(name, "a list of IATA codes", value)
        return value


# --- one parser per projected entity -------------------------------------------------------

_CUSTOMER_ID = _max_length(Customer, "customer_id")
_FULL_NAME = _max_length(Customer, "full_name")
_MOBILE = _max_length(Customer, "mobile")
_EMAIL = _max_length(Customer, "email")
_ORDER_ID = _max_length(Booking, "order_id")
_FLIGHT_NUMBER = _max_length(Flight, "flight_number")
_BOOKING_STATUSES = frozenset(BookingStatus.values)
_FLIGHT_STATUSES = frozenset(FlightStatus.values)


def _stamp(image: Image, version: int, deleted: bool) -> tuple:
    return (version, deleted, image.instant("created_at"), image.instant("updated_at"))


def _require_key(keys: dict, expected: dict) -> None:
    """The item's key must be the one its attributes imply, or the row would land elsewhere."""
    if keys != expected:
        raise Poison(f"key {keys} does not match the item's attributes (expected {expected})")


def _customer(image: Image, keys: dict, version: int, deleted: bool) -> Change:
    customer_id = image.text("customer_id", max_length=_CUSTOMER_ID)
    _require_key(keys, repo.customer_key(customer_id))
    row = (
        customer_id,
        *_stamp(image, version, deleted),
        image.text("full_name", max_length=_FULL_NAME),
        image.optional_text("mobile", max_length=_MOBILE),
        image.optional_text("email", max_length=_EMAIL),
    )
    return Change(CUSTOMER, customer_id, version, deleted, row)


def _route(image: Image) -> tuple[str, list[str], str]:
    return _code(image, "origin"), image.codes("transfers"), _code(image, "destination")


def _code(image: Image, name: str) -> str:
    value = image.text(name, max_length=3)
    if len(value) != 3:
        raise image._fail(name, "an IATA code", value)
    return value


def _order(image: Image, keys: dict, version: int, deleted: bool) -> Change:
    order_id = image.text("order_id", max_length=_ORDER_ID)
    customer_id = image.text("customer_id", max_length=_CUSTOMER_ID)
    _require_key(keys, repo.order_key(customer_id, order_id))
    number = image.text("flight_number", max_length=_FLIGHT_NUMBER)
    day = image.day("flight_date")
    origin, transfers, destination = _route(image)
    row = (
        order_id,
        *_stamp(image, version, deleted),
        customer_id,
        flight_key(number, day),
        number,
        day,
        origin,
        json.dumps(transfers),
        destination,
        image.clock("departure_time"),
        image.clock("arrival_time"),
        image.choice("status", _BOOKING_STATUSES),
    )
    return Change(ORDER, order_id, version, deleted, row)


def _flight(image: Image, keys: dict, version: int, deleted: bool) -> Change:
    number = image.text("flight_number", max_length=_FLIGHT_NUMBER)
    day = image.day("flight_date")
    _require_key(keys, repo.flight_key(number, day))
    key = flight_key(number, day)
    origin, transfers, destination = _route(image)
    row = (
        key,
        *_stamp(image, version, deleted),
        number,
        day,
        origin,
        json.dumps(transfers),
        destination,
        image.clock("departure_time"),
        image.clock("arrival_time"),
        image.integer("capacity"),
        image.integer("seats_booked"),
        image.choice("status", _FLIGHT_STATUSES),
    )
    return Change(FLIGHT, key, version, deleted, row, route=(origin, *transfers, destination))


_PARSERS = {CUSTOMER: _customer, ORDER: _order, FLIGHT: _flight}


# --- flight domain events --------------------------------------------------------------------


def _schedule(image: Image) -> dict:
    return {
        "status": image.choice("status", _FLIGHT_STATUSES),
        "departure_time": image.clock("departure_time"),
        "arrival_time": image.clock("arrival_time"),
    }


def flight_events(old: Image, new: Image) -> tuple[tuple[str, str], ...]:
    """CANCELLED when a flight becomes cancelled; DELAYED when it becomes delayed or its times
    move. Derived from the record's own two images, not from the read model, so a late or
    repeated record yields the same event (FlightEvent is unique per flight/kind/version)."""
    before, after = _schedule(old), _schedule(new)
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
        data = record["kinesis"]["data"]
        raw = base64.b64decode(data, validate=True)
    except (KeyError, TypeError, binascii.Error, ValueError) as exc:
        raise Poison(f"data is not base64: {exc}") from None
    try:
        decoded = json.loads(raw)
    except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError
        raise Poison(f"data is not JSON: {exc}") from None
    if type(decoded) is not dict:
        raise Poison("data is not a JSON object")
    return decoded


def _keys(stream: dict) -> dict:
    keys = stream.get("Keys")
    if type(keys) is not dict:
        raise Poison("dynamodb.Keys is missing")
    image = Image(keys, "Keys")
    return {"PK": image.text("PK", max_length=1024), "SK": image.text("SK", max_length=1024)}


def decode(record: dict) -> Change | None:
    change = payload(record)
    event_name = change.get("eventName")
    if event_name not in EVENT_NAMES:
        raise Poison(f"eventName is not INSERT, MODIFY or REMOVE: {event_name!r:.40}")
    if change.get("eventSource") != "aws:dynamodb":
        raise Poison(f"eventSource is not aws:dynamodb: {change.get('eventSource')!r:.40}")
    stream = change.get("dynamodb")
    if type(stream) is not dict:
        raise Poison("dynamodb is missing")
    keys = _keys(stream)
    removed = event_name == "REMOVE"
    image = Image(stream.get("OldImage" if removed else "NewImage"), "OldImage" if removed else "NewImage")
    entity = image.raw("entity")
    if entity in IGNORED:
        return None
    parser = _PARSERS.get(entity)
    if parser is None:
        raise Poison(f"unknown item type {entity!r:.40}")
    version = image.integer("version")
    # A removal leaves a tombstone one version past the last image, so a late image is ignored.
    result = parser(image, keys, version + 1 if removed else version, removed)
    if entity == FLIGHT and event_name == "MODIFY":
        result.events = flight_events(Image(stream.get("OldImage"), "OldImage"), image)
    return result
