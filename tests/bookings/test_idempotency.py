from time import time as real_time

import pytest

from airticket.auth import STAFF, issue_token
from airticket.errors import Conflict
from bookings import idempotency, services
from tests.bookings.api import (
    CUSTOMERS,
    FLIGHTS,
    booking,
    cancel_flight_url,
    cancel_order_url,
    error,
    place_order,
    post,
    seats_booked,
    stored_customer,
    stored_flight,
    stored_orders,
    table_items,
)
from tests.conftest import client_with
from tests.factories import flight_data, make_customer, make_flight


def replayed(first, second) -> bool:
    return (
        second.status_code == first.status_code
        and second.json() == first.json()
        and second.get("Idempotent-Replayed") == "true"
        and second.get("ETag") == first.get("ETag")
    )


def test_a_retried_order_with_the_same_key_replays_the_first_response_and_books_one_seat(as_customer):
    make_customer("alice")
    flight = make_flight()
    alice = as_customer("alice")
    first = place_order(alice, "alice", flight, idempotency_key="order-1")
    assert first.status_code == 201, first.json()
    state = table_items()
    second = place_order(alice, "alice", flight, idempotency_key="order-1")
    assert replayed(first, second)
    assert table_items() == state
    assert seats_booked(flight) == 1
    assert len(stored_orders("alice")) == 1


def test_a_retried_registration_replays_201_instead_of_409(as_customer):
    body = {"customer_id": "alice", "full_name": "Alice"}
    alice = as_customer("alice")
    first = post(alice, CUSTOMERS, body, idempotency_key="reg")
    state = table_items()
    second = post(alice, CUSTOMERS, body, idempotency_key="reg")
    assert first.status_code == 201
    assert replayed(first, second)
    assert table_items() == state


def test_a_retried_flight_creation_replays_the_first_response(staff):
    data = flight_data()
    first = post(staff, FLIGHTS, data, idempotency_key="flight")
    state = table_items()
    second = post(staff, FLIGHTS, data, idempotency_key="flight")
    assert first.status_code == 201
    assert replayed(first, second)
    assert table_items() == state


def test_a_retried_cancel_replays_the_first_response(as_customer):
    make_customer("alice")
    flight = make_flight()
    order = services.order_place(customer_id="alice", **booking(flight))
    alice = as_customer("alice")
    first = post(alice, cancel_order_url("alice", order["order_id"]), idempotency_key="cancel")
    state = table_items()
    second = post(alice, cancel_order_url("alice", order["order_id"]), idempotency_key="cancel")
    assert first.json()["status"] == "CANCELLED"
    assert replayed(first, second)
    assert table_items() == state


def test_the_same_key_with_another_body_is_422_and_writes_nothing(as_customer):
    make_customer("alice")
    first_flight, other_flight = make_flight(), make_flight()
    alice = as_customer("alice")
    assert place_order(alice, "alice", first_flight, idempotency_key="k").status_code == 201
    state = table_items()
    r = place_order(alice, "alice", other_flight, idempotency_key="k")
    assert r.status_code == 422
    assert error(r)["code"] == "idempotency_key_reused"
    assert "Idempotency-Key" in error(r)["fields"]
    assert table_items() == state


def test_the_same_key_on_another_path_is_422(as_customer):
    for customer_id in ("alice", "bob"):
        make_customer(customer_id)
    flight = make_flight()
    staff_like = as_customer("alice")
    assert place_order(staff_like, "alice", flight, idempotency_key="k").status_code == 201
    r = post(staff_like, CUSTOMERS, {"customer_id": "alice", "full_name": "Alice"}, idempotency_key="k")
    assert r.status_code == 422


def test_idempotency_keys_are_scoped_per_caller(as_customer):
    flight = make_flight()
    for customer_id in ("alice", "bob"):
        make_customer(customer_id)
        r = place_order(as_customer(customer_id), customer_id, flight, idempotency_key="same-key")
        assert r.status_code == 201, r.json()
        assert r.get("Idempotent-Replayed") is None
    assert seats_booked(flight) == 2


def test_a_request_rejected_as_invalid_does_not_use_up_its_key(as_customer):
    make_customer("alice")
    flight = make_flight()
    alice = as_customer("alice")
    state = table_items()
    r = post(alice, f"{CUSTOMERS}/alice/orders", {"flight_number": flight["flight_number"]}, idempotency_key="k")
    assert r.status_code == 400
    assert table_items() == state
    assert place_order(alice, "alice", flight, idempotency_key="k").status_code == 201


def test_a_conflict_is_replayed_as_the_first_answer(as_customer):
    flight = make_flight(capacity=1)
    for customer_id in ("alice", "bob"):
        make_customer(customer_id)
    bob_order = services.order_place(customer_id="bob", **booking(flight))
    alice = as_customer("alice")
    first = place_order(alice, "alice", flight, idempotency_key="k")
    assert first.status_code == 409
    services.order_cancel(customer_id="bob", order_id=bob_order["order_id"])
    assert replayed(first, place_order(alice, "alice", flight, idempotency_key="k"))
    assert seats_booked(flight) == 0


