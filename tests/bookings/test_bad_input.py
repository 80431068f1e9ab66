"""Every malformed request is a 400 (415 for a non-JSON body) naming the field, writes nothing,
and is never a 500."""

import dataclasses
import json
from dataclasses import dataclass
from datetime import timedelta

import pytest

from airticket.auth import CUSTOMER, STAFF, issue_token
from bookings import services
from tests.bookings.api import booking, error, table_items
from tests.bookings.conftest import fresh_account
from tests.conftest import client_with
from tests.factories import flight_data, make_customer, make_flight

CUSTOMERS = "/api/v1/customers"
ALICE = f"{CUSTOMERS}/alice"
ORDERS = f"{ALICE}/orders"
ORDER = f"{ORDERS}/{{order}}"
FLIGHTS = "/api/v1/flights"
FLIGHT = f"{FLIGHTS}/{{flight}}"
NEW_FLIGHT = flight_data(flight_number="CA981", flight_date="2031-01-01")
HUGE = "x" * 100_000
INJECTION = "' OR 1=1 --"
SCRIPT = "<script>alert(1)</script>"


@dataclass
class Bad:
    method: str
    path: str
    body: object = None  # sent as JSON unless `raw` is given
    field: str | None = None  # the field error.fields must name
    raw: bytes | None = None
    content_type: str = "application/json"
    headers: dict = dataclasses.field(default_factory=dict)
    status: int = 400

    def payload(self) -> bytes:
        return self.raw if self.raw is not None else json.dumps(self.body).encode()


def register(field_name, **body):
    return Bad("POST", CUSTOMERS, {"customer_id": "carol", "full_name": "Carol", **body}, field_name)


def without(data: dict, name: str) -> dict:
    return {k: v for k, v in data.items() if k != name}


def new_flight(field_name, **overrides):
    return Bad("POST", FLIGHTS, {**NEW_FLIGHT, **overrides}, field_name)


def place(field_name, **overrides):
    return Bad("POST", ORDERS, {"flight_number": "MU9", "flight_date": "2030-01-01", **overrides}, field_name)


def header(name, value, method="PATCH", path=ALICE, body=None):
    return Bad(method, path, {"full_name": "Alice"} if body is None else body, name, headers={name: value})


def malformed(raw: bytes, path=CUSTOMERS):
    return Bad("POST", path, raw=raw)


