"""schemathesis checks the server against its own OpenAPI document, in-process through the WSGI
app (no server), with a staff and a customer token: every operation alone (examples, coverage
and fuzzing phases), and linked calls (register -> book -> read, change, cancel; create a flight
-> read, reschedule, cancel) through the document's OpenAPI links. Every check is on.

Generation is deterministic (the same cases every run, so a failure reproduces and the time is
stable) and bounded per operation by FUZZ_EXAMPLES and STATEFUL_STEPS.
"""

import contextlib
import tempfile
from datetime import timedelta
from pathlib import Path

import pytest
import schemathesis
from django.core import signals
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from hypothesis import HealthCheck, settings
from hypothesis.configuration import set_hypothesis_home_dir
from schemathesis.config import SchemathesisConfig

from airticket.auth import CUSTOMER, STAFF, issue_token
from airticket.errors import Conflict
from airticket.provisioning import ensure_table
from bookings import services
from bookings.serializers import CUSTOMER_ID
from tests.factories import make_customer, make_flight

# Hypothesis keeps caches (its Unicode tables, constants found in the code) in `.hypothesis/`
# under the working directory: kept out of the work tree, where packaging could pick them up.
set_hypothesis_home_dir(Path(tempfile.gettempdir()) / "airticket-hypothesis")

FUZZ_EXAMPLES = 5
STATEFUL_STEPS = 6
STATEFUL_SCENARIOS = 10
FUZZ_CUSTOMER = "fuzz-customer"

pytestmark = pytest.mark.django_db

CONFIG = SchemathesisConfig.from_dict(
    {
        # No example database: generation is deterministic, and nothing is left in the work tree.
        "generation": {"deterministic": True, "max-examples": FUZZ_EXAMPLES, "database": "none"},
        "phases": {"stateful": {"max-steps": STATEFUL_STEPS}},
        "checks": {
            # Schema-valid requests whose answer depends on earlier requests, which JSON Schema
            # cannot state: an If-Match that names another version than the current one is a
            # documented 412, and an Idempotency-Key sent again with another body a documented
            # 422 (the generator repeats keys across cases). Every other refusal still fails.
            "positive_data_acceptance": {"expected-statuses": ["2xx", "401", "403", "404", "409", "412", "422", "429"]},
        },
        "operations": [
            # The coverage phase enumerates boundary values of every field; for a flight that
            # means each of the ~7,900 known IATA codes in origin, destination and transfers,
            # and it does not finish in ten minutes. The fuzzing phase still covers the
            # operation (valid and invalid bodies), and the stateful phase creates flights.
            {"include-path": "/api/v1/flights", "include-method": "POST", "phases": {"coverage": {"enabled": False}}},
            # The query side refuses combinations of valid fields that JSON Schema cannot state:
            # exactly one selection per request (a flight, a city or the weather), an alert
            # names a city or an airport and ends after it starts. Such a request is a
            # documented 400 naming the fields; every other check runs on these operations.
            *(
                {"include-path": path, "include-method": method, "checks": {"positive_data_acceptance": {"enabled": False}}}
                for path, method in (
                    ("/api/v1/query/passengers", "GET"),
                    ("/api/v1/query/passengers/counts", "GET"),
                    ("/api/v1/notifications", "POST"),
                    ("/api/v1/query/weather-alerts", "POST"),
                )
            ),
        ],
    }
)
# The document as the server serves it, fetched from the app itself.
schema = schemathesis.openapi.from_wsgi(
    "/api/v1/schema?format=json",
    get_wsgi_application(),
    config=CONFIG,
    headers={"Authorization": f"Bearer {issue_token(role=STAFF)}"},
)
fuzz = settings(deadline=None, suppress_health_check=list(HealthCheck), database=None)


@pytest.fixture
def world(moto_server) -> dict:
    """The fuzz customer and a new flight it can book, so the operations that need them reach
    their success path, not only 404. The command side is not reset between operations (a
    reset costs seconds each): what one operation's cases leave is fair input for the next."""
    ensure_table()
    with contextlib.suppress(Conflict):  # registered by an earlier operation's setup
        make_customer(FUZZ_CUSTOMER)
    # schemathesis calls the WSGI app directly, so Django's request signals run: their
    # close_old_connections would close the test's open transaction mid-test (Django's own
    # test client disconnects them the same way).
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    yield make_flight()
    signals.request_started.connect(close_old_connections)
    signals.request_finished.connect(close_old_connections)


