"""A typed Python client generated from the live OpenAPI document (openapi-python-client, offline)
runs the README's tour: a customer registers, staff create flights, the customer books, changes
and cancels, staff query the passengers. A document from which no client can be generated, or a
client whose typed answers do not parse, is a contract bug.

The client talks to the WSGI app in-process through httpx's WSGITransport."""

import importlib
import json
import subprocess
import sys
import uuid
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from django.core.wsgi import get_wsgi_application
from django.test import Client

from airticket.auth import CUSTOMER, STAFF, issue_token
from bookings import services
from tests.cdc.test_stream import sync

pytestmark = pytest.mark.django_db(transaction=True)  # the poller commits its own transactions

PACKAGE = "airticket_client"


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    """The client package, generated from the document the server serves."""
    root = tmp_path_factory.mktemp("client")
    served = Client().get("/api/v1/schema?format=json", HTTP_AUTHORIZATION=f"Bearer {issue_token(role=STAFF)}")
    assert served.status_code == 200
    (root / "openapi.json").write_text(json.dumps(served.json()))
    # No post hooks: the generator's default runs ruff over the output, which the test needs not.
    (root / "config.yaml").write_text(f"post_hooks: []\nproject_name_override: {PACKAGE}\npackage_name_override: {PACKAGE}\n")
    generator = Path(sys.executable).parent / "openapi-python-client"
    command = [str(generator), "generate", "--path", "openapi.json", "--config", "config.yaml", "--meta", "none"]
    result = subprocess.run(
        [*command, "--output-path", PACKAGE, "--fail-on-warning"], cwd=root, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stdout + result.stderr
    sys.path.insert(0, str(root))
    try:
        yield importlib.import_module(PACKAGE)
    finally:
        sys.path.remove(str(root))
        for name in [name for name in sys.modules if name.split(".")[0] == PACKAGE]:
            del sys.modules[name]


def client_for(package, token: str):
    transport = httpx.WSGITransport(app=get_wsgi_application())
    return package.AuthenticatedClient(base_url="http://testserver", token=token, httpx_args={"transport": transport})


def operation(name: str):
    return importlib.import_module(f"{PACKAGE}.api.api.{name}")


def models():
    return importlib.import_module(f"{PACKAGE}.models")


def test_the_readmes_tour_runs_through_a_client_generated_from_the_schema(generated, aws_env):
    m = models()
    staff = client_for(generated, issue_token(role=STAFF))
    alice = client_for(generated, issue_token(role=CUSTOMER, customer_id="alice"))
    # Tomorrow where the flights leave (they are dated by their origin's calendar).
    day = services.origin_today(origin="SHA") + timedelta(days=1)

    registered = operation("api_v1_customers_create").sync(
        client=alice, body=m.CustomerCreate(customer_id="alice", full_name="Alice Liddell", email="alice@example.com")
    )
    assert isinstance(registered, m.CustomerRecord), registered
    assert (registered.customer_id, registered.version) == ("alice", 1)

    flights = {}
    for number, origin, destination in (("MU5159", "SHA", "PEK"), ("MU5161", "SHA", "PEK")):
        body = m.FlightCreate(
            flight_number=number,
            flight_date=day,
            origin=m.IataCode(origin),
            destination=m.IataCode(destination),
            departure_time="08:00",
            arrival_time="10:20",
            capacity=180,
        )
        flights[number] = operation("api_v1_flights_create").sync(client=staff, body=body, idempotency_key=str(uuid.uuid4()))
        assert isinstance(flights[number], m.FlightRecord), flights[number]

    booked = operation("api_v1_customers_orders_create").sync_detailed(
        "alice", client=alice, body=m.OrderPlace(flight_number="MU5159", flight_date=day), idempotency_key=str(uuid.uuid4())
    )
    assert booked.status_code == 201
    order = booked.parsed
    assert isinstance(order, m.OrderRecord) and order.status == m.OrderRecordStatusEnum.ORDERED
    assert booked.headers["ETag"] == f'"{order.version}"'

    changed = operation("api_v1_customers_orders_partial_update").sync(
        "alice", order.order_id, client=alice, body=m.OrderChange(flight_number="MU5161", flight_date=day), if_match=booked.headers["ETag"]
    )
    assert isinstance(changed, m.OrderRecord), changed
    assert (changed.flight_number, changed.version) == ("MU5161", order.version + 1)

    # A stale If-Match is refused in the one error shape, typed as such.
    stale = operation("api_v1_customers_orders_partial_update").sync(
        "alice", order.order_id, client=alice, body=m.OrderChange(flight_number="MU5159", flight_date=day), if_match=booked.headers["ETag"]
    )
    assert isinstance(stale, m.Error) and stale.error.code == "stale_version"

    sync()  # the command side's changes through the stream into the read model
    passengers = operation("api_v1_query_passengers_list").sync(client=staff, flight_number="MU5161", flight_date=day)
    assert [(p.order_id, p.status) for p in passengers.results] == [(order.order_id, m.PassengerOutputStatusEnum.ORDERED)]
    in_shanghai = operation("api_v1_query_passengers_list").sync(client=staff, city="Shanghai", date_from=day, date_to=day)
    assert in_shanghai.count == 1

    cancelled = operation("api_v1_customers_orders_cancel_create").sync("alice", order.order_id, client=alice)
    assert isinstance(cancelled, m.OrderRecord) and cancelled.status == m.OrderRecordStatusEnum.CANCELLED
    listed = operation("customers_orders_list").sync("alice", client=alice)
    assert [(o.order_id, o.status) for o in listed.results] == [(order.order_id, m.OrderRecordStatusEnum.CANCELLED)]

    flight = operation("api_v1_flights_cancel_create").sync("MU5159", day, client=staff)
    assert isinstance(flight, m.FlightRecord) and flight.status == m.FlightRecordStatusEnum.CANCELLED