CASES = {
    # register: wrong types, sizes, formats, injection strings, missing and unknown fields
    "customer id is a number": register("customer_id", customer_id=123),
    "customer id is a list": register("customer_id", customer_id=["carol"]),
    "customer id is too long": register("customer_id", customer_id="c" * 65),
    "customer id is an injection string": register("customer_id", customer_id=INJECTION),
    "customer id is a script tag": register("customer_id", customer_id=SCRIPT),
    "customer id is not ascii": register("customer_id", customer_id="cärol"),
    "full name is a boolean": register("full_name", full_name=True),
    "full name is null": register("full_name", full_name=None),
    "full name is huge": register("full_name", full_name=HUGE),
    "full name is blank": register("full_name", full_name="   "),
    "full name holds a nul byte": register("full_name", full_name="Ca\x00rol"),
    "email is not an email": register("email", email="not-an-email"),
    "email is a number": register("email", email=42),
    "mobile is a script tag": register("mobile", mobile=SCRIPT),
    "register without a full name": Bad("POST", CUSTOMERS, {"customer_id": "carol"}, "full_name"),
    "register without a customer id": Bad("POST", CUSTOMERS, {"full_name": "Carol"}, "customer_id"),
    "register with an unknown field": register("vip", vip=True),
    # update a customer
    "patch renames the customer id": Bad("PATCH", ALICE, {"customer_id": "bob"}, "customer_id"),
    "patch full name is a number": Bad("PATCH", ALICE, {"full_name": 42}, "full_name"),
    "patch email is a list": Bad("PATCH", ALICE, {"email": ["a@example.com"]}, "email"),
    "patch version in the body": Bad("PATCH", ALICE, {"version": 7}, "version"),
    # place an order
    "flight date that is not a calendar date": place("flight_date", flight_date="2026-02-30"),
    "flight date in a short form": place("flight_date", flight_date="26-1-1"),
    "flight date with a time": place("flight_date", flight_date="2030-01-01T00:00:00"),
    "flight date is a number": place("flight_date", flight_date=20300101),
    "flight date in other digits": place("flight_date", flight_date="٢٠٣٠-٠١-٠١"),
    "flight number is lower case": place("flight_number", flight_number="mu5159"),
    "flight number is an injection string": place("flight_number", flight_number=INJECTION),
    "flight number is a number": place("flight_number", flight_number=5159),
    "flight number is huge": place("flight_number", flight_number=HUGE),
    "order without a flight date": Bad("POST", ORDERS, {"flight_number": "MU9"}, "flight_date"),
    "order with an unknown field": place("seat", seat="1A"),
    # change an order
    "change to month 13": Bad("PATCH", ORDER, {"flight_number": "MU9", "flight_date": "2030-13-01"}, "flight_date"),
    "change with an empty body": Bad("PATCH", ORDER, {}, "flight_number"),
    "change the status": Bad("PATCH", ORDER, {"status": "CANCELLED"}, "status"),
    # create a flight
    "origin is not a known airport": new_flight("origin", origin="QQQ"),
    "origin is two letters": new_flight("origin", origin="PV"),
    "origin is an injection string": new_flight("origin", origin=INJECTION),
    "destination is a number": new_flight("destination", destination=123),
    "transfers is a string": new_flight("transfers", transfers="PEK"),
    "a transfer is not an airport": new_flight("transfers", transfers=["PEK", "ZZZ"]),
    "too many transfers": new_flight("transfers", transfers=["XIY", "CTU", "KMG", "CAN", "SZX"]),
    "departure hour 25": new_flight("departure_time", departure_time="25:00"),
    "departure without a leading zero": new_flight("departure_time", departure_time="8:00"),
    "arrival with seconds": new_flight("arrival_time", arrival_time="10:15:00"),
    "capacity is a string": new_flight("capacity", capacity="100"),
    "capacity is a boolean": new_flight("capacity", capacity=True),
    "capacity is a fraction": new_flight("capacity", capacity=10.5),
    "capacity is zero": new_flight("capacity", capacity=0),
    "capacity is over 1000": new_flight("capacity", capacity=1001),
    "capacity is astronomically large": new_flight("capacity", capacity=10**30),
    "flight without a capacity": Bad("POST", FLIGHTS, without(NEW_FLIGHT, "capacity"), "capacity"),
    "flight with an unknown field": new_flight("gate", gate="A1"),
    "flight dated in year 1": new_flight("flight_date", flight_date="0001-01-01"),
    "flight dated at the calendar's end": new_flight("flight_date", flight_date="9999-12-31"),
    # Yesterday where it leaves (the origin's calendar, by the code's clock).
    "flight dated in the past": new_flight(
        "flight_date", origin="PVG", flight_date=(services.origin_today(origin="PVG") - timedelta(days=1)).isoformat()
    ),
    # reschedule a flight
    "reschedule with nothing to change": Bad("PATCH", FLIGHT, {}, "non_field_errors"),
    "reschedule to a negative capacity": Bad("PATCH", FLIGHT, {"capacity": -1}, "capacity"),
    "reschedule the status": Bad("PATCH", FLIGHT, {"status": "CANCELLED"}, "status"),
    "reschedule to noon": Bad("PATCH", FLIGHT, {"departure_time": "noon"}, "departure_time"),
    # bodies that are not a JSON object
    "body is a list": Bad("POST", CUSTOMERS, [], "non_field_errors"),
    "body is a string": Bad("POST", CUSTOMERS, "carol", "non_field_errors"),
    "body is null": Bad("POST", CUSTOMERS, None, "non_field_errors"),
    "body is a number": Bad("POST", ORDERS, 42, "non_field_errors"),
    # bodies that are not JSON at all
    "truncated JSON": malformed(b'{"customer_id": '),
    "JSON with NaN": malformed(b'{"customer_id": "carol", "full_name": NaN}'),
    "JSON nested beyond the parser": malformed(b"[" * 100_000 + b"]" * 100_000),
    "body that is not UTF-8": malformed(b'{"full_name": "\xff\xfe"}'),
    "form-encoded body": Bad(
        "POST", CUSTOMERS, raw=b"customer_id=carol&full_name=Carol", content_type="application/x-www-form-urlencoded", status=415
    ),
    "plain-text body": Bad("POST", ORDERS, raw=b"MU9 2030-01-01", content_type="text/plain", status=415),
    "XML body": Bad("POST", FLIGHTS, raw=b"<flight/>", content_type="application/xml", status=415),
    # path segments
    "customer id in the path is an injection string": Bad("GET", f"{CUSTOMERS}/%27%20OR%201%3D1%20--", field="customer_id"),
    "customer id in the path is too long": Bad("GET", f"{CUSTOMERS}/{'c' * 65}", field="customer_id"),
    "order id in the path is not hex": Bad("GET", f"{ORDERS}/{'g' * 32}", field="order_id"),
    "order id in the path is short": Bad("POST", f"{ORDERS}/abc/cancel", field="order_id"),
    "flight number in the path is lower case": Bad("POST", f"{FLIGHTS}/mu9/2030-01-01/cancel", field="flight_number"),
    "flight date in the path is not a date": Bad("PATCH", f"{FLIGHTS}/MU9/2030-02-30", {"capacity": 5}, "flight_date"),
    # headers
    "If-Match is not a number": header("If-Match", "abc"),
    "If-Match is negative": header("If-Match", "-1"),
    "If-Match is longer than any version": header("If-Match", "9" * 30),
    "If-Match names two versions": header("If-Match", '"1", "2"'),
    "If-Match is an unterminated tag": header("If-Match", '"1'),
    "If-Match on an order is a date": header(
        "If-Match", "2030-01-01", path=ORDER, body={"flight_number": "MU9", "flight_date": "2030-01-01"}
    ),
    "Idempotency-Key is empty": header("Idempotency-Key", "", "POST", CUSTOMERS, {"customer_id": "carol", "full_name": "Carol"}),
    "Idempotency-Key has a space": header("Idempotency-Key", "a b", "POST", ORDERS, {"flight_number": "MU9", "flight_date": "2030-01-01"}),
    "Idempotency-Key is too long": header("Idempotency-Key", "k" * 256, "POST", FLIGHTS, NEW_FLIGHT),
}


@pytest.fixture(scope="module")
def world(moto_server) -> dict:
    """Alice with one order on a flight, so every path in the table exists. Shared by the whole
    table: each case checks that it wrote nothing, so none can disturb the next."""
    fresh_account(moto_server)
    make_customer("alice")
    flight = make_flight()
    order = services.order_place(customer_id="alice", **booking(flight))
    return {
        "order": order["order_id"],
        "flight": f"{flight['flight_number']}/{flight['flight_date']}",
        "alice": client_with(issue_token(role=CUSTOMER, customer_id="alice")),
        "staff": client_with(issue_token(role=STAFF)),
    }


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_bad_input_is_rejected_naming_the_field_and_writes_nothing(case, world):
    client = world["alice"] if case.path.startswith(ALICE) else world["staff"]
    headers = {f"HTTP_{name.upper().replace('-', '_')}": value for name, value in case.headers.items()}
    before = table_items()
    r = client.generic(case.method, case.path.format(**world), case.payload(), content_type=case.content_type, **headers)
    assert r.status_code == case.status, r.content[:500]
    body = error(r)
    if case.field:
        assert any(name == case.field or name.startswith(f"{case.field}.") for name in body["fields"]), body
    assert table_items() == before