def valid_where_needed(case, flight: dict, token_customer: str | None) -> None:
    """Rules JSON Schema cannot state, applied to the cases generated as valid (the invalid
    ones stay as generated): a flight is dated from its origin's today to the horizon, and its
    route visits each airport once; a booking names a flight that exists; a customer token acts
    for its own customer only."""
    # A well-formed id is the token's own (another's is 403, which would leave the operation
    # untested); a malformed one stays, to be refused.
    if token_customer and CUSTOMER_ID.fullmatch(str((case.path_parameters or {}).get("customer_id", ""))):
        case.path_parameters["customer_id"] = token_customer
    if not case.meta or not case.meta.generation.mode.is_positive or not isinstance(case.body, dict):
        return
    name = f"{case.method.upper()} {case.operation.path}"
    if name == "POST /api/v1/customers" and token_customer:
        case.body["customer_id"] = token_customer
    elif name in ("POST /api/v1/customers/{customer_id}/orders", "PATCH /api/v1/customers/{customer_id}/orders/{order_id}"):
        case.body.update(flight_number=flight["flight_number"], flight_date=flight["flight_date"])
    elif name == "POST /api/v1/flights" and {"origin", "destination", "flight_date"} <= set(case.body):
        body = case.body
        if body["origin"] == body["destination"]:
            body["destination"] = "PEK" if body["origin"] != "PEK" else "PVG"
        body["transfers"] = [code for code in dict.fromkeys(body.get("transfers", [])) if code not in (body["origin"], body["destination"])]
        body["flight_date"] = (services.origin_today(origin=body["origin"]) + timedelta(days=30)).isoformat()


def call_and_validate(case, token: str, flight: dict, token_customer: str | None = None) -> None:
    valid_where_needed(case, flight, token_customer)
    case.call_and_validate(headers={"Authorization": f"Bearer {token}"})


@schema.parametrize()
@fuzz
def test_every_operation_keeps_the_contract_for_staff(world, case):
    call_and_validate(case, issue_token(role=STAFF), world)


@schema.parametrize()
@fuzz
def test_every_operation_keeps_the_contract_for_a_customer(world, case):
    call_and_validate(case, issue_token(role=CUSTOMER, customer_id=FUZZ_CUSTOMER), world, FUZZ_CUSTOMER)


# The linked calls, as staff: register -> book -> read, change, cancel; create a flight -> read,
# reschedule, cancel (the links of the command side's document).
# (The document cut to those paths: `schema.include` does not filter a schema whose config
# has per-operation entries.)
COMMAND_PATHS = {
    path: item for path, item in schema.raw_schema["paths"].items() if path.startswith(("/api/v1/customers", "/api/v1/flights"))
}
COMMAND_SIDE = schemathesis.openapi.from_dict({**schema.raw_schema, "paths": COMMAND_PATHS}, config=CONFIG)
COMMAND_SIDE.app = schema.app


class LinkedCalls(COMMAND_SIDE.as_state_machine()):
    flight: dict = {}
    token = ""
    answered: set = set()  # (operation, status) seen, to show the links were followed

    def after_call(self, response, case):
        self.answered.add((f"{case.method.upper()} {case.operation.path}", response.status_code))

    def before_call(self, case):
        valid_where_needed(case, self.flight, None)

    def get_call_kwargs(self, case):
        return {"headers": {"Authorization": f"Bearer {self.token}"}}

    def validate_response(self, response, case, additional_checks=None, **kwargs):
        # The headers named as the request's own, as `call_and_validate` does: the checks then
        # know the token is the caller's (and probe the operation without it).
        case.validate_response(response, additional_checks=additional_checks, headers=kwargs["headers"], transport_kwargs=kwargs)


def test_linked_calls_keep_the_contract(world):
    LinkedCalls.flight, LinkedCalls.token = world, issue_token(role=STAFF)
    LinkedCalls.run(settings=settings(fuzz, max_examples=STATEFUL_SCENARIOS, stateful_step_count=STATEFUL_STEPS, derandomize=True))
    # The chains ran to their ends: a booking placed for a registered customer, then cancelled;
    # a flight created, then read, rescheduled or cancelled through its link.
    followed = {
        ("POST /api/v1/customers", 201),
        ("POST /api/v1/customers/{customer_id}/orders", 201),
        ("POST /api/v1/customers/{customer_id}/orders/{order_id}/cancel", 200),
        ("POST /api/v1/flights", 201),
    }
    assert not followed - LinkedCalls.answered, sorted(followed - LinkedCalls.answered)
    assert any(name.partition(" ")[2].startswith("/api/v1/flights/") for name, status in LinkedCalls.answered if status == 200)
