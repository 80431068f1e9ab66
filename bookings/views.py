"""Thin DRF views for the command API: authorise, validate, call a service, shape the reply."""

import re

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.exceptions import PermissionDenied
from rest_framework.response import Response
from rest_framework.views import APIView

from airticket.auth import IsStaff
from airticket.errors import BadRequest

from . import idempotency, services
from .serializers import (
    CustomerCreateSerializer,
    CustomerPathSerializer,
    CustomerUpdateSerializer,
    FlightCreateSerializer,
    FlightPathSerializer,
    FlightRescheduleSerializer,
    OrderChangeSerializer,
    OrderPathSerializer,
    OrderPlaceSerializer,
)

IDEMPOTENCY_HEADER = OpenApiParameter(
    idempotency.HEADER, str, OpenApiParameter.HEADER, description="replays the first response for the same key and body"
)
IF_MATCH_HEADER = OpenApiParameter("If-Match", str, OpenApiParameter.HEADER, description="the version you read; a stale one is 412")


def validated(serializer_class, data) -> dict:
    serializer = serializer_class(data=data)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data


def if_match(request) -> int | None:
    raw = request.headers.get("If-Match")
    if raw is None:
        return None
    match = re.fullmatch(r'\s*(?:W/)?"?(\d{1,18})"?\s*', raw)
    if not match:
        raise BadRequest("If-Match must be a version number", fields={"If-Match": "not a version"})
    return int(match.group(1))


def versioned(data: dict, status_code: int = status.HTTP_200_OK) -> Response:
    response = Response(data, status=status_code)
    response["ETag"] = f'"{data["version"]}"'
    return response


class CustomerScoped(APIView):
    """Customer-scoped endpoints: a customer token acts only on its own id."""

    def customer_id(self, request, kwargs) -> str:
        customer_id = validated(CustomerPathSerializer, {"customer_id": kwargs["customer_id"]})["customer_id"]
        if not request.user.may_act_for(customer_id):
            raise PermissionDenied("this token may not act for that customer")
        return customer_id


class CustomerListView(APIView):
    @extend_schema(request=CustomerCreateSerializer, parameters=[IDEMPOTENCY_HEADER], responses={201: dict})
    def post(self, request):
        data = validated(CustomerCreateSerializer, request.data)
        if not request.user.may_act_for(data["customer_id"]):
            raise PermissionDenied("this token may not register that customer")
        return idempotency.run(request, lambda: versioned(services.customer_register(**data), status.HTTP_201_CREATED))


class CustomerDetailView(CustomerScoped):
    @extend_schema(responses={200: dict})
    def get(self, request, **kwargs):
        return versioned(services.customer_get_with_orders(customer_id=self.customer_id(request, kwargs)))

    @extend_schema(request=CustomerUpdateSerializer, parameters=[IF_MATCH_HEADER], responses={200: dict})
    def patch(self, request, **kwargs):
        customer_id = self.customer_id(request, kwargs)
        changes = validated(CustomerUpdateSerializer, request.data)
        return versioned(services.customer_update(customer_id=customer_id, changes=changes, expected_version=if_match(request)))


class OrderListView(CustomerScoped):
    @extend_schema(responses={200: dict}, operation_id="customers_orders_list")
    def get(self, request, **kwargs):
        orders = services.order_list(customer_id=self.customer_id(request, kwargs))
        return Response({"count": len(orders), "results": orders})

    @extend_schema(request=OrderPlaceSerializer, parameters=[IDEMPOTENCY_HEADER], responses={201: dict})
    def post(self, request, **kwargs):
        customer_id = self.customer_id(request, kwargs)
        data = validated(OrderPlaceSerializer, request.data)
        return idempotency.run(request, lambda: versioned(services.order_place(customer_id=customer_id, **data), status.HTTP_201_CREATED))


class OrderScoped(CustomerScoped):
    def ids(self, request, kwargs) -> dict:
        self.customer_id(request, kwargs)
        return validated(OrderPathSerializer, {"customer_id": kwargs["customer_id"], "order_id": kwargs["order_id"]})


class OrderDetailView(OrderScoped):
    @extend_schema(responses={200: dict})
    def get(self, request, **kwargs):
        return versioned(services.order_get(**self.ids(request, kwargs)))

    @extend_schema(request=OrderChangeSerializer, parameters=[IF_MATCH_HEADER], responses={200: dict})
    def patch(self, request, **kwargs):
        ids = self.ids(request, kwargs)
        data = validated(OrderChangeSerializer, request.data)
        return versioned(services.order_change(**ids, **data, expected_version=if_match(request)))


class OrderCancelView(OrderScoped):
    @extend_schema(request=None, parameters=[IDEMPOTENCY_HEADER], responses={200: dict})
    def post(self, request, **kwargs):
        ids = self.ids(request, kwargs)
        return idempotency.run(request, lambda: versioned(services.order_cancel(**ids)))


class FlightListView(APIView):
    permission_classes = [IsStaff]

    @extend_schema(request=FlightCreateSerializer, parameters=[IDEMPOTENCY_HEADER], responses={201: dict})
    def post(self, request):
        data = validated(FlightCreateSerializer, request.data)
        return idempotency.run(request, lambda: versioned(services.flight_create(**data), status.HTTP_201_CREATED))


class FlightDetailView(APIView):
    permission_classes = [IsStaff]

    @extend_schema(responses={200: dict})
    def get(self, request, **kwargs):
        return versioned(services.flight_get(**validated(FlightPathSerializer, kwargs)))

    @extend_schema(request=FlightRescheduleSerializer, parameters=[IF_MATCH_HEADER], responses={200: dict})
    def patch(self, request, **kwargs):
        key = validated(FlightPathSerializer, kwargs)
        data = validated(FlightRescheduleSerializer, request.data)
        return versioned(services.flight_reschedule(**key, **data, expected_version=if_match(request)))


class FlightCancelView(APIView):
    permission_classes = [IsStaff]

    @extend_schema(request=None, parameters=[IDEMPOTENCY_HEADER], responses={200: dict})
    def post(self, request, **kwargs):
        key = validated(FlightPathSerializer, kwargs)
        return idempotency.run(request, lambda: versioned(services.flight_cancel(**key)))
