from datetime import timedelta

import time_machine

from airticket.auth import CUSTOMER, issue_token
from bookings import services
from tests.bookings.api import (
    booking,
    cancel_order_url,
    error,
    order_url,
    orders_url,
    patch,
    place_order,
    post,
    seats_booked,
    stored_orders,
    table_items,
)
from tests.conftest import client_with
from tests.factories import make_customer, make_flight

ROUTE = ("flight_number", "flight_date", "origin", "transfers", "destination", "departure_time", "arrival_time")


def alice_with_order(as_customer, **flight_overrides):
    """Alice, her client, the flight she booked and the order she got."""
    make_customer("alice")
    flight = make_flight(**flight_overrides)
    alice = as_customer("alice")
    r = place_order(alice, "alice", flight)
    assert r.status_code == 201, r.json()
    return alice, flight, r.json()


def test_placing_an_order_answers_201_with_the_route_snapshot_and_takes_a_seat(as_customer):
    alice, flight, order = alice_with_order(as_customer, origin="PVG", transfers=["XIY"], destination="URC")
    assert len(order["order_id"]) == 32
    assert (order["status"], order["version"]) == ("ORDERED", 1)
    assert {k: order[k] for k in ROUTE} == {k: flight[k] for k in ROUTE}
    assert seats_booked(flight) == 1
    assert [o["order_id"] for o in stored_orders("alice")] == [order["order_id"]]


def test_the_order_list_and_detail_show_what_was_placed(as_customer):
    alice, flight, order = alice_with_order(as_customer)
    listed = alice.get(orders_url("alice")).json()
    assert listed["count"] == 1
    assert listed["results"][0]["order_id"] == order["order_id"]
    r = alice.get(order_url("alice", order["order_id"]))
    assert r.status_code == 200
    assert r.json() == order
    assert r["ETag"] == '"1"'


def test_reading_an_unknown_order_is_404(as_customer):
    make_customer("alice")
    r = as_customer("alice").get(order_url("alice", "0" * 32))
    assert r.status_code == 404
    assert error(r)["code"] == "not_found"


def test_booking_an_unknown_flight_is_404_and_writes_nothing(as_customer):
    make_customer("alice")
    before = table_items()
    r = place_order(as_customer("alice"), "alice", {"flight_number": "MU9999", "flight_date": "2030-01-01"})
    assert r.status_code == 404
    assert table_items() == before


def test_an_unregistered_customer_cannot_book(as_customer):
    flight = make_flight()
    r = place_order(as_customer("ghost"), "ghost", flight)
    assert r.status_code == 404
    assert seats_booked(flight) == 0
    assert stored_orders("ghost") == []


def test_booking_a_full_flight_is_409_and_writes_nothing(as_customer):
    flight = make_flight(capacity=1)
    make_customer("bob")
    services.order_place(customer_id="bob", **booking(flight))
    make_customer("alice")
    before = table_items()
    r = place_order(as_customer("alice"), "alice", flight)
    assert r.status_code == 409
    assert error(r)["code"] == "flight_full"
    assert table_items() == before


def test_booking_a_cancelled_flight_is_409(as_customer):
    make_customer("alice")
    flight = make_flight()
    services.flight_cancel(**booking(flight))
    r = place_order(as_customer("alice"), "alice", flight)
    assert r.status_code == 409
    assert error(r)["code"] == "flight_cancelled"
    assert stored_orders("alice") == []


def test_a_customer_holds_at_most_one_ordered_booking_per_flight_and_date(as_customer):
    alice, flight, _ = alice_with_order(as_customer)
    r = place_order(alice, "alice", flight)
    assert r.status_code == 409
    assert error(r)["code"] == "already_booked"
    assert seats_booked(flight) == 1
    assert len(stored_orders("alice")) == 1


def test_cancelling_an_order_marks_it_cancelled_and_frees_its_seat(as_customer):
    alice, flight, order = alice_with_order(as_customer)
    r = post(alice, cancel_order_url("alice", order["order_id"]))
    assert r.status_code == 200, r.json()
    assert (r.json()["status"], r.json()["version"]) == ("CANCELLED", 2)
    assert seats_booked(flight) == 0
    assert stored_orders("alice")[0]["status"] == "CANCELLED"


