"""The data ingestor: the original lab's numbered menu, driven over HTTP.

It talks to the system only through the command and query APIs, so it works the same
against the local system and a deployment. Steps 10 and 11 put records straight onto the
Kinesis stream, the way duplicate delivery and malformed records happen in production.
Before a query step it waits (with a timeout) until its own last write is visible in the
read model and prints the lag it saw.
"""

import json
import os
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

from airticket import aws, streamtools
from airticket.local.supervisor import DEFAULT_MOTO_PORT
from bookings.demo_schedule import demo_dates
from cdc_lambda import bridge

MENU = [
    (1, "init"),
    (2, "truncate"),
    (3, "query customers"),
    (4, "query flight"),
    (5, "query city"),
    (6, "register 20 customers"),
    (7, "place orders"),
    (8, "cancel orders"),
    (9, "reorder"),
    (10, "duplicate delivery"),
    (11, "error handling"),
    (12, "exit"),
]
# The lab's demo, in order; the figures it prints are the lab's (20, 8, 4, DLQ +1, 0, 1).
DEMO = [2, 1, 3, 6, 3, 7, 4, 8, 4, 9, 5, 11, 2, 3, 10, 3]

# A realistic day to look at: the demo flights, the 20 customers and their bookings as the
# lab leaves them before its final truncate (8 on MU5159, 4 of them cancelled and rebooked on
# MU5401), then one delayed flight, so the portal has a disruption to show. The demo itself
# ends by truncating everything (the lab's figures need it); `demo --keep` runs this after it.
SEED = [1, 6, 7, 8, 9]
DELAYED_FLIGHT = ("CZ2801", "11:00", "13:25")  # 90 minutes late

CUSTOMERS = [f"C{n:03d}" for n in range(1, 21)]
FLIGHT = "MU5159"
# Where step 7 books each customer: 8 on MU5159, the rest spread over the lab's other flights.
BOOKINGS = {**dict.fromkeys(CUSTOMERS[:8], "MU5159"), **dict.fromkeys(CUSTOMERS[8:12], "CZ2801")}
BOOKINGS |= {**dict.fromkeys(CUSTOMERS[12:16], "MU2324"), **dict.fromkeys(CUSTOMERS[16:18], "CZ3243")}
BOOKINGS |= dict.fromkeys(CUSTOMERS[18:], "SC4826")
CANCELLED = CUSTOMERS[:4]  # step 8 cancels these MU5159 bookings
REORDER_FLIGHT = "MU5401"  # step 9 rebooks them on SHA -> CTU -> LXA (a transfer through Chengdu)
CITY = "Shanghai"
DUPLICATE_CUSTOMER = "DUP001"


class IngestError(Exception):
    pass


@dataclass
class Reply:
    status: int
    body: dict
    ms: float


TRUNCATED = "*truncated*"  # the pending check of a truncate (no entity id has asterisks)


