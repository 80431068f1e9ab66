"""Pages that only point elsewhere: the site root and the two API roots.

They exist so that every address the startup banner and the admin print answers with
something useful instead of a 404: a person who opens `/`, `/api/v1/` or `/api/v1/query/` in a
browser learns where to go next. They read no data, so they need no login."""

from django.contrib import admin
from django.shortcuts import render
from django.urls import reverse
from drf_spectacular.utils import extend_schema
from rest_framework.permissions import AllowAny
from rest_framework.renderers import BrowsableAPIRenderer, JSONRenderer
from rest_framework.response import Response
from rest_framework.views import APIView


def home(request):
    context = {**admin.site.each_context(request), "title": "Air-ticket", "links": _site_links(request)}
    return render(request, "airticket/home.html", context)


def _site_links(request) -> list[tuple[str, str, str]]:
    """(title, url, what it is) for the landing page."""
    return [
        ("Staff portal", reverse("admin:index"), "flights, passengers, weather alerts, notifications (staff login)"),
        (
            "Flights from today",
            reverse("admin:admin_portal_flight_changelist"),
            "each flight's page: passengers, counts, cancel, delay, notify",
        ),
        ("Operations", reverse("admin:admin_portal_shardcheckpoint_changelist"), "CDC checkpoints and lag, the dead-letter queue"),
        ("Query API", reverse("query-root"), "read-only staff API over the read models (browsable with a staff login)"),
        ("Command API", reverse("command-root"), "bookings on DynamoDB (bearer tokens)"),
        ("API docs (Swagger UI)", reverse("swagger-ui"), "both APIs, from the OpenAPI document"),
        ("API docs (ReDoc)", reverse("redoc"), "the same document, for reading"),
        ("Health", reverse("healthz"), "200 when the database, AWS and the CDC poller answer"),
    ]


class ApiRoot(APIView):
    """A list of a namespace's endpoints; public, as it shows no data."""

    authentication_classes: list = []
    permission_classes = [AllowAny]
    renderer_classes = [JSONRenderer, BrowsableAPIRenderer]
    endpoints: dict[str, str] = {}
    description = ""

    @extend_schema(exclude=True)
    def get(self, request):
        links = {name: request.build_absolute_uri(path) for name, path in self.endpoints.items()}
        docs = {"docs": request.build_absolute_uri(reverse("swagger-ui")), "schema": request.build_absolute_uri(reverse("schema"))}
        return Response({"description": self.description, "endpoints": links, **docs})


class CommandApiRoot(ApiRoot):
    """Command API: customers, their orders and flights, on DynamoDB. Every call needs a bearer token."""

    description = "Command side (DynamoDB). Authorization: Bearer <token> (manage.py issue_token --staff | --customer ID)."
    endpoints = {
        "customers": "/api/v1/customers",
        "customer": "/api/v1/customers/{customer_id}",
        "orders": "/api/v1/customers/{customer_id}/orders",
        "flights": "/api/v1/flights",
        "flight": "/api/v1/flights/{flight_number}/{flight_date}",
    }


class QueryApiRoot(ApiRoot):
    """Query API: the staff's read-only questions over the read models."""

    description = "Query side (read models), staff only: a staff bearer token or an admin login."
    endpoints = {
        "passengers": "/api/v1/query/passengers",
        "customers": "/api/v1/query/customers",
        "weather-alerts": "/api/v1/query/weather-alerts",
        "notifications": "/api/v1/notifications",
    }
