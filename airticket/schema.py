"""The OpenAPI contract beyond what drf-spectacular infers from views: one error shape and the
errors each operation can answer, strict request bodies, and bounded pages.

A postprocessing hook rather than an `extend_schema` on every view: the rules are the server's
(which views validate input, check `If-Match`, claim an `Idempotency-Key`), so they are stated
once here and cannot drift view by view. `tests/test_contract.py` checks them, and schemathesis
checks the server against them.
"""

from django.urls import Resolver404, resolve

ERROR_SCHEMA = {
    "type": "object",
    "description": "The one error shape of the API.",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message", "fields"],
            "properties": {
                "code": {"type": "string", "description": "machine-readable, e.g. not_found, stale_version"},
                "message": {"type": "string", "minLength": 1},
                "fields": {
                    "type": "object",
                    "description": "the invalid input by name (dotted for nested fields), with why",
                    "additionalProperties": {"type": "string"},
                },
            },
        }
    },
}
ERROR_REF = {"$ref": "#/components/schemas/Error"}
RETRY_AFTER = {
    "description": "seconds to wait before the next request is accepted",
    "schema": {"type": "integer", "minimum": 0},
    "required": True,
}

REASONS = {
    "400": "invalid input: the fields say which and why",
    "401": "no bearer token, or one that is invalid or expired",
    "403": "the token may not do this (a customer token on a staff operation or another customer)",
    "404": "no such item (or a page past the last one)",
    "406": "a format or Accept the API does not offer (it speaks JSON)",
    "409": "a business rule refused it (exists, full, cancelled, departed, busy, ...)",
    "412": "If-Match names another version than the current one",
    "413": "the request body is larger than the server accepts",
    "415": "the body is not application/json",
    "422": "the Idempotency-Key was used with a different request",
    "429": "too many requests from this token or address; retry after Retry-After seconds",
}


def document_the_contract(result, generator, request, public):
    result.setdefault("components", {}).setdefault("schemas", {})["Error"] = ERROR_SCHEMA
    for path, operations in result.get("paths", {}).items():
        throttled = _is_throttled(path)
        for operation in operations.values():
            if isinstance(operation, dict) and "responses" in operation:
                _document_errors(operation, throttled=throttled)
                _bound_pages(operation)
                _strict_body(operation, result["components"]["schemas"])
                _pattern_path(operation)
    _link(result.get("paths", {}))
    return result


def _body(name: str) -> str:
    return f"$response.body#/{name}"


# OpenAPI links: where the ids an answer carries lead next, so a client (and schemathesis'
# stateful phase) can go register -> book -> read, change, cancel, and create a flight -> read,
# reschedule, cancel. {source: (status, {link: (target, parameters)})}.
_CUSTOMER = {"customer_id": _body("customer_id")}
_ORDER = {"customer_id": _body("customer_id"), "order_id": _body("order_id")}
_FLIGHT = {"flight_number": _body("flight_number"), "flight_date": _body("flight_date")}
_IF_MATCH = {"header.If-Match": "$response.header.ETag"}  # a change of what was just read
LINKS = {
    "api_v1_customers_create": (
        "201",
        {
            "GetCustomer": ("api_v1_customers_retrieve", _CUSTOMER),
            "UpdateCustomer": ("api_v1_customers_partial_update", _CUSTOMER | _IF_MATCH),
            "ListOrders": ("customers_orders_list", _CUSTOMER),
            "PlaceOrder": ("api_v1_customers_orders_create", _CUSTOMER),
        },
    ),
    "api_v1_customers_orders_create": (
        "201",
        {
            "GetOrder": ("api_v1_customers_orders_retrieve", _ORDER),
            "ChangeOrder": ("api_v1_customers_orders_partial_update", _ORDER | _IF_MATCH),
            "CancelOrder": ("api_v1_customers_orders_cancel_create", _ORDER),
        },
    ),
    "api_v1_flights_create": (
        "201",
        {
            "GetFlight": ("api_v1_flights_retrieve", _FLIGHT),
            "RescheduleFlight": ("api_v1_flights_partial_update", _FLIGHT | _IF_MATCH),
            "CancelFlight": ("api_v1_flights_cancel_create", _FLIGHT),
        },
    ),
}