def test_cancelling_a_cancelled_order_is_a_no_op_200(as_customer):
    alice, flight, order = alice_with_order(as_customer)
    post(alice, cancel_order_url("alice", order["order_id"]))
    before = table_items()
    r = post(alice, cancel_order_url("alice", order["order_id"]))
    assert r.status_code == 200
    assert (r.json()["status"], r.json()["version"]) == ("CANCELLED", 2)
    assert table_items() == before


def test_cancelling_an_unknown_order_is_404(as_customer):
    make_customer("alice")
    r = post(as_customer("alice"), cancel_order_url("alice", "f" * 32))
    assert r.status_code == 404


def test_booking_the_same_flight_again_after_cancelling_works(as_customer):
    alice, flight, order = alice_with_order(as_customer)
    post(alice, cancel_order_url("alice", order["order_id"]))
    r = place_order(alice, "alice", flight)
    assert r.status_code == 201, r.json()
    assert r.json()["order_id"] != order["order_id"]
    assert seats_booked(flight) == 1
    assert sorted(o["status"] for o in stored_orders("alice")) == ["CANCELLED", "ORDERED"]


def test_changing_an_order_moves_its_seat_and_its_route_snapshot_to_the_new_flight(as_customer):
    alice, old, order = alice_with_order(as_customer)
    new = make_flight(origin="CAN", destination="CTU", departure_time="13:05")
    r = patch(alice, order_url("alice", order["order_id"]), booking(new))
    assert r.status_code == 200, r.json()
    assert {k: r.json()[k] for k in ROUTE} == {k: new[k] for k in ROUTE}
    assert (r.json()["version"], r.json()["order_id"]) == (2, order["order_id"])
    assert (seats_booked(old), seats_booked(new)) == (0, 1)
    [stored] = stored_orders("alice")
    assert (stored["flight_number"], stored["origin"], stored["version"]) == (new["flight_number"], "CAN", 2)


def test_changing_an_order_to_another_date_of_the_same_flight_works(as_customer):
    alice, old, order = alice_with_order(as_customer, flight_number="CA981")
    new = make_flight(flight_number="CA981", flight_date="2031-05-06")
    r = patch(alice, order_url("alice", order["order_id"]), booking(new))
    assert r.status_code == 200, r.json()
    assert r.json()["flight_date"] == "2031-05-06"
    assert (seats_booked(old), seats_booked(new)) == (0, 1)


def test_after_a_change_the_old_flight_can_be_booked_again(as_customer):
    alice, old, order = alice_with_order(as_customer)
    new = make_flight()
    patch(alice, order_url("alice", order["order_id"]), booking(new))
    assert place_order(alice, "alice", old).status_code == 201
    assert (seats_booked(old), seats_booked(new)) == (1, 1)


def test_changing_an_order_with_the_current_if_match_succeeds(as_customer):
    alice, _, order = alice_with_order(as_customer)
    r = patch(alice, order_url("alice", order["order_id"]), booking(make_flight()), if_match='"1"')
    assert r.status_code == 200, r.json()


def test_changing_an_order_with_a_stale_if_match_is_412_and_changes_nothing(as_customer):
    alice, _, order = alice_with_order(as_customer)
    patch(alice, order_url("alice", order["order_id"]), booking(make_flight()))
    other = make_flight()
    before = table_items()
    r = patch(alice, order_url("alice", order["order_id"]), booking(other), if_match=1)
    assert r.status_code == 412
    assert error(r)["code"] == "stale_version"
    assert table_items() == before


def test_changing_a_cancelled_order_is_409(as_customer):
    alice, _, order = alice_with_order(as_customer)
    post(alice, cancel_order_url("alice", order["order_id"]))
    other = make_flight()
    r = patch(alice, order_url("alice", order["order_id"]), booking(other))
    assert r.status_code == 409
    assert error(r)["code"] == "order_not_active"
    assert seats_booked(other) == 0


def test_changing_an_order_to_a_full_flight_is_409_and_keeps_the_old_seat(as_customer):
    alice, old, order = alice_with_order(as_customer)
    full = make_flight(capacity=1)
    make_customer("bob")
    services.order_place(customer_id="bob", **booking(full))
    before = table_items()
    r = patch(alice, order_url("alice", order["order_id"]), booking(full))
    assert r.status_code == 409
    assert error(r)["code"] == "flight_full"
    assert table_items() == before


