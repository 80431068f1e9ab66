"""Concurrent clients against the moto server (server mode, one request per thread at a time)."""

import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

from bookings import services
from tests.bookings.api import (
    booking,
    cancel_order_url,
    customer_url,
    error,
    flight_url,
    patch,
    place_order,
    post,
    seats_booked,
    stored_customer,
    stored_flight,
    stored_orders,
)
from tests.factories import make_customer, make_flight


def run_together(calls: list) -> list:
    """Run each zero-argument callable in its own thread, released at the same moment."""
    start = threading.Barrier(len(calls))

    def run(call):
        start.wait()
        return call()

    with ThreadPoolExecutor(max_workers=len(calls)) as pool:
        return list(pool.map(run, calls))


def statuses(responses) -> Counter:
    return Counter(r.status_code for r in responses)


def test_orders_placed_while_others_are_cancelled_and_the_profile_changes_are_all_kept(as_customer):
    make_customer("alice")
    to_cancel = [services.order_place(customer_id="alice", **booking(make_flight())) for _ in range(10)]
    new_flights = [make_flight() for _ in range(25)]

    def placing(flight):
        return lambda: place_order(as_customer("alice"), "alice", flight)

    def cancelling(order):
        return lambda: post(as_customer("alice"), cancel_order_url("alice", order["order_id"]))

    def renaming(index):
        return lambda: patch(as_customer("alice"), customer_url("alice"), {"full_name": f"Alice {index}"})

    calls = [placing(f) for f in new_flights] + [cancelling(o) for o in to_cancel] + [renaming(i) for i in range(5)]
    responses = run_together(calls)
    placed, cancelled, renamed = responses[:25], responses[25:35], responses[35:]

    assert statuses(placed) == {201: 25}
    assert statuses(cancelled) == {200: 10}
    assert statuses(renamed) == {200: 5}
    stored = {o["order_id"]: o for o in stored_orders("alice")}
    assert len(stored) == 35
    for r in placed:
        assert (stored[r.json()["order_id"]]["status"], stored[r.json()["order_id"]]["version"]) == ("ORDERED", 1)
    for order in to_cancel:
        assert (stored[order["order_id"]]["status"], stored[order["order_id"]]["version"]) == ("CANCELLED", 2)
    assert [seats_booked(f) for f in new_flights] == [1] * 25
    assert [seats_booked(o) for o in to_cancel] == [0] * 10
    # Every profile change got its own version: none overwrote another.
    assert sorted(r.json()["version"] for r in renamed) == [2, 3, 4, 5, 6]
    assert stored_customer("alice")["version"] == 6
    listed = as_customer("alice").get(customer_url("alice")).json()["orders"]
    assert len(listed) == 35


def test_one_customer_booking_the_same_flight_from_25_threads_gets_exactly_one_seat(as_customer):
    make_customer("alice")
    flight = make_flight()
    responses = run_together([lambda: place_order(as_customer("alice"), "alice", flight)] * 25)
    assert statuses(responses) == {201: 1, 409: 24}
    assert {error(r)["code"] for r in responses if r.status_code == 409} == {"already_booked"}
    assert seats_booked(flight) == 1
    assert len(stored_orders("alice")) == 1


def test_60_customers_racing_for_40_seats_book_exactly_40(as_customer):
    flight = make_flight(capacity=40)
    customers = [f"racer-{index}" for index in range(60)]
    for customer_id in customers:
        make_customer(customer_id)

    def booking_for(customer_id):
        return lambda: place_order(as_customer(customer_id), customer_id, flight)

    responses = run_together([booking_for(c) for c in customers])
    assert statuses(responses) == {201: 40, 409: 20}
    assert {error(r)["code"] for r in responses if r.status_code == 409} == {"flight_full"}
    stored = stored_flight(flight)
    assert (stored["seats_booked"], stored["version"]) == (40, 41)
    winners = [c for c, r in zip(customers, responses, strict=True) if r.status_code == 201]
    assert sum(len(stored_orders(c)) for c in customers) == 40
    assert all(stored_orders(c)[0]["status"] == "ORDERED" for c in winners)


def test_cutting_capacity_while_customers_book_never_leaves_more_seats_booked_than_capacity(as_customer, staff):
    flight = make_flight(capacity=30)
    customers = [f"rush-{index}" for index in range(20)]
    for customer_id in customers:
        make_customer(customer_id)

    def booking_for(customer_id):
        return lambda: place_order(as_customer(customer_id), customer_id, flight)

    def cut_capacity():
        return patch(staff, flight_url(flight), {"capacity": 10})

    *bookings, cut = run_together([booking_for(c) for c in customers] + [cut_capacity])
    booked = sum(r.status_code == 201 for r in bookings)
    stored = stored_flight(flight)
    assert stored["seats_booked"] == booked
    assert stored["seats_booked"] <= stored["capacity"]
    if cut.status_code == 200:
        assert stored["capacity"] == 10
    else:
        assert (cut.status_code, stored["capacity"]) == (409, 30)
        assert booked == 20