@dataclass
class Ingestor:
    api: str
    token: str
    out: Callable[[str], None] = print
    # The demo schedule's second day: tomorrow where the flights leave, so none has departed.
    flight_date: str = field(default_factory=lambda: demo_dates()[1])
    wait_timeout: float = 60.0
    # This run's writes not yet seen in the read model, per entity (a newer write replaces the
    # older's check), as checks that are true once it shows them. All of them, not only the
    # newest: writes on different shards reach the read model in any order.
    pending: dict[str, Callable[[], bool]] = field(default_factory=dict)

    def __post_init__(self):
        if urllib.parse.urlsplit(self.api).scheme not in ("http", "https"):
            raise ValueError(f"--api must be an http(s) URL, not {self.api!r}")

    # --- HTTP ---------------------------------------------------------------------------

    def call(self, method: str, path: str, body: dict | None = None, *, key: str | None = None, quiet: bool = False) -> Reply:
        headers = {"Authorization": f"Bearer {self.token}", "Accept": "application/json"}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        if key:
            headers["Idempotency-Key"] = key
        request = urllib.request.Request(self.api.rstrip("/") + path, data=data, method=method, headers=headers)  # noqa: S310
        started = time.perf_counter()
        try:
            with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 - the --api URL the user gave
                status, raw = response.status, response.read()
        except urllib.error.HTTPError as exc:
            status, raw = exc.code, exc.read()
        except OSError as exc:
            raise IngestError(f"{method} {path}: {exc}") from None
        reply = Reply(status, json.loads(raw) if raw else {}, (time.perf_counter() - started) * 1000)
        if status >= 500:
            raise IngestError(f"{method} {path} -> {status}: {raw[:300]!r}")
        if not quiet:
            self.out(f"  {method} {path} -> {status} ({reply.ms:.0f} ms)")
        return reply

    def query(self, path: str, **params) -> Reply:
        reply = self.call("GET", f"{path}?{urllib.parse.urlencode(params)}", quiet=True)
        if reply.status != 200:
            raise IngestError(f"GET {path} -> {reply.status}: {reply.body}")
        return reply

    def count(self, path: str, **params) -> int:
        return self.query(path, **params).body["count"]

    # --- waiting for the read model ------------------------------------------------------

    def expect(self, entity: str, check: Callable[[], bool]) -> None:
        # A write after a truncate means the read model will not be empty again: stop waiting for it.
        self.pending.pop(TRUNCATED, None)
        self.pending[entity] = check

    def catch_up(self) -> None:
        """Wait until every write of this run is visible; print the lag."""
        if not self.pending:
            return
        started = time.monotonic()
        while self.pending:
            # Oldest first, and stop at the first write not yet visible: one query per pass
            # while the read model is behind, not one per pending write (that load slowed the
            # very poller it waits for, on SQLite).
            for entity, check in list(self.pending.items()):
                if not check():
                    break
                del self.pending[entity]
            if self.pending and time.monotonic() - started > self.wait_timeout:
                raise IngestError(f"the read model did not catch up within {self.wait_timeout:.0f} s")
            if self.pending:
                time.sleep(0.1)
        self.out(f"  read model caught up (lag {time.monotonic() - started:.2f} s)")

    def customer_visible(self, customer_id: str, version: int) -> Callable[[], bool]:
        def check() -> bool:
            rows = self.query("/api/v1/query/customers", search=customer_id).body.get("results", [])
            return any(r["customer_id"] == customer_id and r["version"] >= version for r in rows)

        return check

    def booking_visible(self, order: dict) -> Callable[[], bool]:
        def check() -> bool:
            params = {"flight_number": order["flight_number"], "flight_date": order["flight_date"], "status": order["status"]}
            rows = self.query("/api/v1/query/passengers", page_size=500, **params).body.get("results", [])
            return any(r["order_id"] == order["order_id"] and r["version"] >= order["version"] for r in rows)

        return check

    def progress(self, label: str, items: list, action: Callable) -> list:
        results = []
        started = time.perf_counter()
        for index, item in enumerate(items, 1):
            results.append(action(item))
            filled = int(30 * index / len(items))
            self.out(f"\r  {label} [{'#' * filled}{'.' * (30 - filled)}] {index}/{len(items)}", end="")
        elapsed = time.perf_counter() - started
        self.out(f"\n  {len(items)} requests in {elapsed:.2f} s ({1000 * elapsed / max(1, len(items)):.0f} ms each)")
        return results

    # --- the menu ------------------------------------------------------------------------

    def step_1(self) -> None:
        reply = self.call("POST", "/api/v1/ops/init")
        for line in reply.body.get("steps", []):
            self.out(f"  {line}")

    def step_2(self) -> None:
        reply = self.call("POST", "/api/v1/ops/truncate")
        if reply.status != 200:
            raise IngestError(reply.body.get("error", {}).get("message", str(reply.body)))
        self.out(f"  deleted {reply.body['deleted_items']} items from the write model")
        # Everything written before is gone: only the emptiness is still to be seen.
        self.pending = {TRUNCATED: lambda: self.count("/api/v1/query/customers") == 0}

    def step_3(self) -> None:
        self.catch_up()
        self.out(f"Total customer number is {self.count('/api/v1/query/customers')}")

    def step_4(self) -> None:
        self.catch_up()
        n = self.count("/api/v1/query/passengers", flight_number=FLIGHT, flight_date=self.flight_date)
        self.out(f"Flight {FLIGHT} on {self.flight_date}: Customer number is {n}")

    def step_5(self) -> None:
        self.catch_up()
        n = self.count("/api/v1/query/passengers", city=CITY, date_from=self.flight_date, date_to=self.flight_date)
        self.out(f"City {CITY} on {self.flight_date}: Customer number is {n}")

    def step_6(self) -> None:
        def register(customer_id: str) -> Reply:
            body = {
                "customer_id": customer_id,
                "full_name": f"Customer {customer_id}",
                "mobile": "+86 138 0000 0000",
                "email": f"{customer_id.lower()}@example.com",
            }
            reply = self.call("POST", "/api/v1/customers", body, key=f"register-{customer_id}-{uuid.uuid4().hex}", quiet=True)
            if reply.status == 201:
                self.expect(customer_id, self.customer_visible(customer_id, reply.body["version"]))
            return reply

        replies = self.progress("registering", CUSTOMERS, register)
        self.summarise(replies, {201: "registered", 409: "already there"})

    def step_7(self) -> None:
        replies = self.progress("booking", list(BOOKINGS.items()), lambda pair: self.book(*pair))
        self.summarise(replies, {201: "booked", 409: "refused (already booked or full)"})

    def book(self, customer_id: str, flight_number: str) -> Reply:
        body = {"flight_number": flight_number, "flight_date": self.flight_date}
        reply = self.call("POST", f"/api/v1/customers/{customer_id}/orders", body, key=f"book-{uuid.uuid4().hex}", quiet=True)
        if reply.status == 201:
            self.expect(reply.body["order_id"], self.booking_visible(reply.body))
        return reply

    def step_8(self) -> None:
        def cancel(customer_id: str) -> Reply | None:
            orders = self.call("GET", f"/api/v1/customers/{customer_id}/orders", quiet=True).body.get("results", [])
            active = [
                o for o in orders if o["flight_number"] == FLIGHT and o["flight_date"] == self.flight_date and o["status"] == "ORDERED"
            ]
            if not active:
                return None
            reply = self.call("POST", f"/api/v1/customers/{customer_id}/orders/{active[0]['order_id']}/cancel", quiet=True)
            if reply.status == 200:
                self.expect(reply.body["order_id"], self.booking_visible(reply.body))
            return reply

        replies = self.progress("cancelling", CANCELLED, cancel)
        self.summarise([r for r in replies if r], {200: "cancelled"})

    def step_9(self) -> None:
        replies = self.progress("rebooking", CANCELLED, lambda cid: self.book(cid, REORDER_FLIGHT))
        self.summarise(replies, {201: f"rebooked on {REORDER_FLIGHT}", 409: "refused"})

    def step_10(self) -> None:
        """Register one customer, then deliver its change record a second time."""

        body = {"customer_id": DUPLICATE_CUSTOMER, "full_name": "Duplicate Delivery", "mobile": "+86 139 0000 0000"}
        self.call("POST", "/api/v1/customers", body, key=f"dup-{uuid.uuid4().hex}")
        self.catch_up_on(DUPLICATE_CUSTOMER, self.customer_visible(DUPLICATE_CUSTOMER, 1))
        record = streamtools.find_record(pk=f"CUSTOMER#{DUPLICATE_CUSTOMER}", sk="PROFILE", event_name="INSERT")
        if record is None:
            raise IngestError(f"no INSERT record for {DUPLICATE_CUSTOMER} on the stream")
        bridge.put_raw(data=record["Data"], partition_key=record["PartitionKey"])
        self.out(f"  delivered the INSERT of {DUPLICATE_CUSTOMER} a second time (shard order kept by its partition key)")
        # A later change on the same item (same shard) proves the duplicate has been consumed.
        reply = self.call("PATCH", f"/api/v1/customers/{DUPLICATE_CUSTOMER}", {"mobile": "+86 139 1111 1111"})
        self.expect(DUPLICATE_CUSTOMER, self.customer_visible(DUPLICATE_CUSTOMER, reply.body["version"]))

    def catch_up_on(self, entity: str, check: Callable[[], bool]) -> None:
        self.expect(entity, check)
        self.catch_up()

    def step_11(self) -> None:
        """Deliver a malformed change record; it must land in the DLQ and block nothing."""

        before = streamtools.dlq_depth()
        self.out(f"  DLQ depth before: {before}")
        bridge.put_raw(data=b'{"eventName": "INSERT", "dynamodb": {"NewImage": not json', partition_key=f"malformed-{uuid.uuid4().hex}")
        started = time.monotonic()
        while (after := streamtools.dlq_depth()) <= before:
            if time.monotonic() - started > self.wait_timeout:
                raise IngestError("the malformed record did not reach the DLQ in time")
            time.sleep(0.2)
        self.out(f"  DLQ depth after: {after} (the malformed record is in the DLQ with its reason; the stream moved on)")

    def delay_one(self) -> None:
        """Delay one demo flight through the command API; its passengers are notified when the
        change reaches the query side."""
        number, departs, arrives = DELAYED_FLIGHT
        reply = self.call("PATCH", f"/api/v1/flights/{number}/{self.flight_date}", {"departure_time": departs, "arrival_time": arrives})
        if reply.status != 200:
            raise IngestError(f"delaying {number}: {reply.body}")
        self.out(f"  {number} on {self.flight_date} delayed to {departs} (its passengers are notified)")

    def seed(self) -> None:
        self.out("== seed: a day to look at in the admin")
        for number in SEED:
            self.run_step(number)
        self.delay_one()
        self.catch_up()
        self.out(
            f"Flight {FLIGHT} on {self.flight_date}: {self.count('/api/v1/query/passengers', flight_number=FLIGHT, flight_date=self.flight_date)} passengers hold a booking"
        )

    def summarise(self, replies: list[Reply], meaning: dict[int, str]) -> None:
        counts: dict[int, int] = {}
        for reply in replies:
            counts[reply.status] = counts.get(reply.status, 0) + 1
        self.out("  " + ", ".join(f"{n} {meaning.get(status, f'HTTP {status}')}" for status, n in sorted(counts.items())))
        unexpected = {s: n for s, n in counts.items() if s not in meaning}
        if unexpected:
            sample = next(r.body for r in replies if r.status in unexpected)
            raise IngestError(f"unexpected replies {unexpected}: {sample}")

    def run_step(self, number: int | str) -> None:
        if number == "seed":
            self.seed()
            return
        name = dict(MENU)[number]
        self.out(f"== {number}. {name}")
        getattr(self, f"step_{number}")()


