"""HTTP and DynamoDB helpers for the command-side tests: call the API as a client would, then
look at what DynamoDB really holds (through the one repository module)."""

from django.conf import settings

from airticket import aws
from bookings import repository as repo

CUSTOMERS = "/api/v1/customers"
FLIGHTS = "/api/v1/flights"


def customer_url(customer_id: str) -> str:
    return f"{CUSTOMERS}/{customer_id}"


def orders_url(customer_id: str) -> str:
    return f"{customer_url(customer_id)}/orders"


def order_url(customer_id: str, order_id: str) -> str:
    return f"{orders_url(customer_id)}/{order_id}"


def cancel_order_url(customer_id: str, order_id: str) -> str:
    return f"{order_url(customer_id, order_id)}/cancel"


def flight_url(flight: dict) -> str:
    return f"{FLIGHTS}/{flight['flight_number']}/{flight['flight_date']}"


def cancel_flight_url(flight: dict) -> str:
    return f"{flight_url(flight)}/cancel"


def booking(flight: dict) -> dict:
    """The body that books `flight`."""
    return {"flight_number": flight["flight_number"], "flight_date": flight["flight_date"]}


def post(client, url: str, body=None, **headers):
    return client.post(url, body, format="json", **_headers(headers))


def patch(client, url: str, body, **headers):
    return client.patch(url, body, format="json", **_headers(headers))


def _headers(headers: dict) -> dict:
    """`if_match=3` -> HTTP_IF_MATCH="3", `idempotency_key="k"` -> HTTP_IDEMPOTENCY_KEY="k"."""
    return {f"HTTP_{name.upper()}": str(value) for name, value in headers.items()}


def place_order(client, customer_id: str, flight: dict, **headers):
    return post(client, orders_url(customer_id), booking(flight), **headers)


def error(response) -> dict:
    body = response.json()
    assert set(body) == {"error"}, body
    assert set(body["error"]) == {"code", "message", "fields"}, body
    return body["error"]


# --- what DynamoDB holds ---------------------------------------------------------------


def table_items() -> list[dict]:
    """Every item in the table, in a stable order: compare two calls to see that nothing was written."""
    items, kwargs = [], {"TableName": settings.DYNAMODB_TABLE, "ConsistentRead": True}
    while True:
        page = aws.dynamodb().scan(**kwargs)
        items.extend(repo.unmarshal(i) for i in page.get("Items", []))
        if "LastEvaluatedKey" not in page:
            return sorted(items, key=lambda i: (i["PK"], i["SK"]))
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def stored_flight(flight: dict) -> dict:
    return repo.get(repo.flight_key(flight["flight_number"], flight["flight_date"]))


def stored_customer(customer_id: str) -> dict | None:
    return repo.get(repo.customer_key(customer_id))


def stored_orders(customer_id: str) -> list[dict]:
    return [i for i in repo.query_partition(f"CUSTOMER#{customer_id}", "ORDER#")]


def seats_booked(flight: dict) -> int:
    return stored_flight(flight)["seats_booked"]
