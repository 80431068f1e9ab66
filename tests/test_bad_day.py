"""A disrupted day, end to end through the public APIs on the running pieces: the command API
writes DynamoDB (moto), the bridge and the poller carry every change through Kinesis into the
CDC handler, the notifier sends the flight-event notices, and staff use the query API and the
admin. Every passenger's notices are then checked one by one: nobody missed, nobody told twice
about one event, nobody told something untrue; and every surface reports the same numbers."""

import itertools
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.core import mail
from django.utils import timezone

from admin_portal import selectors, services
from admin_portal.models import Flight
from airticket.auth import CUSTOMER, STAFF, issue_token
from tests.cdc.readmodel import passenger_counts_agree
from tests.cdc.test_stream import sync
from tests.conftest import client_with

pytestmark = pytest.mark.django_db(transaction=True)

HUBS = ("PVG", "PEK", "CAN", "CTU")
SPOKES = ("URC", "XIY", "KMG", "SZX", "HGH", "WUH", "TAO", "DLC", "HRB", "NKG", "CSX", "XMN")
ADMIN_BOOKINGS = "/admin/admin_portal/booking/"


class Day:
    """The command API and the query API as their clients use them, and what was done."""

    def __init__(self):
        self.staff = client_with(issue_token(role=STAFF))
        # Three days ahead in Shanghai: every stop of the day is on this date (stops carry the
        # flight date), whatever the clock says.
        self.date = (timezone.now().astimezone(ZoneInfo("Asia/Shanghai")) + timedelta(days=3)).date()
        self.flights: dict[str, dict] = {}
        self.orders: dict[str, list[dict]] = defaultdict(list)  # customer id -> orders placed

    def ok(self, response, status: int = 200) -> dict:
        assert response.status_code == status, response.content
        return response.json()

    def flight(self, number: str, route: tuple[str, ...], departs: str = "13:10", arrives: str = "18:20") -> dict:
        body = {
            "flight_number": number,
            "flight_date": self.date.isoformat(),
            "origin": route[0],
            "transfers": list(route[1:-1]),
            "destination": route[-1],
            "departure_time": departs,
            "arrival_time": arrives,
            "capacity": 300,
        }
        self.flights[number] = self.ok(self.staff.post("/api/v1/flights", body, format="json"), 201)
        return self.flights[number]

    def customer(self, customer_id: str):
        client = client_with(issue_token(role=CUSTOMER, customer_id=customer_id))
        body = {"customer_id": customer_id, "full_name": customer_id.title(), "email": f"{customer_id}@example.com"}
        self.ok(client.post("/api/v1/customers", body, format="json"), 201)
        return client

    def book(self, customer_id: str, number: str):
        client = client_with(issue_token(role=CUSTOMER, customer_id=customer_id))
        response = client.post(
            f"/api/v1/customers/{customer_id}/orders", {"flight_number": number, "flight_date": self.date.isoformat()}, format="json"
        )
        if response.status_code == 201:
            self.orders[customer_id].append(response.json())
        return response

    def flight_url(self, number: str) -> str:
        return f"/api/v1/flights/{number}/{self.date.isoformat()}"

    def cancel(self, number: str) -> None:
        self.ok(self.staff.post(f"{self.flight_url(number)}/cancel"))

    def delay(self, number: str, departs: str, arrives: str) -> None:
        self.ok(self.staff.patch(self.flight_url(number), {"departure_time": departs, "arrival_time": arrives}, format="json"))


def deliver() -> None:
    """Everything written so far through the stream into the read model, then the notifier."""
    done = sync()
    assert done.dead_lettered == 0
    services.flight_events_process()


def by_recipient() -> dict[str, list[str]]:
    """Every notice sent, per passenger: subject, then the line quoting the booking's schedule."""
    sent: dict[str, list[str]] = defaultdict(list)
    for message in mail.outbox:
        booking_line = next(line for line in message.body.splitlines() if line.startswith("Your booking"))
        quoted = booking_line.split(", ", 1)[1]  # the route and the times it quotes
        first_line = message.body.split("\n\n")[1]
        sent[message.to[0].split("@")[0]].append(f"{message.subject} | {first_line} | {quoted}")
    return {customer: sorted(notices) for customer, notices in sent.items()}


