"""The OpenAPI document states what the server does: its errors, its types, its bounds."""

import io
import re
from datetime import timedelta

import pytest
import yaml
from django.core.management import call_command
from django.utils import timezone

from tests.bookings.api import error, flight_url, post

pytestmark = pytest.mark.django_db


@pytest.fixture(scope="module")
def schema(tmp_path_factory) -> dict:
    target = tmp_path_factory.mktemp("schema") / "schema.yml"
    call_command("spectacular", "--fail-on-warn", "--file", str(target), stdout=io.StringIO(), stderr=io.StringIO())
    return yaml.safe_load(target.read_text())


def operations(schema: dict):
    for path, items in schema["paths"].items():
        for method, operation in items.items():
            yield f"{method.upper()} {path}", operation


def test_every_operation_documents_its_errors_in_the_one_error_shape(schema):
    for name, operation in operations(schema):
        errors = {status: response for status, response in operation["responses"].items() if status >= "400"}
        assert {"401", "403", "406"} <= set(errors), name
        for status, response in errors.items():
            assert response["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Error"}, (name, status)
    assert schema["components"]["schemas"]["Error"]["properties"]["error"]["required"] == ["code", "message", "fields"]


def test_each_operation_documents_the_errors_its_inputs_can_cause(schema):
    paths = schema["paths"]
    order = paths["/api/v1/customers/{customer_id}/orders/{order_id}"]["patch"]["responses"]
    assert {"400", "404", "409", "412", "413", "415"} <= set(order)
    assert "422" not in order  # no Idempotency-Key there
    register = paths["/api/v1/customers"]["post"]["responses"]
    assert {"400", "409", "413", "415", "422"} <= set(register)
    assert "404" not in register and "412" not in register
    assert "415" not in paths["/api/v1/query/customers"]["get"]["responses"]


def test_no_command_operation_answers_a_free_form_object(schema):
    for name, operation in operations(schema):
        for status, response in operation["responses"].items():
            for media in response.get("content", {}).values():
                assert "$ref" in media["schema"] or media["schema"].get("type") == "array", (name, status, media)
    flight = schema["components"]["schemas"]["FlightRecord"]
    assert {"capacity", "seats_booked", "status", "version"} <= set(flight["required"])


def test_request_bodies_reject_unknown_fields_and_carry_the_server_patterns(schema):
    components = schema["components"]["schemas"]
    for name in ("CustomerCreate", "FlightCreate", "OrderPlace", "FlightReschedule", "WeatherAlertInput", "NotifyInput"):
        assert components[name]["additionalProperties"] is False, name
    customer = components["CustomerCreate"]["properties"]
    assert customer["customer_id"]["pattern"] == "^(?:[A-Za-z0-9_-]{1,64})$"
    assert customer["mobile"]["oneOf"][0]["pattern"] == r"^(?:\+?[0-9 ()-]{3,32})$"
    assert components["FlightReschedule"]["minProperties"] == 1
    assert set(components["OrderChange"]["required"]) == {"flight_number", "flight_date"}
    flight = components["FlightCreate"]["properties"]
    assert flight["flight_number"]["pattern"] == "^(?:[A-Z0-9]{2}[0-9]{1,4}[A-Z]?)$"
    assert flight["flight_date"]["format"] == "date"
    assert flight["departure_time"]["pattern"] == "^(?:([01][0-9]|2[0-3]):[0-5][0-9])$"
    assert flight["origin"] == flight["destination"] == {"$ref": "#/components/schemas/IataCode"}
    assert {"PEK", "PVG", "SHA"} <= set(components["IataCode"]["enum"])
    assert "ZZZ" not in components["IataCode"]["enum"]


def test_path_headers_and_pages_carry_their_bounds(schema):
    detail = schema["paths"]["/api/v1/customers/{customer_id}/orders/{order_id}"]["patch"]
    parameters = {p["name"]: p for p in detail["parameters"]}
    assert parameters["order_id"]["schema"]["pattern"] == "^(?:[0-9a-f]{32})$"
    assert parameters["If-Match"]["in"] == "header" and "pattern" in parameters["If-Match"]["schema"]
    assert "ETag" in detail["responses"]["200"]["headers"]
    register = {p["name"]: p for p in schema["paths"]["/api/v1/customers"]["post"]["parameters"]}
    assert register["Idempotency-Key"]["schema"]["pattern"] == "^[!-~]{1,255}$"
    passengers = {p["name"]: p["schema"] for p in schema["paths"]["/api/v1/query/passengers"]["get"]["parameters"]}
    assert passengers["page"] == {"type": "integer", "minimum": 1, "maximum": 1_000_000}
    assert passengers["page_size"] == {"type": "integer", "minimum": 1, "maximum": 500}


