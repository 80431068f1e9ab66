"""The staff query API: thin DRF views over `selectors` and `services`.

Read-only over the read models except the query side's own records (weather alerts,
notifications). Every parameter is validated by a FilterSet or serializer, so bad input is a
400 naming the parameter; an unknown parameter is a 400 too, so a typo ("flight_no") does not
silently widen a selection.
"""

from django.core.exceptions import ValidationError as DjangoValidationError
from django.shortcuts import get_object_or_404
from django_filters.rest_framework import DjangoFilterBackend
from django_filters.utils import translate_validation
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import generics, serializers, status
from rest_framework.authentication import SessionAuthentication
from rest_framework.exceptions import ValidationError
from rest_framework.pagination import PageNumberPagination
from rest_framework.renderers import BrowsableAPIRenderer, JSONRenderer
from rest_framework.response import Response
from rest_framework.views import APIView

from airticket.auth import BearerTokenAuthentication, IsStaff

from . import services
from .filters import CustomerFilter, PassengerFilter, WeatherAlertFilter, passenger_selection, passenger_selection_counts
from .models import AlertSource, Booking, Customer, WeatherAlert
from .pagination import DeferredJoinPaginator
from .serializers import (
    CustomerOutput,
    NotifyInput,
    NotifyOutput,
    PassengerCountsOutput,
    PassengerOutput,
    WeatherAlertInput,
    WeatherAlertOutput,
)

MAX_PAGE = 1_000_000


class QueryPagination(PageNumberPagination):
    """{count, next, previous, results}; `page` and `page_size` are validated, not ignored."""

    django_paginator_class = DeferredJoinPaginator
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 500

    def get_page_number(self, request, paginator):
        return self._positive(request, self.page_query_param, MAX_PAGE, default=1)

    def get_page_size(self, request):
        return self._positive(request, self.page_size_query_param, self.max_page_size, default=self.page_size)

    @staticmethod
    def _positive(request, name: str, maximum: int, *, default: int) -> int:
        raw = request.query_params.get(name)
        if raw is None:
            return default
        if not raw.isascii() or not raw.isdigit() or not 1 <= int(raw) <= maximum:
            raise ValidationError({name: [f"a whole number from 1 to {maximum}"]})
        return int(raw)


class StaffQueryApi:
    """Staff only: a staff bearer token, or a staff user logged in to the admin (Swagger UI,
    and DRF's browsable pages, which a browser gets by its Accept header; JSON otherwise)."""

    authentication_classes = [BearerTokenAuthentication, SessionAuthentication]
    permission_classes = [IsStaff]
    renderer_classes = [JSONRenderer, BrowsableAPIRenderer]


class FilteredListApi(StaffQueryApi, generics.ListAPIView):
    filter_backends = [DjangoFilterBackend]
    pagination_class = QueryPagination

    def list(self, request, *args, **kwargs):
        allowed = set(self.filterset_class.base_filters) | {"page", "page_size", "format"}
        unknown = sorted(set(request.query_params) - allowed)
        if unknown:
            raise ValidationError({name: ["unknown query parameter"] for name in unknown})
        return super().list(request, *args, **kwargs)


class CustomerListApi(FilteredListApi):
    """Customers in the read model; `search` matches an id or a name prefix."""

    queryset = Customer.objects.none()  # the FilterSet asks the selector
    filterset_class = CustomerFilter
    serializer_class = CustomerOutput


class PassengerListApi(FilteredListApi):
    """One row per booking, selected by flight and date, by city (origin, transfer or
    destination, optional date range) or by weather; status defaults to ORDERED."""

    queryset = Booking.objects.none()
    filterset_class = PassengerFilter
    serializer_class = PassengerOutput


