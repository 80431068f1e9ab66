"""Input validation for the command API. Every field is typed and bounded; unknown fields are
rejected so a typo ("flight_no") is a 400, not a silently ignored value."""

import re
from datetime import date

from django.core.validators import RegexValidator
from drf_spectacular.extensions import OpenApiSerializerExtension, OpenApiSerializerFieldExtension
from drf_spectacular.plumbing import ResolvedComponent
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from airticket.airports import airports, is_known_iata

from .services import CANCELLED, DELAYED, FLIGHT_CANCELLED, ORDERED, SCHEDULED

CUSTOMER_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
FLIGHT_NUMBER = re.compile(r"[A-Z0-9]{2}[0-9]{1,4}[A-Z]?")
TIME = re.compile(r"([01][0-9]|2[0-3]):[0-5][0-9]")
PHONE = re.compile(r"\+?[0-9 ()-]{3,32}")
# A person's name: no control characters (C0, DEL, C1) and no bidirectional embedding, override
# or isolate (they can make a name display as something else), and at least one character
# that is neither a space nor invisible (a name of only a zero-width space shows as nothing).
_NOT_IN_NAMES = r"\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069"
_INVISIBLE = r"\s\u200b-\u200f\u2060-\u2064\ufeff"
NAME = re.compile(rf"[^{_NOT_IN_NAMES}]*[^{_NOT_IN_NAMES}{_INVISIBLE}][^{_NOT_IN_NAMES}]*")


def name_field(**kwargs) -> "PatternField":
    return PatternField(NAME, "a name: visible characters, no control or direction-override characters", max_length=200, **kwargs)


class StrictSerializer(serializers.Serializer):
    def to_internal_value(self, data):
        if not isinstance(data, dict):
            raise serializers.ValidationError({"non_field_errors": ["expected a JSON object"]})
        unknown = sorted(set(data) - set(self.fields))
        if unknown:
            raise serializers.ValidationError({name: ["unknown field"] for name in unknown})
        return super().to_internal_value(data)


class StrictCharField(serializers.CharField):
    """A CharField that refuses numbers and booleans instead of stringifying them."""

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


def anchored(pattern: re.Pattern) -> str:
    """The pattern as a whole-string match. `\\A...\\Z` is strict in Python (`$` would allow a
    trailing newline) and drf-spectacular writes it as `^...$` for the OpenAPI schema."""
    return rf"\A(?:{pattern.pattern})\Z"


class PatternField(StrictCharField):
    """A string that must match `pattern` as a whole; the schema carries the same pattern."""

    def __init__(self, pattern: re.Pattern, message: str, **kwargs):
        # Not trimmed: the value is checked as sent, exactly as the schema's pattern says.
        super().__init__(trim_whitespace=False, **kwargs)
        self.validators.append(RegexValidator(anchored(pattern), message))


def customer_id_field(**kwargs) -> PatternField:
    return PatternField(CUSTOMER_ID, "1-64 letters, digits, '-' or '_'", max_length=64, **kwargs)


def flight_number_field(**kwargs) -> PatternField:
    return PatternField(FLIGHT_NUMBER, "an airline designator and 1-4 digits, e.g. MU5159", max_length=8, **kwargs)


def time_field(**kwargs) -> PatternField:
    return PatternField(TIME, "a time as HH:MM", max_length=5, **kwargs)


@extend_schema_field(OpenApiTypes.DATE)
class IsoDateField(StrictCharField):
    """YYYY-MM-DD only (DRF's DateField also takes other shapes); kept as the ISO string."""

    def __init__(self, **kwargs):
        super().__init__(max_length=10, **kwargs)

    def to_internal_value(self, data):
        value = super().to_internal_value(data)
        if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
            raise serializers.ValidationError("a date as YYYY-MM-DD")
        try:
            date.fromisoformat(value)
        except ValueError:
            raise serializers.ValidationError("not a calendar date") from None
        return value


class IataField(StrictCharField):
    def __init__(self, **kwargs):
        super().__init__(max_length=3, min_length=3, **kwargs)

    def to_internal_value(self, data):
        value = super().to_internal_value(data).upper()
        if not is_known_iata(value):
            raise serializers.ValidationError(f"{value!r} is not a known IATA airport code")
        return value


class IataFieldSchema(OpenApiSerializerFieldExtension):
    """The codes the server accepts are the known ones, not any three letters: the schema lists
    them (read only when the schema is generated, not on every start)."""

    target_class = IataField

    def map_serializer_field(self, auto_schema, direction):
        component = ResolvedComponent(
            name="IataCode",
            type=ResolvedComponent.SCHEMA,
            object="IataCode",
            schema={"type": "string", "enum": sorted(airports()), "description": "a known IATA airport code"},
        )
        auto_schema.registry.register_on_missing(component)
        return component.ref


