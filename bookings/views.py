"""Thin DRF views for the command API: authorise, validate, call a service, shape the reply."""

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.exceptions import PermissionDenied
from rest_framework.response import Response

from airticket.auth import IsStaff
from airticket.throttles import CommandApi

from . import idempotency, services
from .http import Precondition, customer_etag, expected_version, if_match, versioned
from .serializers import (
    CustomerCreateSerializer,
    CustomerPathSerializer,
    CustomerRecordSerializer,
    CustomerUpdateSerializer,
    CustomerWithOrdersSerializer,
    FlightCreateSerializer,
    FlightPathSerializer,
    FlightRecordSerializer,
    FlightRescheduleSerializer,
    OrderChangeSerializer,
    OrderPageSerializer,
    OrderPathSerializer,
    OrderPlaceSerializer,
    OrderRecordSerializer,
)

# Header patterns are what the server accepts (`If-Match`: the forms a client should send; a
# weak tag is accepted too, and answered 412). The schema hook anchors nothing else on them.
IDEMPOTENCY_HEADER = OpenApiParameter(
    idempotency.HEADER,
    str,
    OpenApiParameter.HEADER,
    description="replays the first response for the same key and body",
    pattern=r"^[!-~]{1,255}$",
)
# Each If-Match names what that operation's ETag is: an order's or a flight's tag is its version
# ("3"); a customer's is its profile version ("3", from PATCH) or that plus the digest of its
# orders ("3.5f0c...", from GET with the orders). A bare version (3) is accepted as it always was.
_VERSION_TAG = r'"[0-9]{1,18}"'
_CUSTOMER_TAG = r'"[0-9]{1,18}(\.[0-9a-f]{16})?"'


def if_match_header(tag: str) -> OpenApiParameter:
    return OpenApiParameter(
        "If-Match",
        str,
        OpenApiParameter.HEADER,
        description='the ETag you read ("3"), or *; a stale or weak one is 412',
        pattern=rf"^(\*|{tag}|[0-9]{{1,18}})$",
    )


def etag_header(tag: str, description: str) -> OpenApiParameter:
    return OpenApiParameter("ETag", str, OpenApiParameter.HEADER, response=True, description=description, pattern=f"^{tag}$")


ITEM_IF_MATCH = if_match_header(_VERSION_TAG)
CUSTOMER_IF_MATCH = if_match_header(_CUSTOMER_TAG)
# Every command answer carries the entity tag of what it returns.
ETAG_HEADER = etag_header(_VERSION_TAG, 'the version of the returned item, quoted ("3")')
CUSTOMER_ETAG_HEADER = etag_header(r'"[0-9]{1,18}\.[0-9a-f]{16}"', 'the profile\'s version and a digest of the orders ("3.5f0c...")')


def validated(serializer_class, data) -> dict:
    serializer = serializer_class(data=data)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data


class CustomerScoped(CommandApi):
    """Customer-scoped endpoints: a customer token acts only on its own id."""

    def customer_id(self, request, kwargs) -> str:
        customer_id = validated(CustomerPathSerializer, {"customer_id": kwargs["customer_id"]})["customer_id"]
        if not request.user.may_act_for(customer_id):
            raise PermissionDenied("this token may not act for that customer")
        return customer_id


class CustomerListView(CommandApi):
    @extend_schema(
        request=CustomerCreateSerializer, parameters=[IDEMPOTENCY_HEADER, ETAG_HEADER], responses={201: CustomerRecordSerializer}
    )
    def post(self, request):
        data = validated(CustomerCreateSerializer, request.data)
        if not request.user.may_act_for(data["customer_id"]):
            raise PermissionDenied("this token may not register that customer")
        return idempotency.run(
            request, lambda record: services.customer_register(**data, record=record), status_code=status.HTTP_201_CREATED
        )