def test_changing_an_order_to_a_cancelled_flight_is_409(as_customer):
    alice, old, order = alice_with_order(as_customer)
    cancelled = make_flight()
    services.flight_cancel(**booking(cancelled))
    r = patch(alice, order_url("alice", order["order_id"]), booking(cancelled))
    assert r.status_code == 409
    assert seats_booked(old) == 1


def test_changing_an_order_to_a_flight_the_customer_already_holds_is_409(as_customer):
    alice, old, order = alice_with_order(as_customer)
    held = make_flight()
    assert place_order(alice, "alice", held).status_code == 201
    before = table_items()
    r = patch(alice, order_url("alice", order["order_id"]), booking(held))
    assert r.status_code == 409
    assert error(r)["code"] == "already_booked"
    assert table_items() == before


def test_changing_an_order_to_an_unknown_flight_is_404(as_customer):
    alice, old, order = alice_with_order(as_customer)
    r = patch(alice, order_url("alice", order["order_id"]), {"flight_number": "ZZ1", "flight_date": "2030-01-01"})
    assert r.status_code == 404
    assert seats_booked(old) == 1


def test_changing_an_order_to_its_own_flight_is_a_no_op(as_customer):
    alice, flight, order = alice_with_order(as_customer)
    before = table_items()
    r = patch(alice, order_url("alice", order["order_id"]), booking(flight))
    assert r.status_code == 200
    assert r.json()["version"] == 1
    assert table_items() == before


def test_listing_the_orders_of_an_unknown_customer_is_404(staff):
    r = staff.get(orders_url("nobody"))
    assert r.status_code == 404


def test_another_customers_order_id_under_ones_own_path_is_404(as_customer):
    make_customer("bob")
    bob_order = services.order_place(customer_id="bob", **booking(make_flight()))
    make_customer("alice")
    alice, elsewhere = as_customer("alice"), make_flight()
    before = table_items()
    assert alice.get(order_url("alice", bob_order["order_id"])).status_code == 404
    assert post(alice, cancel_order_url("alice", bob_order["order_id"])).status_code == 404
    assert patch(alice, order_url("alice", bob_order["order_id"]), booking(elsewhere)).status_code == 404
    assert table_items() == before


def test_changing_an_order_with_a_weak_if_match_is_412_and_changes_nothing(as_customer):
    alice, _, order = alice_with_order(as_customer)
    other = make_flight()
    before = table_items()
    r = patch(alice, order_url("alice", order["order_id"]), booking(other), if_match='W/"1"')
    assert r.status_code == 412
    assert table_items() == before


def test_changing_an_order_with_if_match_star_succeeds(as_customer):
    alice, _, order = alice_with_order(as_customer)
    r = patch(alice, order_url("alice", order["order_id"]), booking(make_flight()), if_match="*")
    assert r.status_code == 200, r.json()


def departed(flight: dict):
    """The clock moved to a minute after the flight's departure (its origin's local time)."""
    return time_machine.travel(services.flight_departure(flight=flight) + timedelta(minutes=1), tick=False)


def test_a_flight_that_has_departed_takes_no_booking(aws_env):
    make_customer("alice")
    flight = make_flight(flight_date=services.origin_today(origin="PVG").isoformat(), departure_time="23:59")
    with departed(flight):
        r = place_order(client_with(issue_token(role=CUSTOMER, customer_id="alice")), "alice", flight)
    assert r.status_code == 409, r.json()
    assert error(r)["code"] == "flight_departed"
    assert seats_booked(flight) == 0
    assert stored_orders("alice") == []


def test_a_booking_cannot_move_onto_a_flight_that_has_departed(aws_env):
    make_customer("alice")
    later = make_flight()
    today = make_flight(flight_date=services.origin_today(origin="PVG").isoformat(), departure_time="23:59")
    order = services.order_place(customer_id="alice", **booking(later))
    with departed(today):
        r = patch(client_with(issue_token(role=CUSTOMER, customer_id="alice")), order_url("alice", order["order_id"]), booking(today))
    assert r.status_code == 409, r.json()
    assert error(r)["code"] == "flight_departed"
    assert (seats_booked(later), seats_booked(today)) == (1, 0)
    assert stored_orders("alice")[0]["flight_number"] == later["flight_number"]