def configure_aws(endpoint: str | None) -> None:
    """Steps 10 and 11 reach Kinesis/SQS directly; locally that is moto on loopback."""
    if endpoint:
        os.environ["AWS_ENDPOINT_URL"] = endpoint
    if os.environ.get("AWS_ENDPOINT_URL"):
        os.environ.setdefault("AWS_ACCESS_KEY_ID", "local")
        os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "local")
    aws.reset_clients()


def parse_steps(words: list[str]) -> list[int | str]:
    """Step numbers, with 'demo' expanded to the lab's sequence; 'seed' stays a word."""
    steps: list[int | str] = []
    for word in words:
        if word == "demo":
            steps.extend(DEMO)
            continue
        if word == "seed":
            steps.append("seed")
            continue
        if not word.isdigit() or not 1 <= int(word) <= 11:
            raise ValueError(f"{word!r} is not a step (1-11, 'demo' or 'seed')")
        steps.append(int(word))
    return steps


def default_aws_endpoint(api: str) -> str | None:
    """Against a local system (loopback API), AWS is the moto server next to it."""
    if os.environ.get("AWS_ENDPOINT_URL"):
        return None
    host = urllib.parse.urlsplit(api).hostname
    if host in ("127.0.0.1", "localhost", "::1"):
        return f"http://127.0.0.1:{os.environ.get('MOTO_PORT', DEFAULT_MOTO_PORT)}"
    return None