class CustomerDetailView(CustomerScoped):
    @extend_schema(parameters=[CUSTOMER_ETAG_HEADER], responses={200: CustomerWithOrdersSerializer})
    def get(self, request, **kwargs):
        customer = services.customer_get_with_orders(customer_id=self.customer_id(request, kwargs))
        return versioned(customer, tag=customer_etag(customer))

    @extend_schema(request=CustomerUpdateSerializer, parameters=[CUSTOMER_IF_MATCH, ETAG_HEADER], responses={200: CustomerRecordSerializer})
    def patch(self, request, **kwargs):
        customer_id = self.customer_id(request, kwargs)
        changes = validated(CustomerUpdateSerializer, request.data)
        precondition = if_match(request) or Precondition(version=None)
        return versioned(
            services.customer_update(
                customer_id=customer_id,
                changes=changes,
                expected_version=precondition.version,
                expected_orders_digest=precondition.orders_digest,
            )
        )


class OrderListView(CustomerScoped):
    @extend_schema(responses={200: OrderPageSerializer}, operation_id="customers_orders_list")
    def get(self, request, **kwargs):
        orders = services.order_list(customer_id=self.customer_id(request, kwargs))
        return Response({"count": len(orders), "results": orders})

    @extend_schema(request=OrderPlaceSerializer, parameters=[IDEMPOTENCY_HEADER, ETAG_HEADER], responses={201: OrderRecordSerializer})
    def post(self, request, **kwargs):
        customer_id = self.customer_id(request, kwargs)
        data = validated(OrderPlaceSerializer, request.data)
        return idempotency.run(
            request,
            lambda record: services.order_place(customer_id=customer_id, **data, record=record),
            status_code=status.HTTP_201_CREATED,
        )


class OrderScoped(CustomerScoped):
    def ids(self, request, kwargs) -> dict:
        self.customer_id(request, kwargs)
        return validated(OrderPathSerializer, {"customer_id": kwargs["customer_id"], "order_id": kwargs["order_id"]})


class OrderDetailView(OrderScoped):
    @extend_schema(parameters=[ETAG_HEADER], responses={200: OrderRecordSerializer})
    def get(self, request, **kwargs):
        return versioned(services.order_get(**self.ids(request, kwargs)))

    @extend_schema(request=OrderChangeSerializer, parameters=[ITEM_IF_MATCH, ETAG_HEADER], responses={200: OrderRecordSerializer})
    def patch(self, request, **kwargs):
        ids = self.ids(request, kwargs)
        data = validated(OrderChangeSerializer, request.data)
        return versioned(services.order_change(**ids, **data, expected_version=expected_version(if_match(request))))


class OrderCancelView(OrderScoped):
    @extend_schema(request=None, parameters=[IDEMPOTENCY_HEADER, ETAG_HEADER], responses={200: OrderRecordSerializer})
    def post(self, request, **kwargs):
        ids = self.ids(request, kwargs)
        return idempotency.run(request, lambda record: services.order_cancel(**ids), status_code=status.HTTP_200_OK)


class FlightListView(CommandApi):
    permission_classes = [IsStaff]

    @extend_schema(request=FlightCreateSerializer, parameters=[IDEMPOTENCY_HEADER, ETAG_HEADER], responses={201: FlightRecordSerializer})
    def post(self, request):
        data = validated(FlightCreateSerializer, request.data)
        return idempotency.run(request, lambda record: services.flight_create(**data, record=record), status_code=status.HTTP_201_CREATED)


class FlightDetailView(CommandApi):
    permission_classes = [IsStaff]

    @extend_schema(parameters=[ETAG_HEADER], responses={200: FlightRecordSerializer})
    def get(self, request, **kwargs):
        return versioned(services.flight_get(**validated(FlightPathSerializer, kwargs)))

    @extend_schema(request=FlightRescheduleSerializer, parameters=[ITEM_IF_MATCH, ETAG_HEADER], responses={200: FlightRecordSerializer})
    def patch(self, request, **kwargs):
        key = validated(FlightPathSerializer, kwargs)
        data = validated(FlightRescheduleSerializer, request.data)
        return versioned(services.flight_reschedule(**key, **data, expected_version=expected_version(if_match(request))))


class FlightCancelView(CommandApi):
    permission_classes = [IsStaff]

    @extend_schema(request=None, parameters=[IDEMPOTENCY_HEADER, ETAG_HEADER], responses={200: FlightRecordSerializer})
    def post(self, request, **kwargs):
        key = validated(FlightPathSerializer, kwargs)
        return idempotency.run(request, lambda record: services.flight_cancel(**key), status_code=status.HTTP_200_OK)
