"""Who may call what: anonymous and bad tokens 401, a customer only on their own id, staff on all."""

import json
import time
from unittest import mock

import pytest
from django.conf import settings
from django.core import signing

from airticket import auth
from airticket.auth import CUSTOMER, STAFF, issue_token
from bookings import services
from tests.bookings.api import booking, error, table_items
from tests.conftest import client_with
from tests.factories import flight_data, make_customer, make_flight


def world() -> dict:
    """Bob (the owner of the resources under test) with an order; Alice, another customer."""
    for customer_id in ("alice", "bob"):
        make_customer(customer_id)
    flight, other_flight = make_flight(), make_flight()
    order = services.order_place(customer_id="bob", **booking(flight))
    return {
        "order": order["order_id"],
        "flight": f"{flight['flight_number']}/{flight['flight_date']}",
        "move_to": booking(other_flight),
        "new_flight": flight_data(),
    }


# (method, path, body) for each endpoint, on Bob's resources; "owner" is who the call acts for.
CUSTOMER_ENDPOINTS = {
    "register": ("carol", lambda w: ("POST", "/api/v1/customers", {"customer_id": "carol", "full_name": "Carol"})),
    "read customer": ("bob", lambda w: ("GET", "/api/v1/customers/bob", None)),
    "update customer": ("bob", lambda w: ("PATCH", "/api/v1/customers/bob", {"full_name": "Robert"})),
    "list orders": ("bob", lambda w: ("GET", "/api/v1/customers/bob/orders", None)),
    "place order": ("bob", lambda w: ("POST", "/api/v1/customers/bob/orders", w["move_to"])),
    "read order": ("bob", lambda w: ("GET", f"/api/v1/customers/bob/orders/{w['order']}", None)),
    "change order": ("bob", lambda w: ("PATCH", f"/api/v1/customers/bob/orders/{w['order']}", w["move_to"])),
    "cancel order": ("bob", lambda w: ("POST", f"/api/v1/customers/bob/orders/{w['order']}/cancel", None)),
}
STAFF_ENDPOINTS = {
    "create flight": lambda w: ("POST", "/api/v1/flights", w["new_flight"]),
    "read flight": lambda w: ("GET", f"/api/v1/flights/{w['flight']}", None),
    "reschedule flight": lambda w: ("PATCH", f"/api/v1/flights/{w['flight']}", {"departure_time": "23:00"}),
    "cancel flight": lambda w: ("POST", f"/api/v1/flights/{w['flight']}/cancel", None),
}
CUSTOMER_REQUESTS = {name: request for name, (_, request) in CUSTOMER_ENDPOINTS.items()}
ALL_ENDPOINTS = {**CUSTOMER_REQUESTS, **STAFF_ENDPOINTS}


def call(token: str | None, request):
    method, path, body = request
    return client_with(token).generic(method, path, "" if body is None else json.dumps(body), content_type="application/json")


def refusals(token: str | None, endpoints) -> dict:
    """Call every endpoint with `token` on one world; {endpoint: response} and the table before and after.
    Refused calls change nothing, so they can share the world."""
    w = world()
    before = table_items()
    responses = {name: call(token, endpoint(w)) for name, endpoint in endpoints.items()}
    return {"responses": responses, "order": w["order"], "before": before, "after": table_items()}


def staff_token() -> str:
    return issue_token(role=STAFF)


def customer_token(customer_id: str) -> str:
    return issue_token(role=CUSTOMER, customer_id=customer_id)


def expired_token() -> str:
    issued = time.time() - settings.TOKEN_TTL_SECONDS - 60
    with mock.patch("django.core.signing.time.time", return_value=issued):
        return staff_token()


def tampered_token() -> str:
    """Alice's token with its payload swapped for a staff one, signature kept."""
    alice = customer_token("alice")
    forged_payload = signing.dumps({"role": STAFF, "cid": None}, key="another-secret-of-at-least-32-chars!", salt=auth._SALT, compress=True)
    return forged_payload.rsplit(":", 1)[0] + ":" + alice.rsplit(":", 1)[1]


BAD_CREDENTIALS = {
    "no header": None,
    "garbage token": "not-a-token",
    "expired staff token": expired_token,
    "tampered token": tampered_token,
    "staff token signed with another secret": lambda: signing.dumps(
        {"role": STAFF, "cid": None}, key="another-secret-of-at-least-32-chars!", salt=auth._SALT, compress=True
    ),
    "signed payload with an unknown role": lambda: signing.dumps({"role": "admin"}, key=settings.TOKEN_SECRET, salt=auth._SALT),
    "token signed for another purpose": lambda: signing.dumps({"role": STAFF}, key=settings.TOKEN_SECRET, salt="django.core.signing"),
}


def resolve(credential) -> str | None:
    return credential() if callable(credential) else credential


@pytest.mark.parametrize("credential", BAD_CREDENTIALS.values(), ids=BAD_CREDENTIALS.keys())
def test_every_endpoint_without_a_valid_token_is_401_and_writes_nothing(credential, aws_env):
    seen = refusals(resolve(credential), ALL_ENDPOINTS)
    assert {name: r.status_code for name, r in seen["responses"].items()} == dict.fromkeys(ALL_ENDPOINTS, 401)
    for r in seen["responses"].values():
        assert error(r)["code"] in ("not_authenticated", "authentication_failed")
        assert r["WWW-Authenticate"] == "Bearer"
    assert seen["after"] == seen["before"]


@pytest.mark.parametrize("header", ["Token abc", "Bearer", "Bearer a b", "Basic YWxpY2U6c2VjcmV0"])
def test_a_malformed_authorization_header_is_401(header, anonymous):
    world()
    r = anonymous.get("/api/v1/customers/bob", HTTP_AUTHORIZATION=header)
    assert r.status_code == 401


def test_a_customer_acting_for_another_customer_is_refused_without_seeing_data(aws_env):
    seen = refusals(customer_token("alice"), CUSTOMER_REQUESTS)
    for name in CUSTOMER_REQUESTS:
        r = seen["responses"][name]
        assert r.status_code in (403, 404), name
        assert error(r)["code"] in ("permission_denied", "not_found"), name
        assert seen["order"] not in r.content.decode(), name
        assert b"Bob" not in r.content, name
    assert seen["after"] == seen["before"]


def test_a_customer_on_a_staff_endpoint_is_403_and_writes_nothing(aws_env):
    seen = refusals(customer_token("bob"), STAFF_ENDPOINTS)
    assert {name: r.status_code for name, r in seen["responses"].items()} == dict.fromkeys(STAFF_ENDPOINTS, 403)
    assert seen["after"] == seen["before"]


@pytest.mark.parametrize("owner,endpoint", CUSTOMER_ENDPOINTS.values(), ids=CUSTOMER_ENDPOINTS.keys())
def test_a_customer_may_act_for_themselves(owner, endpoint, aws_env):
    r = call(customer_token(owner), endpoint(world()))
    assert 200 <= r.status_code < 300, r.json()


@pytest.mark.parametrize("endpoint", ALL_ENDPOINTS.values(), ids=ALL_ENDPOINTS.keys())
def test_staff_may_call_every_endpoint(endpoint, aws_env):
    r = call(staff_token(), endpoint(world()))
    assert 200 <= r.status_code < 300, r.json()
