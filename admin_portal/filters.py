"""Query-parameter validation for the query API, with django-filter.

The FilterSets only validate and dispatch: the questions themselves live in `selectors`. A
parameter that does not parse (a date that is not ISO, an unknown status, an injection
string where a flight number belongs) is a form error, which the API turns into a 400 that
names the parameter.
"""

import re

import django_filters
from django import forms
from django.core.validators import RegexValidator
from django.utils import timezone

from bookings.serializers import FLIGHT_NUMBER

from . import selectors
from .models import Booking, BookingStatus, Customer, WeatherAlert

ISO_DATE = ["%Y-%m-%d"]
# Letters of any script, then letters, digits, spaces and the punctuation real city names use
# ("Xi'an", "St. John's", "Ho Chi Minh City (Saigon)").
PLACE = re.compile(r"[^\W\d_][\w .'()\-]{0,99}")
SEARCH = re.compile(r"[\w .'@+\-]{1,100}")
WEATHER = re.compile(r"active|[1-9][0-9]{0,17}")


def iso_date_filter(label: str) -> django_filters.DateFilter:
    return django_filters.DateFilter(input_formats=ISO_DATE, label=label, help_text="YYYY-MM-DD")


def pattern_filter(pattern: re.Pattern, message: str, *, label: str, max_length: int) -> django_filters.CharFilter:
    validator = RegexValidator(f"^(?:{pattern.pattern})$", message)
    return django_filters.CharFilter(validators=[validator], max_length=max_length, label=label, help_text=message)


class StrictFilterSet(django_filters.FilterSet):
    """Reports form-wide errors under DRF's `non_field_errors` key."""

    @property
    def errors(self):
        errors = dict(self.form.errors)
        if "__all__" in errors:
            errors["non_field_errors"] = errors.pop("__all__")
        return forms.utils.ErrorDict(errors)


class PassengerQueryForm(forms.Form):
    """Exactly one selection: a flight and date, a city (with an optional date range), or weather."""

    def clean(self):
        data = super().clean()
        given = {name for name, value in data.items() if value not in (None, "") and name != "status"}
        modes = [
            name
            for name, fields in (
                ("flight", {"flight_number", "flight_date"}),
                ("city", {"city", "date_from", "date_to"}),
                ("weather", {"weather"}),
            )
            if given & fields
        ]
        if self.errors:
            return data
        if not modes:
            raise forms.ValidationError("select passengers by flight_number and flight_date, by city, or by weather")
        if len(modes) > 1:
            raise forms.ValidationError(f"use one selection at a time, not {' and '.join(modes)}")
        if modes == ["flight"]:
            for name in ("flight_number", "flight_date"):
                if not data.get(name):
                    self.add_error(name, "required with " + ("flight_date" if name == "flight_number" else "flight_number"))
        if modes == ["city"]:
            if not data.get("city"):
                self.add_error("city", "required with date_from/date_to")
            elif data.get("date_from") and data.get("date_to") and data["date_from"] > data["date_to"]:
                self.add_error("date_to", "must not be before date_from")
        return data


class PassengerFilter(StrictFilterSet):
    flight_number = pattern_filter(FLIGHT_NUMBER, "an airline designator and 1-4 digits, e.g. MU5159", label="flight number", max_length=8)
    flight_date = iso_date_filter("flight date")
    status = django_filters.ChoiceFilter(choices=BookingStatus.choices, label="booking status (default ORDERED)")
    city = pattern_filter(PLACE, "a city name or an IATA airport code", label="city or airport", max_length=100)
    date_from = iso_date_filter("first flight date (inclusive)")
    date_to = iso_date_filter("last flight date (inclusive)")
    weather = pattern_filter(WEATHER, "'active' (every valid alert) or an alert id", label="weather", max_length=18)

    class Meta:
        model = Booking
        fields: list[str] = []
        form = PassengerQueryForm

    def filter_queryset(self, queryset):
        return passenger_selection(self.form.cleaned_data)


def passenger_selection(data: dict):
    """The selector a validated passenger query names."""
    status = data.get("status") or BookingStatus.ORDERED
    if data.get("flight_number"):
        return selectors.passenger_list_by_flight(flight_number=data["flight_number"], flight_date=data["flight_date"], status=status)
    if data.get("city"):
        return selectors.passenger_list_by_city(
            city=data["city"], date_from=data.get("date_from"), date_to=data.get("date_to"), status=status
        )
    return selectors.passenger_list_by_alerts(alerts=_alerts(data), status=status)


def _alerts(data: dict) -> list:
    if data["weather"] == "active":
        return list(selectors.weather_alert_list(active_at=timezone.now()))
    return list(selectors.weather_alert_list().filter(pk=int(data["weather"])))


def passenger_selection_counts(data: dict) -> selectors.PassengerCounts:
    """The counts of a validated passenger query's selection (whatever its status): totals by
    status from the per-flight counts, and its ORDERED passengers without an email address
    or already notified."""
    if data.get("flight_number"):
        keys = [f"{data['flight_number']}#{data['flight_date']:%Y-%m-%d}"]
    elif data.get("city"):
        airports = selectors.airport_codes_for_place(place=data["city"])
        keys = (
            selectors.stops_touching(airports=airports, date_from=data.get("date_from"), date_to=data.get("date_to"))
            .order_by()
            .values("flight_id")
        )
    else:
        stops = selectors.stops_alerted(alerts=_alerts(data))
        keys = stops.order_by().values("flight_id") if stops is not None else []
    return selectors.passenger_counts(flight_keys=keys, affected=passenger_selection({**data, "status": BookingStatus.ORDERED}))


class CustomerFilter(StrictFilterSet):
    search = pattern_filter(SEARCH, "a customer id or name prefix (letters, digits, space, . ' @ + - _)", label="search", max_length=100)

    class Meta:
        model = Customer
        fields: list[str] = []

    def filter_queryset(self, queryset):
        return selectors.customer_list(search=self.form.cleaned_data.get("search") or "")


class WeatherAlertFilter(StrictFilterSet):
    active = django_filters.ChoiceFilter(choices=[("true", "valid now"), ("false", "not valid now")], label="validity now")
    city = pattern_filter(PLACE, "a city name or an IATA airport code", label="city or airport", max_length=100)

    class Meta:
        model = WeatherAlert
        fields: list[str] = []

    def filter_queryset(self, queryset):
        data, now = self.form.cleaned_data, timezone.now()
        alerts = selectors.weather_alert_list(active_at=now if data.get("active") == "true" else None, city=data.get("city") or "")
        if data.get("active") == "false":
            alerts = alerts.exclude(valid_from__lte=now, valid_to__gt=now)
        return alerts