def test_a_missing_weather_alert_is_not_found(staff):
    response = staff.post("/api/v1/query/weather-alerts/987654/expire")
    assert response.status_code == 404
    assert error(response)["code"] == "not_found"
    assert error(response)["message"]


def test_an_unknown_format_is_not_acceptable_with_a_message(staff):
    response = staff.get("/api/v1/query/customers?format=xml")
    assert response.status_code == 406
    assert error(response)["code"] == "not_acceptable"
    assert "'xml'" in error(response)["message"]


def test_a_body_over_the_upload_limit_is_413(staff, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 100
    response = post(staff, "/api/v1/customers", {"customer_id": "c1", "full_name": "x" * 200})
    assert response.status_code == 413
    assert error(response)["code"] == "payload_too_large"


def test_a_flight_record_answer_matches_its_documented_type(staff, schema):
    flight = {"flight_number": "MU5101", "flight_date": (timezone.now().date() + timedelta(days=30)).isoformat()}
    body = {**flight, "origin": "PEK", "destination": "SHA", "departure_time": "08:00", "arrival_time": "10:00", "capacity": 3}
    created = post(staff, "/api/v1/flights", body)
    assert created.status_code == 201, created.json()
    fetched = staff.get(flight_url(flight))
    assert fetched["ETag"] == '"1"'
    required = set(schema["components"]["schemas"]["FlightRecord"]["required"])
    assert required <= set(fetched.json())


@pytest.mark.parametrize(
    "name",
    ["ring\x07bell", "esc\x1b[31m", "line\r\nbreak", "\u202egnp.exe", "\u200b", " \u200b ", "\x85next"],
    ids=["BEL", "ESC", "CRLF", "RTL-override", "zero-width", "blank-and-zero-width", "C1-NEL"],
)
def test_a_name_with_control_direction_or_only_invisible_characters_is_refused(as_customer, name):
    client = as_customer("c-names")
    response = post(client, "/api/v1/customers", {"customer_id": "c-names", "full_name": name})
    assert response.status_code == 400
    assert set(error(response)["fields"]) == {"full_name"}
    assert client.get("/api/v1/customers/c-names").status_code == 404  # nothing written


def test_names_in_any_script_with_joiners_are_still_welcome(as_customer):
    client = as_customer("c-names")
    response = post(client, "/api/v1/customers", {"customer_id": "c-names", "full_name": "Zoë Ünal-王伟 \u0928\u094d\u200d\u092f"})
    assert response.status_code == 201, response.json()


def test_the_passenger_counts_document_the_selection_they_take_and_its_400(schema):
    counts = schema["paths"]["/api/v1/query/passengers/counts"]["get"]
    names = {p["name"] for p in counts["parameters"] if p["in"] == "query"}
    assert {"flight_number", "flight_date", "city", "date_from", "date_to", "weather", "status"} <= names
    assert "400" in counts["responses"]


def test_each_if_match_takes_the_etag_its_operation_answers(schema):
    def header(path, method, name, status=None):
        operation = schema["paths"][path][method]
        if status:
            return operation["responses"][status]["headers"][name]["schema"]["pattern"]
        return next(p for p in operation["parameters"] if p["name"] == name)["schema"]["pattern"]

    customer, order = "/api/v1/customers/{customer_id}", "/api/v1/customers/{customer_id}/orders/{order_id}"
    customer_tag, order_tag = '"3.5f0c1d2e3f405162"', '"3"'
    assert re.fullmatch(header(customer, "get", "ETag", "200"), customer_tag)
    assert re.fullmatch(header(customer, "patch", "If-Match"), customer_tag)
    assert re.fullmatch(header(order, "get", "ETag", "200"), order_tag)
    assert re.fullmatch(header(order, "patch", "If-Match"), order_tag)
    # A customer's tag is no order's or flight's: those refuse it (412), so their schema does.
    assert not re.fullmatch(header(order, "patch", "If-Match"), customer_tag)
    assert not re.fullmatch(header("/api/v1/flights/{flight_number}/{flight_date}", "patch", "If-Match"), customer_tag)


def test_links_lead_from_what_was_created_to_what_can_be_done_with_it(schema):
    def links(path):
        responses = schema["paths"][path]["post"]["responses"]
        return {link["operationId"]: link["parameters"] for link in responses["201"]["links"].values()}

    register = links("/api/v1/customers")
    assert register["api_v1_customers_orders_create"] == {"customer_id": "$response.body#/customer_id"}
    order = links("/api/v1/customers/{customer_id}/orders")
    assert order["api_v1_customers_orders_cancel_create"] == {
        "customer_id": "$response.body#/customer_id",
        "order_id": "$response.body#/order_id",
    }
    assert order["api_v1_customers_orders_partial_update"]["header.If-Match"] == "$response.header.ETag"
    assert set(links("/api/v1/flights")) == {"api_v1_flights_retrieve", "api_v1_flights_partial_update", "api_v1_flights_cancel_create"}