def test_a_retry_while_the_first_request_is_still_running_is_409(as_customer, monkeypatch):
    make_customer("alice")
    flight = make_flight()
    alice = as_customer("alice")
    overlapping = []
    place = services.order_place

    def place_while_the_client_retries(**kwargs):
        overlapping.append(place_order(alice, "alice", flight, idempotency_key="k"))
        return place(**kwargs)

    monkeypatch.setattr(services, "order_place", place_while_the_client_retries)
    assert place_order(alice, "alice", flight, idempotency_key="k").status_code == 201
    [retry] = overlapping
    assert retry.status_code == 409
    assert error(retry)["code"] == "idempotency_in_progress"
    assert seats_booked(flight) == 1


def test_a_request_that_crashed_releases_its_key_for_a_retry(as_customer, monkeypatch):
    make_customer("alice")
    flight = make_flight()
    alice = as_customer("alice")

    def crash(**kwargs):
        raise RuntimeError("DynamoDB fell over")

    with monkeypatch.context() as patched:
        patched.setattr(services, "order_place", crash)
        with pytest.raises(RuntimeError):
            place_order(alice, "alice", flight, idempotency_key="k")
    assert place_order(alice, "alice", flight, idempotency_key="k").status_code == 201
    assert seats_booked(flight) == 1


def test_a_post_without_a_key_is_not_recorded(as_customer):
    alice = as_customer("alice")
    post(alice, CUSTOMERS, {"customer_id": "alice", "full_name": "Alice"})
    assert [item["PK"] for item in table_items()] == ["CUSTOMER#alice"]
    assert stored_customer("alice") is not None
    assert stored_flight({"flight_number": "MU1", "flight_date": "2030-01-01"}) is None


def test_a_key_whose_request_died_without_an_answer_is_free_again_once_the_claim_is_abandoned(as_customer, monkeypatch):
    make_customer("alice")
    flight = make_flight()
    alice = as_customer("alice")

    def killed(**kwargs):
        raise SystemExit("the Lambda timed out")  # no `except Exception` runs: the claim stays

    with monkeypatch.context() as patched:
        patched.setattr(services, "order_place", killed)
        with pytest.raises(SystemExit):
            place_order(alice, "alice", flight, idempotency_key="k")
    assert error(place_order(alice, "alice", flight, idempotency_key="k"))["code"] == "idempotency_in_progress"

    monkeypatch.setattr(idempotency.time, "time", lambda: real_time() + idempotency.ABANDONED_AFTER_SECONDS + 1)
    retry = place_order(alice, "alice", flight, idempotency_key="k")

    assert retry.status_code == 201
    assert seats_booked(flight) == 1


# --- expiry, retryable answers, takeover, staff identities (issue 16, points 4-6) -----------


class Clock:
    """Moves the idempotency layer's clock (only it: DynamoDB and the request signer keep theirs)."""

    def __init__(self, monkeypatch):
        self.offset = 0
        monkeypatch.setattr(idempotency, "_now", lambda: int(real_time()) + self.offset)

    def advance(self, seconds: int) -> None:
        self.offset += seconds


def test_a_key_past_its_ttl_behaves_as_new_even_before_dynamodb_deletes_it(as_customer, monkeypatch, settings):
    make_customer("alice")
    first_flight, second_flight = make_flight(), make_flight()
    alice = as_customer("alice")
    clock = Clock(monkeypatch)
    assert place_order(alice, "alice", first_flight, idempotency_key="k").status_code == 201
    clock.advance(settings.IDEMPOTENCY_TTL_SECONDS + 1)

    again = place_order(alice, "alice", second_flight, idempotency_key="k")

    assert again.status_code == 201, again.json()
    assert again.get("Idempotent-Replayed") is None
    assert (seats_booked(first_flight), seats_booked(second_flight)) == (1, 1)


def test_a_key_within_its_ttl_still_replays(as_customer, monkeypatch, settings):
    make_customer("alice")
    flight = make_flight()
    alice = as_customer("alice")
    clock = Clock(monkeypatch)
    first = place_order(alice, "alice", flight, idempotency_key="k")
    clock.advance(settings.IDEMPOTENCY_TTL_SECONDS - 5)
    assert replayed(first, place_order(alice, "alice", flight, idempotency_key="k"))


def test_a_busy_answer_is_not_stored_so_the_retry_runs_the_command(as_customer, monkeypatch):
    make_customer("alice")
    flight = make_flight()
    alice = as_customer("alice")

    def busy(**kwargs):
        raise Conflict("flight is too busy, try again", code="busy")

    with monkeypatch.context() as patched:
        patched.setattr(services, "order_place", busy)
        first = place_order(alice, "alice", flight, idempotency_key="k")
    assert (first.status_code, error(first)["code"]) == (409, "busy")

    retry = place_order(alice, "alice", flight, idempotency_key="k")

    assert retry.status_code == 201, retry.json()
    assert retry.get("Idempotent-Replayed") is None
    assert seats_booked(flight) == 1


