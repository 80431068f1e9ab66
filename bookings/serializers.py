"""Input validation for the command API. Every field is typed and bounded; unknown fields are
rejected so a typo ("flight_no") is a 400, not a silently ignored value."""

import re
from datetime import date

from rest_framework import serializers

from airticket.airports import is_known_iata

CUSTOMER_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
FLIGHT_NUMBER = re.compile(r"[A-Z0-9]{2}[0-9]{1,4}[A-Z]?")
TIME = re.compile(r"([01][0-9]|2[0-3]):[0-5][0-9]")
PHONE = re.compile(r"\+?[0-9 ()-]{3,32}")


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


class PatternField(StrictCharField):
    def __init__(self, pattern: re.Pattern, message: str, **kwargs):
        self.pattern = pattern
        self.message = message
        super().__init__(**kwargs)

    def to_internal_value(self, data):
        value = super().to_internal_value(data)
        if not self.pattern.fullmatch(value):
            raise serializers.ValidationError(self.message)
        return value


def customer_id_field(**kwargs) -> PatternField:
    return PatternField(CUSTOMER_ID, "1-64 letters, digits, '-' or '_'", max_length=64, **kwargs)


def flight_number_field(**kwargs) -> PatternField:
    return PatternField(FLIGHT_NUMBER, "an airline designator and 1-4 digits, e.g. MU5159", max_length=8, **kwargs)


def time_field(**kwargs) -> PatternField:
    return PatternField(TIME, "a time as HH:MM", max_length=5, **kwargs)


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


class StrictIntegerField(serializers.IntegerField):
    def to_internal_value(self, data):
        if isinstance(data, bool) or not isinstance(data, int):
            self.fail("invalid")
        return super().to_internal_value(data)


class CustomerCreateSerializer(StrictSerializer):
    customer_id = customer_id_field()
    full_name = StrictCharField(max_length=200)
    mobile = PatternField(PHONE, "a phone number", max_length=32, required=False, allow_blank=True)
    email = serializers.EmailField(max_length=254, required=False, allow_blank=True)


class CustomerUpdateSerializer(StrictSerializer):
    full_name = StrictCharField(max_length=200, required=False)
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


class FlightPathSerializer(StrictSerializer):
    flight_number = flight_number_field()
    flight_date = IsoDateField()


class CustomerPathSerializer(StrictSerializer):
    customer_id = customer_id_field()


class OrderPathSerializer(StrictSerializer):
    customer_id = customer_id_field()
    order_id = PatternField(re.compile(r"[0-9a-f]{32}"), "an order id (32 hex digits)", max_length=32)