def _link(paths: dict) -> None:
    operations = {op.get("operationId"): op for item in paths.values() for op in item.values() if isinstance(op, dict)}
    for source, (status, links) in LINKS.items():
        if source not in operations:
            continue  # a schema of one side only (e.g. the query stage's)
        response = operations[source]["responses"][status]
        response["links"] = {
            name: {"operationId": target, "parameters": parameters} for name, (target, parameters) in links.items() if target in operations
        }


def _is_throttled(path: str) -> bool:
    """Whether the view behind `path` has throttles (`airticket.throttles.CommandApi`); the
    path's `{name}` placeholders match the URL patterns' loose segments."""
    try:
        view = resolve(path).func
    except Resolver404:
        return False
    return bool(getattr(getattr(view, "cls", None), "throttle_classes", None))


def error_statuses(operation: dict, *, throttled: bool = False) -> list[str]:
    """The error statuses the server can answer for this operation."""
    parameters = {(p["in"], p["name"]) for p in operation.get("parameters", [])}
    has_body = "requestBody" in operation
    statuses = {"406"}
    if not any(requirement == {} for requirement in operation.get("security", [{}])):
        statuses |= {"401", "403"}
    if parameters or has_body:
        statuses.add("400")
    if any(location == "path" for location, _ in parameters) or ("query", "page") in parameters:
        statuses.add("404")  # no such item, or a page past the last
    if has_body:
        statuses |= {"413", "415"}
    if ("header", "If-Match") in parameters:
        statuses |= {"409", "412"}
    if ("header", "Idempotency-Key") in parameters:
        statuses |= {"409", "422"}
    if throttled:
        statuses.add("429")
    return sorted(statuses)


def _document_errors(operation: dict, *, throttled: bool) -> None:
    for status in error_statuses(operation, throttled=throttled):
        response = {"description": REASONS[status], "content": {"application/json": {"schema": ERROR_REF}}}
        if status == "429":
            response["headers"] = {"Retry-After": RETRY_AFTER}
        operation["responses"].setdefault(status, response)


def _bound_pages(operation: dict) -> None:
    """`page` and `page_size` with the bounds the query pagination enforces."""
    from admin_portal.apis import MAX_PAGE, QueryPagination  # the query app's views: loaded late

    bounds = {"page": MAX_PAGE, "page_size": QueryPagination.max_page_size}
    for parameter in operation.get("parameters", []):
        if parameter["in"] == "query" and parameter["name"] in bounds:
            parameter["schema"] = {"type": "integer", "minimum": 1, "maximum": bounds[parameter["name"]]}


def _pattern_path(operation: dict) -> None:
    """The command API matches path segments loosely (a malformed id is a 400 naming it, not a
    bare 404); the schema gives the patterns its serializers enforce."""
    from bookings import serializers  # the command app: loaded late, like the query app

    patterns = {
        "customer_id": {"pattern": serializers.CUSTOMER_ID, "maxLength": 64},
        "order_id": {"pattern": serializers.ORDER_ID, "maxLength": 32},
        "flight_number": {"pattern": serializers.FLIGHT_NUMBER, "maxLength": 8},
    }
    for parameter in operation.get("parameters", []):
        if parameter["in"] != "path":
            continue
        if parameter["name"] in patterns:
            rule = patterns[parameter["name"]]
            parameter["schema"] = {"type": "string", "pattern": f"^(?:{rule['pattern'].pattern})$", "maxLength": rule["maxLength"]}
        elif parameter["name"] == "flight_date":
            parameter["schema"] = {"type": "string", "format": "date"}


def _strict_body(operation: dict, schemas: dict) -> None:
    """Every request body is checked for unknown fields (a typo is a 400), so say so."""
    body = operation.get("requestBody", {})
    for media in body.get("content", {}).values():
        ref = media.get("schema", {}).get("$ref", "")
        name = ref.rpartition("/")[2]
        if name in schemas:
            schemas[name]["additionalProperties"] = False
            # A body that needs a field cannot be left out (no body reads as `{}`).
            if schemas[name].get("required") or schemas[name].get("minProperties"):
                body["required"] = True