class StrictIntegerField(serializers.IntegerField):
    def to_internal_value(self, data):
        if isinstance(data, bool) or not isinstance(data, int):
            self.fail("invalid")
        return super().to_internal_value(data)


class CustomerCreateSerializer(StrictSerializer):
    customer_id = customer_id_field()
    full_name = name_field()
    mobile = PatternField(PHONE, "a phone number", max_length=32, required=False, allow_blank=True)
    email = serializers.EmailField(max_length=254, required=False, allow_blank=True)


class CustomerUpdateSerializer(StrictSerializer):
    full_name = name_field(required=False)
    mobile = PatternField(PHONE, "a phone number", max_length=32, required=False, allow_blank=True)
    email = serializers.EmailField(max_length=254, required=False, allow_blank=True)


class OrderPlaceSerializer(StrictSerializer):
    flight_number = flight_number_field()
    flight_date = IsoDateField()


class OrderChangeSerializer(OrderPlaceSerializer):
    pass


class FlightCreateSerializer(StrictSerializer):
    flight_number = flight_number_field()
    flight_date = IsoDateField()
    origin = IataField()
    transfers = serializers.ListField(child=IataField(), max_length=4, required=False, default=list)
    destination = IataField()
    departure_time = time_field()
    arrival_time = time_field()
    capacity = StrictIntegerField(min_value=1, max_value=1000)

    def validate(self, attrs):
        route = [attrs["origin"], *attrs["transfers"], attrs["destination"]]
        if len(set(route)) != len(route):
            raise serializers.ValidationError({"transfers": ["a route visits each airport once"]})
        return attrs


class FlightRescheduleSerializer(StrictSerializer):
    departure_time = time_field(required=False)
    arrival_time = time_field(required=False)
    capacity = StrictIntegerField(min_value=1, max_value=1000, required=False)

    def validate(self, attrs):
        if not attrs:
            raise serializers.ValidationError({"non_field_errors": ["give departure_time, arrival_time or capacity"]})
        return attrs


class FlightRescheduleSchema(OpenApiSerializerExtension):
    """Every field is optional, but not all at once: the schema says an empty body is refused."""

    target_class = FlightRescheduleSerializer

    def map_serializer(self, auto_schema, direction):
        return {**auto_schema._map_basic_serializer(self.target, direction), "minProperties": 1}


class FlightPathSerializer(StrictSerializer):
    flight_number = flight_number_field()
    flight_date = IsoDateField()


class CustomerPathSerializer(StrictSerializer):
    customer_id = customer_id_field()


ORDER_ID = re.compile(r"[0-9a-f]{32}")


class OrderPathSerializer(StrictSerializer):
    customer_id = customer_id_field()
    order_id = PatternField(ORDER_ID, "an order id (32 hex digits)", max_length=32)


# --- responses: what the command API answers (the schema's types; views return the dicts) ---


class CustomerRecordSerializer(serializers.Serializer):
    customer_id = serializers.CharField()
    full_name = serializers.CharField()
    mobile = serializers.CharField(allow_blank=True)
    email = serializers.CharField(allow_blank=True)
    version = serializers.IntegerField(min_value=1)
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()


class RouteSerializer(serializers.Serializer):
    flight_number = serializers.CharField()
    flight_date = serializers.DateField()
    origin = serializers.CharField()
    transfers = serializers.ListField(child=serializers.CharField())
    destination = serializers.CharField()
    departure_time = serializers.CharField()
    arrival_time = serializers.CharField()


class OrderRecordSerializer(RouteSerializer):
    order_id = serializers.CharField()
    customer_id = serializers.CharField()
    status = serializers.ChoiceField(choices=[ORDERED, CANCELLED])
    version = serializers.IntegerField(min_value=1)
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()


class CustomerWithOrdersSerializer(CustomerRecordSerializer):
    orders = OrderRecordSerializer(many=True)


class OrderPageSerializer(serializers.Serializer):
    count = serializers.IntegerField(min_value=0)
    results = OrderRecordSerializer(many=True)


class FlightRecordSerializer(RouteSerializer):
    capacity = serializers.IntegerField(min_value=1)
    seats_booked = serializers.IntegerField(min_value=0)
    status = serializers.ChoiceField(choices=[SCHEDULED, DELAYED, FLIGHT_CANCELLED])
    # Flights written before reschedules were versioned separately have none.
    schedule_version = serializers.IntegerField(min_value=1, required=False)
    version = serializers.IntegerField(min_value=1)
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()


class InitResultSerializer(serializers.Serializer):
    steps = serializers.ListField(child=serializers.CharField())


class TruncateResultSerializer(serializers.Serializer):
    deleted_items = serializers.IntegerField(min_value=0)