def test_a_bad_day_tells_every_affected_passenger_the_truth_once_and_staff_see_the_same_numbers(aws_env, settings, admin_client):
    settings.AIRTICKET_ALLOW_TRUNCATE = True
    day = Day()
    D = day.date.isoformat()

    # Yesterday's demo: MU5159 booked, cancelled, then the table truncated before the notifier
    # ran; the schedule is then loaded again, MU5159 included, under the same number and date.
    day.flight("MU5159", ("PVG", "PEK"))
    day.customer("gone")
    assert day.book("gone", "MU5159").status_code == 201
    day.cancel("MU5159")
    day.ok(day.staff.post("/api/v1/ops/truncate"))
    sync()
    day.flights.clear()
    day.orders.clear()

    # The day: 48 flights through four hubs, most with a transfer; and MU5159 again.
    numbers = []
    spokes = itertools.cycle(SPOKES)
    for n in range(48):
        hub, other_hub = HUBS[n % 4], HUBS[(n + 1) % 4]
        route = (next(spokes), hub, next(spokes)) if n % 3 else (hub, other_hub)
        numbers.append(day.flight(f"CA{1000 + n}", route)["flight_number"])
    day.flight("MU5159", ("PVG", "PEK"))
    numbers.append("MU5159")
    # 40 passengers, three bookings each, spread over the flights.
    for n in range(40):
        customer_id = f"p{n:02d}"
        day.customer(customer_id)
        for k in range(3):
            assert day.book(customer_id, numbers[(n * 7 + k * 13) % len(numbers)]).status_code == 201
    deliver()
    assert mail.outbox == []

    # A typhoon warning for Shanghai (local day D); staff notify everyone it affects.
    shanghai = ZoneInfo("Asia/Shanghai")
    start = datetime.combine(day.date, time(0, 0), shanghai).astimezone(UTC)
    alert = {"city": "Shanghai", "country": "CN", "kind": "TYPHOON", "severity": "EXTREME", "headline": "Typhoon In-fa"}
    alert = day.ok(
        day.staff.post(
            "/api/v1/query/weather-alerts",
            {**alert, "valid_from": start.isoformat(), "valid_to": (start + timedelta(days=1)).isoformat()},
            format="json",
        ),
        201,
    )
    weather = {"weather": str(alert["id"])}
    warned = day.ok(
        day.staff.post("/api/v1/notifications", {**weather, "subject": "Typhoon In-fa", "message": "Expect disruption."}, format="json")
    )
    through_shanghai = {n for n, f in day.flights.items() if {"PVG", "SHA"} & {f["origin"], *f["transfers"], f["destination"]}}
    warned_orders = {o["order_id"] for orders in day.orders.values() for o in orders if o["flight_number"] in through_shanghai}
    assert warned["sent"] == len(warned_orders) and warned["failed"] == 0

    # Cancellations: two flights through Shanghai, and one while passengers are booking it.
    delayed, racing = numbers[10], numbers[5]
    cancelled = sorted(through_shanghai - {"MU5159", delayed, racing})[:2]
    for number in cancelled:
        day.cancel(number)
    racers = [f"r{n}" for n in range(8)]
    for customer_id in racers:
        day.customer(customer_id)
    with ThreadPoolExecutor(max_workers=4) as pool:
        futures = [pool.submit(day.book, customer_id, racing) for customer_id in racers[:4]]
        futures.append(pool.submit(day.cancel, racing))
        futures += [pool.submit(day.book, customer_id, racing) for customer_id in racers[4:]]
        results = [f.result() for f in futures]
    assert all(r is None or r.status_code in (201, 409) for r in results)
    cancelled.append(racing)
    deliver()

    # Two successive delays of one flight, each delivered and notified before the next; a
    # passenger books between them, another after both.
    day.delay(delayed, "15:30", "20:40")
    deliver()
    day.customer("between")
    assert day.book("between", delayed).status_code == 201
    day.delay(delayed, "17:00", "22:10")
    day.customer("after")
    assert day.book("after", delayed).status_code == 201
    deliver()

    # What each passenger should have been told, from the orders the command API confirmed.
    expected: dict[str, list[str]] = defaultdict(list)
    for customer_id, orders in day.orders.items():
        for order in orders:
            number, route = order["flight_number"], " -> ".join([order["origin"], *order["transfers"], order["destination"]])
            if order["order_id"] in warned_orders:  # warned before anything changed
                expected[customer_id].append(f"Typhoon In-fa | Expect disruption. | {route}, departing 13:10, arriving 18:20.")
            if number in cancelled:
                first = f"We are sorry: flight {number} on {D} has been cancelled. Please contact us to rebook or for a refund."
                quoted = f"departing {order['departure_time']}, arriving {order['arrival_time']}; this flight is cancelled"
                expected[customer_id].append(f"Flight {number} on {D} is cancelled | {first} | {route}, {quoted}.")
            if number == delayed:
                booked = f"(booked: departing {order['departure_time']}, arriving {order['arrival_time']})"
                now = "departing 17:00, arriving 22:10"
                if order["departure_time"] == "13:10":
                    first = f"Flight {number} on {D} has been rescheduled: it now departs at 15:30 and arrives at 20:40."
                    expected[customer_id].append(
                        f"Flight {number} on {D} is delayed | {first} | {route}, departing 15:30, arriving 20:40 {booked}."
                    )
                if order["departure_time"] in ("13:10", "15:30"):
                    second = f"Flight {number} on {D} has been rescheduled: it now departs at 17:00 and arrives at 22:10."
                    expected[customer_id].append(f"Flight {number} on {D} is delayed | {second} | {route}, {now} {booked}.")
    booked_racers = [r for r in racers if day.orders.get(r)]
    assert booked_racers, "no booking won the race with the cancellation"
    assert "after" not in expected and "between" in expected
    assert by_recipient() == {customer: sorted(notices) for customer, notices in expected.items()}

    # Every surface counts the same affected passengers: the admin, the query API, the notify
    # action (a second send: all skipped) and the per-flight counts.
    for admin_query, api_query in (
        ({"weather": str(alert["id"])}, weather),
        ({"city": "Shanghai", "city_from": D, "city_to": D}, {"city": "Shanghai", "date_from": D, "date_to": D}),
        ({"flight_number": delayed, "flight_date": D}, {"flight_number": delayed, "flight_date": D}),
    ):
        in_admin = admin_client.get(ADMIN_BOOKINGS, admin_query).context["cl"].result_count
        in_api = day.ok(day.staff.get("/api/v1/query/passengers", api_query))["count"]
        again = day.ok(
            day.staff.post(
                "/api/v1/notifications", {**api_query, "subject": "Typhoon In-fa", "message": "Expect disruption."}, format="json"
            )
        )
        assert in_admin == in_api == again["selected"] > 0
    delayed_flight = Flight.objects.get(pk=f"{delayed}#{D}")
    assert selectors.flight_passenger_counts(flight=delayed_flight).affected == len(
        [o for orders in day.orders.values() for o in orders if o["flight_number"] == delayed]
    )
    assert passenger_counts_agree()
