"""End-to-end benchmarks against the whole local system (`manage.py runlocal` as a child
process on MariaDB: moto, bridge, poller, notifier, web server all on this machine).

1. Freshness: drive RATE commands/s for DURATION s (open loop: each command has its scheduled
   start; place 50 %, cancel 30 %, profile change 20 %), and for every accepted command record
   when its effect is visible in the query API. Reports median / p95 / max lag and the command
   rate actually sustained.
2. Cancellation notice: book a 300-seat flight full, cancel it through the command API, and
   time until the last of its 300 passengers has a SENT notification.

    .venv/bin/python bench/system_bench.py [--rate 100] [--duration 60]
"""

import argparse
import json
import os
import random
import statistics
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from common import setup_django, use_database

use_database("airticket_bench_system")


class Api:
    def __init__(self, base: str, token: str):
        self.base, self.token = base, token

    def __call__(self, method: str, path: str, body: dict | None = None) -> tuple[int, dict]:
        headers = {"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"}
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.base + path, data=data, method=method, headers=headers)  # noqa: S310 - loopback
        try:
            with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
                return response.status, json.loads(response.read() or b"{}")
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read() or b"{}")

    def get(self, path: str, **params) -> dict:
        status, body = self("GET", f"{path}?{urllib.parse.urlencode(params)}")
        if status != 200:
            raise RuntimeError(f"GET {path} -> {status} {body}")
        return body


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


class Observer(threading.Thread):
    """Watches the read database the query API serves (it has no cache, so a row there is what
    the API returns) every 20 ms, and remembers when each (item, version) first appeared."""

    def __init__(self):
        super().__init__(daemon=True)
        self.seen: dict[str, list[tuple[int, float]]] = {}
        self.stop = threading.Event()

    def run(self) -> None:
        from django.db import connection

        since = "1970-01-01"
        while not self.stop.is_set():
            now = time.monotonic()
            with connection.cursor() as cursor:
                cursor.execute("SELECT NOW(6) - INTERVAL 2 SECOND")
                (next_since,) = cursor.fetchone()
                for table, key in (("admin_portal_booking", "order_id"), ("admin_portal_customer", "customer_id")):
                    cursor.execute(f"SELECT {key}, version FROM {table} WHERE projected_at >= %s", [since])  # noqa: S608 - constants
                    for ident, version in cursor.fetchall():
                        history = self.seen.setdefault(ident, [])
                        if not history or history[-1][0] < version:
                            history.append((version, now))
            since = next_since
            time.sleep(0.02)
        connection.close()

    def lag(self, ident: str, version: int, acked_at: float) -> float | None:
        for seen_version, seen_at in self.seen.get(ident, []):
            if seen_version >= version:
                return max(0.0, seen_at - acked_at)
        return None


