"""The command API's throttles: per token identity and per client address, 429 in the one error
shape with Retry-After, rates from settings (off in the rest of the suite, set here)."""

from datetime import timedelta

import pytest
from django.core.cache import cache
from django.utils import timezone

from airticket.auth import CUSTOMER, STAFF, issue_token
from tests.bookings.api import error
from tests.conftest import client_with

pytestmark = pytest.mark.django_db
RATES = {"customer": "3/minute", "staff": "5/minute", "address": "8/minute"}


@pytest.fixture(autouse=True)
def rates(settings, time_machine):
    settings.COMMAND_THROTTLE_RATES = RATES
    time_machine.move_to(timezone.now(), tick=False)  # Retry-After is computed from the clock
    cache.clear()
    yield
    cache.clear()


def customer(customer_id: str, address: str = "198.51.100.1"):
    client = client_with(issue_token(role=CUSTOMER, customer_id=customer_id))
    client.defaults["REMOTE_ADDR"] = address
    return client


def spend(client, path: str, count: int) -> list[int]:
    return [client.get(path).status_code for _ in range(count)]


def test_a_customer_past_its_rate_gets_429_in_the_error_shape_with_retry_after(aws_env, time_machine):
    ann = customer("ann")
    assert spend(ann, "/api/v1/customers/ann", 3) == [404, 404, 404]  # unknown customer; the calls count

    refused = ann.get("/api/v1/customers/ann")
    assert refused.status_code == 429
    assert refused["Content-Type"] == "application/json"
    assert error(refused)["code"] == "throttled" and error(refused)["message"]
    assert refused["Retry-After"] == "60"

    time_machine.shift(timedelta(seconds=59))
    assert ann.get("/api/v1/customers/ann").status_code == 429
    time_machine.shift(timedelta(seconds=2))
    assert ann.get("/api/v1/customers/ann").status_code == 404


def test_one_customer_spending_its_rate_does_not_slow_another_from_the_same_address(aws_env):
    spend(customer("ann"), "/api/v1/customers/ann", 4)
    assert customer("bob").get("/api/v1/customers/bob").status_code == 404


def test_every_token_of_a_customer_shares_its_rate(aws_env):
    spend(customer("ann"), "/api/v1/customers/ann", 3)
    assert customer("ann", address="203.0.113.5").get("/api/v1/customers/ann").status_code == 429


def test_a_staff_token_has_the_staff_rate(aws_env):
    staff = client_with(issue_token(role=STAFF, staff_id="ingestor"))
    assert spend(staff, "/api/v1/customers/ann", 6) == [404] * 5 + [429]


def test_an_address_is_throttled_across_tokens_and_before_a_token_is_checked(aws_env):
    forged = [client_with("forged-token").get("/api/v1/customers/ann", REMOTE_ADDR="192.0.2.9").status_code for _ in range(8)]
    assert forged == [401] * 8
    refused = customer("ann", address="192.0.2.9").get("/api/v1/customers/ann")
    assert (refused.status_code, error(refused)["code"]) == (429, "throttled")
    assert customer("ann", address="192.0.2.10").get("/api/v1/customers/ann").status_code == 404


def test_a_client_cannot_dodge_the_address_rate_with_its_own_forwarded_for_header(aws_env):
    statuses = [
        client_with(None).get("/api/v1/customers/ann", REMOTE_ADDR="192.0.2.9", HTTP_X_FORWARDED_FOR=f"10.0.0.{n}").status_code
        for n in range(9)
    ]
    assert statuses == [401] * 8 + [429]


def test_the_staff_query_api_is_not_throttled(aws_env):
    staff = client_with(issue_token(role=STAFF, staff_id="ops"))
    assert spend(staff, "/api/v1/query/customers", 10) == [200] * 10


def test_with_the_rates_off_nothing_is_throttled(aws_env, settings):
    settings.COMMAND_THROTTLE_RATES = {"customer": None, "staff": None, "address": None}
    assert set(spend(customer("ann"), "/api/v1/customers/ann", 12)) == {404}


def test_the_schema_documents_429_with_retry_after_on_every_command_operation_and_no_query_one(staff):
    schema = staff.get("/api/v1/schema", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()
    documented = {
        (path, method): "429" in operation["responses"]
        for path, operations in schema["paths"].items()
        for method, operation in operations.items()
        if isinstance(operation, dict) and "responses" in operation
    }
    command = {key for key in documented if not key[0].startswith(("/api/v1/query", "/api/v1/notifications", "/api/v1/schema"))}
    assert command and all(documented[key] for key in command)
    assert not any(documented[key] for key in set(documented) - command)
    response = schema["paths"]["/api/v1/customers"]["post"]["responses"]["429"]
    assert response["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Error"}
    assert response["headers"]["Retry-After"]["schema"]["type"] == "integer"