def test_a_retry_after_a_takeover_gets_the_original_201_when_the_original_had_committed(as_customer, monkeypatch):
    make_customer("alice")
    flight = make_flight()
    alice = as_customer("alice")
    clock = Clock(monkeypatch)
    place = services.order_place

    def committed_then_killed(**kwargs):
        place(**kwargs)
        raise SystemExit("the Lambda timed out after the commit, before answering")

    with monkeypatch.context() as patched:
        patched.setattr(services, "order_place", committed_then_killed)
        with pytest.raises(SystemExit):
            place_order(alice, "alice", flight, idempotency_key="k")
    clock.advance(idempotency.ABANDONED_AFTER_SECONDS + 1)

    retry = place_order(alice, "alice", flight, idempotency_key="k")

    assert retry.status_code == 201, retry.json()
    assert retry.get("Idempotent-Replayed") == "true"
    [order] = stored_orders("alice")
    assert retry.json()["order_id"] == order["order_id"]
    assert seats_booked(flight) == 1


def overtaken_original(monkeypatch, command: str, retry, *, fails_with: Exception | None = None) -> list:
    """Makes the first call of `services.<command>` stall past its claim's abandonment while the
    client retries (`retry()`); then the original goes on, or fails with `fails_with`. Returns the
    retry's response, in a list filled once the original has run."""
    clock = Clock(monkeypatch)
    command_itself = getattr(services, command)
    took_over, calls = [], []

    def stalled(**kwargs):
        calls.append(kwargs)
        if len(calls) == 1:  # the retry below calls it again, and goes through
            clock.advance(idempotency.ABANDONED_AFTER_SECONDS + 1)
            took_over.append(retry())
            if fails_with is not None:
                raise fails_with
        return command_itself(**kwargs)

    monkeypatch.setattr(services, command, stalled)
    return took_over


def test_a_late_original_cannot_commit_after_a_retry_took_its_claim_over(as_customer, monkeypatch):
    make_customer("alice")
    flight = make_flight()
    alice = as_customer("alice")
    took_over = overtaken_original(monkeypatch, "order_place", lambda: place_order(alice, "alice", flight, idempotency_key="k"))
    original = place_order(alice, "alice", flight, idempotency_key="k")

    [retry] = took_over
    assert retry.status_code == 201, retry.json()
    assert (original.status_code, error(original)["code"]) == (409, "idempotency_in_progress")
    [order] = stored_orders("alice")
    assert order["order_id"] == retry.json()["order_id"]
    assert replayed(retry, place_order(alice, "alice", flight, idempotency_key="k"))


def test_a_late_original_that_crashes_does_not_release_the_key_of_the_request_that_took_over(as_customer, monkeypatch):
    make_customer("alice")
    flight = make_flight()
    alice = as_customer("alice")
    took_over = overtaken_original(
        monkeypatch,
        "order_place",
        lambda: place_order(alice, "alice", flight, idempotency_key="k"),
        fails_with=RuntimeError("DynamoDB fell over"),
    )
    with pytest.raises(RuntimeError):
        place_order(alice, "alice", flight, idempotency_key="k")

    [retry] = took_over
    assert retry.status_code == 201, retry.json()
    assert replayed(retry, place_order(alice, "alice", flight, idempotency_key="k"))
    assert seats_booked(flight) == 1


def test_a_late_original_does_not_overwrite_the_outcome_of_the_request_that_took_over(staff, monkeypatch):
    flight = make_flight()
    took_over = overtaken_original(
        monkeypatch,
        "flight_cancel",
        lambda: post(staff, cancel_flight_url(flight), idempotency_key="k"),
        # an answer that would be stored
        fails_with=Conflict("flight is being changed concurrently", code="flight_changed"),
    )
    original = post(staff, cancel_flight_url(flight), idempotency_key="k")

    [retry] = took_over
    assert (retry.status_code, retry.json()["status"]) == (200, "CANCELLED")
    assert original.status_code == 409
    assert replayed(retry, post(staff, cancel_flight_url(flight), idempotency_key="k"))


def test_two_staff_members_using_the_same_key_each_get_their_own_outcome(aws_env):
    ops, planner = (client_with(issue_token(role=STAFF, staff_id=name)) for name in ("ops", "planner"))
    first, second = flight_data(), flight_data()
    r1 = post(ops, FLIGHTS, first, idempotency_key="same-key")
    r2 = post(planner, FLIGHTS, second, idempotency_key="same-key")
    assert (r1.status_code, r2.status_code) == (201, 201), (r1.json(), r2.json())
    assert stored_flight(second) is not None


def test_one_staff_identity_replays_its_key_across_its_tokens(aws_env):
    data = flight_data()
    first = post(client_with(issue_token(role=STAFF, staff_id="ops")), FLIGHTS, data, idempotency_key="k")
    second = post(client_with(issue_token(role=STAFF, staff_id="ops")), FLIGHTS, data, idempotency_key="k")
    assert first.status_code == 201
    assert replayed(first, second)