def freshness(api: Api, *, rate: int, duration: int, customers: list[str], flights: list[tuple[str, str]]) -> dict:
    booked: list[dict] = []
    booked_lock = threading.Lock()
    acked: list[tuple[str, int, float]] = []  # (item id, version, acknowledged at)
    refused = [0]

    def command(index: int) -> None:
        roll = random.random()
        customer_id = random.choice(customers)
        with booked_lock:
            victim = booked.pop(random.randrange(len(booked))) if roll < 0.3 and booked else None
        if victim is not None:
            status, body = api("POST", f"/api/v1/customers/{victim['customer_id']}/orders/{victim['order_id']}/cancel")
            ok, ident = status == 200, body.get("order_id")
        elif roll < 0.5:
            status, body = api("PATCH", f"/api/v1/customers/{customer_id}", {"mobile": f"+86 138 {index:08d}"})
            ok, ident = status == 200, customer_id
        else:
            number, day = random.choice(flights)
            status, body = api("POST", f"/api/v1/customers/{customer_id}/orders", {"flight_number": number, "flight_date": day})
            ok, ident = status == 201, body.get("order_id")
            if ok:
                with booked_lock:
                    booked.append(body)
        if ok:
            acked.append((ident, body["version"], time.monotonic()))
        else:
            refused[0] += 1

    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=24) as pool:
        for index in range(rate * duration):
            delay = started + index / rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            pool.submit(command, index)
    return {
        "commands": rate * duration,
        "accepted": len(acked),
        "refused": refused[0],
        "elapsed": time.monotonic() - started,
        "acked": acked,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rate", type=int, default=100)
    parser.add_argument("--duration", type=int, default=60)
    args = parser.parse_args()

    from airticket.local import supervisor

    with tempfile.TemporaryDirectory() as tmp:
        env = supervisor.child_environment(
            DATABASE_URL=os.environ["DATABASE_URL"], EMAIL_FILE_PATH=f"{tmp}/mail", LOG_LEVEL="WARNING", LOCAL_STATE_DIR=f"{tmp}/state"
        )
        setup_django()
        from django.core.management import call_command

        call_command("flush", interactive=False, verbosity=0)
        log = Path(tmp) / "runlocal.log"
        system = supervisor.spawn(env, log)
        try:
            supervisor.wait_running(system, log)
            from airticket.auth import STAFF, issue_token

            run(Api(f"http://127.0.0.1:{env['PORT']}", issue_token(role=STAFF)), args)
        except Exception:
            print("runlocal log (tail):\n" + log.read_text()[-4000:], file=sys.stderr)
            raise
        finally:
            supervisor.interrupt(system)


def run(api: Api, args) -> None:
    from bookings.demo_schedule import DEMO_FLIGHTS, demo_dates

    customers = [f"B{n:04d}" for n in range(400)]
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(
            pool.map(
                lambda c: api(
                    "POST", "/api/v1/customers", {"customer_id": c, "full_name": f"Bench {c}", "email": f"{c.lower()}@example.com"}
                ),
                customers,
            )
        )
    flights = [(number, day) for day in demo_dates() for number, *_ in DEMO_FLIGHTS]

    observer = Observer()
    observer.start()
    result = freshness(api, rate=args.rate, duration=args.duration, customers=customers, flights=flights)
    deadline = time.monotonic() + 60
    while any(observer.lag(*item) is None for item in result["acked"]) and time.monotonic() < deadline:
        time.sleep(0.2)
    observer.stop.set()
    lags = [observer.lag(*item) for item in result["acked"]]
    finite = [lag for lag in lags if lag is not None]
    # Spot-check through the API itself that what the observer saw is what the API serves.
    sample = [item for item in result["acked"][:: max(1, len(result["acked"]) // 20)] if item[0].startswith("B")]
    for customer_id, version, _ in sample:
        rows = api.get("/api/v1/query/customers", search=customer_id)["results"]
        assert any(r["customer_id"] == customer_id and r["version"] >= version for r in rows), customer_id
    print(
        f"freshness: {result['commands']} commands scheduled at {args.rate}/s for {args.duration} s; sent in {result['elapsed']:.1f} s = {result['commands'] / result['elapsed']:.1f} commands/s"
    )
    print(
        f"  accepted {result['accepted']}, refused {result['refused']} (full flight / already booked); never visible within 60 s: {len(lags) - len(finite)}"
    )
    print(
        f"  lag until visible to the query API: median {statistics.median(finite) * 1000:.0f} ms, p95 {percentile(finite, 0.95) * 1000:.0f} ms, max {max(finite) * 1000:.0f} ms"
    )
    cancellation_notice(api, customers)


def cancellation_notice(api: Api, customers: list[str]) -> None:
    from admin_portal.models import Notification, NotificationStatus
    from bookings.demo_schedule import demo_dates

    day = demo_dates()[-1]
    status, body = api(
        "POST",
        "/api/v1/flights",
        {
            "flight_number": "ZZ300",
            "flight_date": day,
            "origin": "PEK",
            "transfers": [],
            "destination": "CAN",
            "departure_time": "09:00",
            "arrival_time": "12:10",
            "capacity": 300,
        },
    )
    assert status == 201, body
    passengers = [f"N{n:04d}" for n in range(300)]
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(
            pool.map(
                lambda c: api(
                    "POST", "/api/v1/customers", {"customer_id": c, "full_name": f"Notice {c}", "email": f"{c.lower()}@example.com"}
                ),
                passengers,
            )
        )
        replies = list(
            pool.map(lambda c: api("POST", f"/api/v1/customers/{c}/orders", {"flight_number": "ZZ300", "flight_date": day}), passengers)
        )
    assert all(status == 201 for status, _ in replies), [r for r in replies if r[0] != 201][:3]
    deadline = time.monotonic() + 120
    while api.get("/api/v1/query/passengers", flight_number="ZZ300", flight_date=day)["count"] < 300:
        assert time.monotonic() < deadline, "bookings did not reach the read model"
        time.sleep(0.2)
    started = time.monotonic()
    status, body = api("POST", f"/api/v1/flights/ZZ300/{day}/cancel")
    assert status == 200, body
    sent = Notification.objects.filter(booking__flight_id=f"ZZ300#{day}", status=NotificationStatus.SENT)
    while (count := sent.count()) < 300:
        assert time.monotonic() - started < 600, f"only {count} notified"
        time.sleep(0.1)
    print(f"cancellation notice: 300-passenger flight cancelled -> last passenger notified in {time.monotonic() - started:.2f} s")


if __name__ == "__main__":
    main()
