from django.test import override_settings

from bookings import services
from tests.bookings.api import CUSTOMERS, customer_url, error, patch, place_order, post, stored_customer, table_items
from tests.factories import make_customer, make_flight


def test_registering_a_customer_answers_201_and_stores_the_profile_at_version_1(as_customer):
    r = post(as_customer("alice"), CUSTOMERS, {"customer_id": "alice", "full_name": "Alice Liddell", "email": "alice@example.com"})
    assert r.status_code == 201, r.json()
    assert r.json()["version"] == 1
    assert r["ETag"] == '"1"'
    stored = stored_customer("alice")
    assert (stored["full_name"], stored["email"], stored["version"]) == ("Alice Liddell", "alice@example.com", 1)


def test_registering_an_existing_customer_id_is_409_and_keeps_the_first_profile(staff):
    make_customer("alice", full_name="Alice One")
    r = post(staff, CUSTOMERS, {"customer_id": "alice", "full_name": "Alice Two"})
    assert r.status_code == 409
    assert error(r)["code"] == "customer_exists"
    assert stored_customer("alice")["full_name"] == "Alice One"


def test_a_customer_reads_their_profile_with_their_orders_newest_first(as_customer):
    make_customer("alice")
    flights = [make_flight() for _ in range(3)]
    alice = as_customer("alice")
    placed = [place_order(alice, "alice", flight).json()["order_id"] for flight in flights]
    r = alice.get(customer_url("alice"))
    assert r.status_code == 200
    body = r.json()
    assert body["customer_id"] == "alice"
    assert [o["order_id"] for o in body["orders"]] == placed[::-1]
    assert r["ETag"].startswith(f'"{body["version"]}.')


def test_reading_an_unknown_customer_is_404(staff):
    r = staff.get(customer_url("nobody"))
    assert r.status_code == 404
    assert error(r)["code"] == "not_found"


def test_patching_a_customer_changes_the_fields_and_bumps_the_version(as_customer):
    make_customer("alice")
    r = patch(as_customer("alice"), customer_url("alice"), {"full_name": "Alice Pleasance", "mobile": "+44 20 7946 0000"})
    assert r.status_code == 200, r.json()
    assert (r.json()["full_name"], r.json()["version"]) == ("Alice Pleasance", 2)
    stored = stored_customer("alice")
    assert (stored["full_name"], stored["mobile"], stored["version"]) == ("Alice Pleasance", "+44 20 7946 0000", 2)


def test_patching_a_customer_with_the_current_if_match_succeeds(as_customer):
    make_customer("alice")
    r = patch(as_customer("alice"), customer_url("alice"), {"full_name": "Alice B"}, if_match='"1"')
    assert r.status_code == 200, r.json()
    assert stored_customer("alice")["full_name"] == "Alice B"


def test_a_weak_if_match_never_matches_so_the_patch_is_412_and_changes_nothing(as_customer):
    make_customer("alice", full_name="Alice")
    before = table_items()
    r = patch(as_customer("alice"), customer_url("alice"), {"full_name": "Alice B"}, if_match='W/"1"')
    assert r.status_code == 412
    assert error(r)["code"] == "stale_version"
    assert table_items() == before


def test_if_match_star_patches_whatever_the_version(as_customer):
    make_customer("alice")
    alice = as_customer("alice")
    assert patch(alice, customer_url("alice"), {"full_name": "Alice B"}).status_code == 200
    r = patch(alice, customer_url("alice"), {"full_name": "Alice C"}, if_match="*")
    assert r.status_code == 200, r.json()
    assert (r.json()["version"], stored_customer("alice")["full_name"]) == (3, "Alice C")


def test_if_match_with_a_weak_and_the_current_strong_tag_succeeds(as_customer):
    make_customer("alice")
    r = patch(as_customer("alice"), customer_url("alice"), {"full_name": "Alice B"}, if_match='W/"9", "1"')
    assert r.status_code == 200, r.json()


def test_the_customer_etag_changes_when_an_order_changes_though_the_profile_does_not(as_customer):
    make_customer("alice")
    alice = as_customer("alice")
    before = alice.get(customer_url("alice"))
    order = place_order(alice, "alice", make_flight()).json()
    booked = alice.get(customer_url("alice"))
    alice.post(f"{customer_url('alice')}/orders/{order['order_id']}/cancel")
    cancelled = alice.get(customer_url("alice"))
    assert before.json()["version"] == booked.json()["version"] == cancelled.json()["version"] == 1
    assert len({before["ETag"], booked["ETag"], cancelled["ETag"]}) == 3
    assert alice.get(customer_url("alice"))["ETag"] == cancelled["ETag"]


def test_patching_with_the_customer_etag_succeeds_while_the_orders_are_unchanged(as_customer):
    make_customer("alice")
    alice = as_customer("alice")
    place_order(alice, "alice", make_flight())
    tag = alice.get(customer_url("alice"))["ETag"]
    r = patch(alice, customer_url("alice"), {"full_name": "Alice B"}, if_match=tag)
    assert r.status_code == 200, r.json()


def test_patching_with_a_customer_etag_read_before_an_order_changed_is_412(as_customer):
    make_customer("alice", full_name="Alice")
    alice = as_customer("alice")
    tag = alice.get(customer_url("alice"))["ETag"]
    place_order(alice, "alice", make_flight())
    before = table_items()
    r = patch(alice, customer_url("alice"), {"full_name": "Alice B"}, if_match=tag)
    assert r.status_code == 412
    assert table_items() == before


def test_patching_a_customer_with_a_stale_if_match_is_412_and_changes_nothing(as_customer):
    make_customer("alice", full_name="Alice")
    alice = as_customer("alice")
    assert patch(alice, customer_url("alice"), {"full_name": "Alice B"}, if_match=1).status_code == 200
    before = table_items()
    r = patch(alice, customer_url("alice"), {"full_name": "Alice C"}, if_match=1)
    assert r.status_code == 412
    assert error(r)["code"] == "stale_version"
    assert table_items() == before


def test_patching_an_unknown_customer_is_404(staff):
    r = patch(staff, customer_url("nobody"), {"full_name": "Nobody"})
    assert r.status_code == 404
    assert table_items() == []


def test_the_registration_answer_is_the_profile_a_read_returns(as_customer):
    alice = as_customer("alice")
    created = post(alice, CUSTOMERS, {"customer_id": "alice", "full_name": "Alice", "mobile": "+1 555 0100"}).json()
    read = alice.get(customer_url("alice")).json()
    assert created == {k: v for k, v in read.items() if k != "orders"}


@override_settings(DEBUG=False)
def test_an_unknown_api_url_is_a_json_404(as_customer):
    r = as_customer("alice").get("/api/v1/customers/alice/tickets")
    assert r.status_code == 404
    assert error(r)["code"] == "not_found"


@override_settings(DEBUG=False)
def test_a_crash_under_the_api_is_a_json_500_without_details(as_customer, monkeypatch):
    make_customer("alice")

    def crash(**kwargs):
        raise RuntimeError("secret internals")

    monkeypatch.setattr(services, "customer_get_with_orders", crash)
    alice = as_customer("alice")
    alice.raise_request_exception = False
    r = alice.get(customer_url("alice"))
    assert r.status_code == 500
    assert error(r)["code"] == "server_error"
    assert b"secret internals" not in r.content