# GET passengers' selection, documented for the counts too (an APIView gets no filter parameters
# from drf-spectacular): without them the schema says the counts take no parameters and cannot
# answer 400, yet a request without a selection is one.
_DATES = {"flight_date", "date_from", "date_to"}
PASSENGER_SELECTION = [
    OpenApiParameter(
        name,
        OpenApiTypes.DATE if name in _DATES else str,
        OpenApiParameter.QUERY,
        description=str(field.label),
        enum=[value for value, _ in field.extra["choices"]] if "choices" in field.extra else None,
    )
    for name, field in PassengerFilter.base_filters.items()
]


class PassengerCountsApi(StaffQueryApi, APIView):
    """The counts of a passenger selection (same parameters as GET passengers, `status`
    ignored): live bookings by status, and the affected (ORDERED) ones with no email address
    and already notified. `affected` is the `count` GET passengers and the notify action report."""

    @extend_schema(parameters=PASSENGER_SELECTION, responses={200: PassengerCountsOutput})
    def get(self, request):
        allowed = set(PassengerFilter.base_filters) | {"format"}
        unknown = sorted(set(request.query_params) - allowed)
        if unknown:
            raise ValidationError({name: ["unknown query parameter"] for name in unknown})
        filterset = PassengerFilter(data=request.query_params, queryset=Booking.objects.none())
        if not filterset.is_valid():
            raise translate_validation(filterset.errors)
        counts = passenger_selection_counts(filterset.form.cleaned_data)
        return Response(PassengerCountsOutput(counts).data)


class WeatherAlertListApi(FilteredListApi):
    """GET: alerts (filter `active`, `city`); POST: create one (source API)."""

    queryset = WeatherAlert.objects.none()
    filterset_class = WeatherAlertFilter
    serializer_class = WeatherAlertOutput

    @extend_schema(request=WeatherAlertInput, responses={201: WeatherAlertOutput})
    def post(self, request):
        data = _validated(WeatherAlertInput, request.data)
        alert = _domain(lambda: services.weather_alert_create(source=AlertSource.API, **data))
        return Response(WeatherAlertOutput(alert).data, status=status.HTTP_201_CREATED)


class WeatherAlertDetailApi(StaffQueryApi, generics.RetrieveAPIView):
    queryset = WeatherAlert.objects.all()
    serializer_class = WeatherAlertOutput


class WeatherAlertExpireApi(StaffQueryApi, APIView):
    @extend_schema(request=None, responses={200: WeatherAlertOutput})
    def post(self, request, pk: int):
        alert = get_object_or_404(WeatherAlert, pk=pk)
        services.weather_alert_expire(alert=alert)
        return Response(WeatherAlertOutput(alert).data)


class NotificationApi(StaffQueryApi, APIView):
    """Notify the passengers selected like GET passengers; each passenger at most once per reason."""

    @extend_schema(request=NotifyInput, responses={200: NotifyOutput})
    def post(self, request):
        data = _validated(NotifyInput, request.data)
        selection = {name: data[name] for name in PassengerFilter.base_filters if name in data}
        filterset = PassengerFilter(data=selection, queryset=Booking.objects.none())
        if not filterset.is_valid():
            raise translate_validation(filterset.errors)
        reason = data.get("reason") or services.message_reason(subject=data["subject"], message=data["message"])
        result = services.passengers_notify(
            bookings=passenger_selection(filterset.form.cleaned_data),
            reason=reason,
            subject=data["subject"],
            message=data["message"],
            sent_by=getattr(request.user, "subject", None) or request.user.get_username(),
        )
        return Response({**result.as_dict(), "reason": reason})


def _validated(serializer_class: type[serializers.Serializer], data) -> dict:
    if not isinstance(data, dict):
        raise ValidationError({"non_field_errors": ["expected a JSON object"]})
    unknown = sorted(set(data) - set(serializer_class().fields))
    if unknown:
        raise ValidationError({name: ["unknown field"] for name in unknown})
    serializer = serializer_class(data=data)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data


def _domain(call):
    """Model validation errors from a service, as a 400 naming the fields."""
    try:
        return call()
    except DjangoValidationError as exc:
        raise ValidationError(exc.message_dict if hasattr(exc, "error_dict") else {"non_field_errors": exc.messages}) from None
