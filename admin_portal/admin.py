"""The staff portal over the read models.

Read models are read-only here: they change only through the CDC projection. Staff commands
(cancel or reschedule a flight) go through the command side's services and show up in these
lists once the change has travelled through the stream. Only the query side's own records
(weather alerts) are edited here.

Built for millions of rows: no changelist ever counts a whole table (`CappedCountPaginator`,
`show_full_result_count = False`, facets off), searches are read as the most specific thing
they can be so they stay on an index (`selectors.booking_search`), and filters use indexed
columns.
"""

from datetime import date, datetime, time, timedelta

from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.admin.models import LogEntry
from django.contrib.admin.options import IncorrectLookupParameters, ShowFacets
from django.contrib.admin.utils import quote, unquote
from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db import connection
from django.db.models import DateTimeField
from django.http import HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.functional import cached_property
from django.utils.html import format_html
from django.utils.http import urlencode

from airticket import observability
from airticket.errors import DomainError
from bookings import services as commands

from . import display, operations, selectors, services
from .filters import PassengerFilter
from .forms import ConfirmForm, FlightDelayForm, NotifyForm, RescheduleForm, WeatherNotifyForm
from .models import (
    Airport,
    AlertSource,
    Booking,
    BookingStatus,
    Customer,
    Flight,
    FlightEvent,
    Notification,
    ReconcileRun,
    ShardCheckpoint,
    WeatherAlert,
)
from .pagination import DeferredJoinPaginator

admin.site.site_header = "Air-ticket staff portal"
admin.site.site_title = "Air-ticket staff"
admin.site.index_title = "Bookings, flights, weather and operations"
# The app list in a sidebar takes 275 px of every page: the lists need the width.
admin.site.enable_nav_sidebar = False


class CappedCountPaginator(DeferredJoinPaginator):
    """Counts at most CAP rows: exact for any selective filter, and bounded work for a whole
    table (whose size is then MySQL's estimate, when the list is unfiltered)."""

    CAP = 10_000

    @cached_property
    def count(self) -> int:
        queryset = self.object_list
        capped = queryset.order_by().values("pk")[: self.CAP + 1].count()
        if capped <= self.CAP:
            return capped
        if not queryset.query.where and connection.vendor == "mysql":
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT TABLE_ROWS FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = %s",
                    [queryset.model._meta.db_table],
                )
                row = cursor.fetchone()
            if row and row[0]:
                return max(int(row[0]), self.CAP)
        return self.CAP


class FastAdmin(admin.ModelAdmin):
    paginator = CappedCountPaginator
    show_full_result_count = False
    show_facets = ShowFacets.NEVER
    list_per_page = 50


class NoWrites:
    """Viewable, never added, changed or deleted through the admin."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class ReadModelAdmin(NoWrites, FastAdmin):
    """Projected rows: they change only through the CDC projection."""


PROJECTION_INTERNALS = ["version", "deleted", "projected_at"]  # bookkeeping, not for staff eyes


# --- list filters -------------------------------------------------------------------------


class FormFilter(admin.ListFilter):
    """A sidebar filter rendered as a small GET form (free text and dates, not a fixed list)."""

    template = "admin_portal/form_filter.html"
    inputs: tuple[tuple[str, str, str], ...] = ()  # (query parameter, label, input type)

    def __init__(self, request, params, model, model_admin):
        super().__init__(request, params, model, model_admin)
        self.model_admin = model_admin
        for name, _, _ in self.inputs:
            if name in params:
                values = params.pop(name)
                value = values[-1] if isinstance(values, list) else values
                if value.strip():
                    self.used_parameters[name] = value.strip()

    def has_output(self):
        return True

    def expected_parameters(self):
        return [name for name, _, _ in self.inputs]

    def choices(self, changelist):
        mine = set(self.expected_parameters())
        # A selection (a flight, a city, the weather) starts afresh from the date a list opens
        # on: the passengers of yesterday's flight are not hidden by "from today".
        opens_on = getattr(self.model_admin, "opens_on", "")
        dropped = mine if f"{opens_on}__from" in mine else mine | {f"{opens_on}__from"}
        hidden = [(key, value) for key, values in changelist.params.items() if key not in dropped for value in values]
        yield {
            "inputs": [(name, label, kind, self.used_parameters.get(name, "")) for name, label, kind in self.inputs],
            "hidden": hidden,
            "clear_url": self.clear_url(changelist, mine),
            "active": bool(self.used_parameters),
        }

    def clear_url(self, changelist, mine: set[str]) -> str:
        """Without this filter's parameters; for the date a list opens on (`OpensOnToday`),
        with an empty "from", meaning every date (an absent one would open on today again)."""
        opens_on = getattr(self.model_admin, "opens_on", "")
        if opens_on and f"{opens_on}__from" in mine:
            return changelist.get_query_string({f"{opens_on}__from": ""}, remove=list(mine))
        return changelist.get_query_string(remove=list(mine))

    def queryset(self, request, queryset):
        if not self.used_parameters:
            return queryset
        return self.apply(queryset, self.used_parameters)

    def apply(self, queryset, values: dict):
        raise NotImplementedError


class PassengerFormFilter(FormFilter):
    """A passenger selection. "Affected" means ORDERED, as in the query API and the notify
    action, so all three count the same; another status is the status filter's explicit choice."""

    def queryset(self, request, queryset):
        selected = super().queryset(request, queryset)
        if self.used_parameters and "status__exact" not in request.GET:
            selected = selected.filter(status=BookingStatus.ORDERED)
        return selected


def _passenger_query(values: dict) -> dict:
    """Validate like the query API does (same FilterSet), or refuse the lookup."""
    filterset = PassengerFilter(data=values, queryset=Booking.objects.none())
    if not filterset.is_valid():
        raise IncorrectLookupParameters(filterset.errors)
    return filterset.form.cleaned_data


class FlightPassengersFilter(PassengerFormFilter):
    title = "passengers of a flight"
    inputs = (("flight_number", "flight number", "text"), ("flight_date", "date", "date"))

    def apply(self, queryset, values):
        data = _passenger_query({**values, "flight_number": values.get("flight_number", "").upper()})
        return queryset.filter(flight_number=data["flight_number"], flight_date=data["flight_date"])


class ThroughCityFilter(PassengerFormFilter):
    title = "bookings through a city (incl. transfers)"
    inputs = (("city", "city or IATA code", "text"), ("city_from", "from", "date"), ("city_to", "to", "date"))

    def apply(self, queryset, values):
        if "city" not in values:
            raise IncorrectLookupParameters("give a city")
        data = _passenger_query({"city": values["city"], "date_from": values.get("city_from", ""), "date_to": values.get("city_to", "")})
        airports = selectors.airport_codes_for_place(place=data["city"])
        touching = selectors.flight_keys_touching(airports=airports, date_from=data.get("date_from"), date_to=data.get("date_to"))
        return queryset.filter(flight_id__in=touching) if airports else queryset.none()


class WeatherAffectedFilter(PassengerFormFilter):
    title = "affected by weather"
    inputs = (("weather", "alert id, or 'active'", "text"),)

    def apply(self, queryset, values):
        data = _passenger_query(values)
        if data["weather"] == "active":
            alerts = list(selectors.weather_alert_list(active_at=timezone.now()))
        else:
            alerts = list(WeatherAlert.objects.filter(pk=int(data["weather"])))
        touching = selectors.flight_keys_alerted(alerts=alerts)
        return queryset.filter(flight_id__in=touching) if touching is not None else queryset.none()


def date_range_filter(field: str, title: str) -> type[FormFilter]:
    """A from/to filter on a date or datetime column (inclusive days, in UTC for datetimes)."""

    class DateRange(FormFilter):
        inputs = ((f"{field}__from", "from", "date"), (f"{field}__to", "to", "date"))

        def apply(self, queryset, values):
            try:
                first, last = (date.fromisoformat(values[name]) if name in values else None for name, _, _ in self.inputs)
            except ValueError as exc:
                raise IncorrectLookupParameters(exc) from None
            lookups = {}
            if isinstance(queryset.model._meta.get_field(field), DateTimeField):
                # Ranges over instants, not DATE(column): stays on the index, needs no MySQL tz tables.
                tz = timezone.get_current_timezone()
                if first:
                    lookups[f"{field}__gte"] = datetime.combine(first, time.min, tzinfo=tz)
                if last:
                    lookups[f"{field}__lt"] = datetime.combine(last + timedelta(days=1), time.min, tzinfo=tz)
            else:
                lookups = {lookup: value for lookup, value in ((f"{field}__gte", first), (f"{field}__lte", last)) if value}
            return queryset.filter(**lookups)

    DateRange.title = title
    DateRange.__name__ = f"{field.title().replace('_', '')}RangeFilter"
    return DateRange


class AlertValidityFilter(admin.SimpleListFilter):
    title = "validity"
    parameter_name = "validity"

    def lookups(self, request, model_admin):
        return [("active", "valid now"), ("upcoming", "upcoming"), ("expired", "expired")]

    def queryset(self, request, queryset):
        now = timezone.now()
        return {
            "active": lambda: queryset.filter(valid_from__lte=now, valid_to__gt=now),
            "upcoming": lambda: queryset.filter(valid_from__gt=now),
            "expired": lambda: queryset.filter(valid_to__lte=now),
        }.get(self.value(), lambda: queryset)()


class AlertSourceFilter(admin.SimpleListFilter):
    """By source, named by its code (METAR, CAP): the choice labels would read "Metar"."""

    title = "source"
    parameter_name = "source"

    def lookups(self, request, model_admin):
        return [(code, code) for code in AlertSource.values]

    def queryset(self, request, queryset):
        return queryset.filter(source=self.value()) if self.value() else queryset


# --- intermediate action pages ------------------------------------------------------------


def action_page(modeladmin, request, queryset, *, form, title: str, action: str, button: str, note: str = ""):
    """Ask for the action's input (or a confirmation) on a page that posts back to the
    changelist with the same selection, as Django's delete confirmation does."""
    return TemplateResponse(
        request,
        "admin_portal/action_form.html",
        {
            **modeladmin.admin_site.each_context(request),
            "title": title,
            "opts": modeladmin.model._meta,
            "form": form,
            "objects": list(queryset[:20]),
            "count": queryset.count() if request.POST.get("select_across") != "1" else None,
            "action": action,
            "button": button,
            "note": note,
            "selected": request.POST.getlist(helpers.ACTION_CHECKBOX_NAME),
            "select_across": request.POST.get("select_across", "0"),
        },
    )


def action_input(modeladmin, request, queryset, form_class, *, title: str, action: str, button: str, note: str = ""):
    """(the submitted, valid form, None), or (None, the page that asks for it): on the first
    visit and after an invalid submission the action returns that page."""
    form = form_class(request.POST) if "apply" in request.POST else None
    if form is not None and form.is_valid():
        return form, None
    page = action_page(modeladmin, request, queryset, form=form or form_class(), title=title, action=action, button=button, note=note)
    return None, page


def _flight_of(booking: Booking) -> Flight | None:
    """The booking's (prefetched) flight, or None while the projection has not got it yet."""
    try:
        return booking.flight
    except Flight.DoesNotExist:
        return None


def _staff_name(request) -> str:
    return request.user.get_username()


# --- model admins -------------------------------------------------------------------------


@admin.register(Airport)
class AirportAdmin(ReadModelAdmin):
    list_display = ["iata", "name", "city", "country", "tz", "bookings_through"]
    list_filter = ["country"]
    search_fields = ["^iata", "^city", "^name"]

    @admin.display(description="bookings")
    def bookings_through(self, airport):
        url = reverse("admin:admin_portal_booking_changelist") + "?" + urlencode({"city": airport.city})
        return format_html('<a href="{}">through {}</a>', url, airport.city)


@admin.register(Customer)
class CustomerAdmin(ReadModelAdmin):
    list_display = ["customer_id", "full_name", "email", "mobile", "bookings", "updated"]
    exclude = PROJECTION_INTERNALS
    search_fields = ["^customer_id", "^full_name"]
    list_filter = [date_range_filter("created_at", "registered")]

    def get_queryset(self, request):
        return super().get_queryset(request).filter(deleted=False)

    @admin.display(description="updated", ordering="updated_at")
    def updated(self, customer):
        return display.utc_html(customer.updated_at, short=True)

    @admin.display(description="bookings")
    def bookings(self, customer):
        url = reverse("admin:admin_portal_booking_changelist") + "?" + urlencode({"q": customer.customer_id})
        return format_html('<a href="{}">bookings</a>', url)


def route_of(obj) -> str:
    return " → ".join(
        [
            obj.origin_id if isinstance(obj, Flight) else obj.origin,
            *obj.transfers,
            obj.destination_id if isinstance(obj, Flight) else obj.destination,
        ]
    )


def flight_page_url(flight_key: str) -> str:
    return reverse("admin:admin_portal_flight_change", args=[quote(flight_key)])


def flight_page_link(flight_key: str, number: str, day_text: str) -> str:
    """A flight number linking to its flight page, its date muted beside it."""
    return format_html('<a href="{}">{}</a> <span class="muted">{}</span>', flight_page_url(flight_key), number, day_text)


def flight_times(
    flight: Flight, *, departure: str | None = None, arrival: str | None = None
) -> tuple[display.LocalTime, display.LocalTime]:
    """Departure (at the origin) and arrival (at the destination), local; the current
    schedule unless other HH:MM times are given."""
    departs = time.fromisoformat(departure) if departure else flight.departure_time
    arrives = time.fromisoformat(arrival) if arrival else flight.arrival_time
    day = flight.flight_date
    return (
        display.at_airport(day=day, at=departs, airport=flight.origin_id),
        display.at_airport(day=display.arrival_day(day=day, departs=departs, arrives=arrives), at=arrives, airport=flight.destination_id),
    )


def today_at_home() -> date:
    """The first flight date that is still today somewhere (local dates run from UTC-12 to
    UTC+14), so a list opening on "today" hides no flight that has not flown yet."""
    return (timezone.now() - timedelta(hours=12)).date()


class OpensOnToday:
    """A list that opens on today's rows: with no query at all, redirect to
    `?<field>__from=<today>`. A "from" the user set, or an empty one (`?<field>__from=`: every
    date), is kept."""

    opens_on: str = ""

    def changelist_view(self, request, extra_context=None):
        if not request.GET and request.method == "GET":
            return HttpResponseRedirect(f"{request.path}?{urlencode({f'{self.opens_on}__from': today_at_home().isoformat()})}")
        return super().changelist_view(request, extra_context)


@admin.register(Flight)
class FlightAdmin(OpensOnToday, ReadModelAdmin):
    list_display = ["flight", "status_badge", "departure", "arrival", "route", "load", "passengers"]
    list_display_links = None
    list_filter = ["status", date_range_filter("flight_date", "flight date")]
    search_fields = ["flight_number"]
    search_help_text = "a flight number (prefix), or a city or IATA code the flight touches"
    # The route shows codes only: no join (an airport missing from the table would hide the flight).
    list_select_related = False
    actions = ["cancel_flights", "reschedule_flights"]
    ordering = ["flight_date", "departure_time", "flight_number"]
    opens_on = "flight_date"

    def get_search_results(self, request, queryset, search_term):
        return selectors.flight_search(flights=queryset, term=search_term), False

    @admin.display(description="flight", ordering="flight_date")
    def flight(self, flight):
        return flight_page_link(flight.pk, flight.flight_number, f"{flight.flight_date:%a %d %b}")

    @admin.display(description="status", ordering="status")
    def status_badge(self, flight):
        return display.badge(flight.status)

    @admin.display(description="departs (local)", ordering="departure_time")
    def departure(self, flight):
        return display.time_html(flight_times(flight)[0])

    @admin.display(description="arrives (local)")
    def arrival(self, flight):
        return display.time_html(flight_times(flight)[1])

    @admin.display(description="route")
    def route(self, flight):
        return route_of(flight)

    @admin.display(description="load")
    def load(self, flight):
        return f"{flight.seats_booked}/{flight.capacity}"

    @admin.display(description="passengers")
    def passengers(self, flight):
        return format_html('<a href="{}#passengers">passengers</a>', flight_page_url(flight.pk))

    # --- the flight page: the hub for one flight ----------------------------------------

    def get_urls(self):
        # Before the admin's own: its "<path:object_id>/" would swallow ".../cancel/".
        actions = [
            path(f"<path:object_id>/{name}/", self.admin_site.admin_view(view), name=f"admin_portal_flight_{name}")
            for name, view in (("cancel", self.cancel_view), ("delay", self.delay_view), ("notify", self.notify_view))
        ]
        return actions + super().get_urls()

    def _flight_or_redirect(self, request, object_id):
        flight = self.get_object(request, unquote(object_id))
        if flight is None:
            return None, self._get_obj_does_not_exist_redirect(request, self.opts, object_id)
        if not self.has_view_permission(request, flight):
            raise PermissionDenied
        return flight, None

    def change_view(self, request, object_id, form_url="", extra_context=None):
        flight, missing = self._flight_or_redirect(request, object_id)
        if missing:
            return missing
        booked = selectors.flight_booked_schedule(flight=flight)
        paginator = Paginator(selectors.flight_passenger_list(flight=flight), 50)
        page = paginator.get_page(request.GET.get("page"))
        context = {
            **self.admin_site.each_context(request),
            **self._flight_context(flight),
            "title": f"{flight.flight_number} on {flight.flight_date:%a %d %b %Y}",
            "schedule": {
                "booked": flight_times(flight, departure=booked["departure_time"], arrival=booked["arrival_time"]),
                "now": flight_times(flight),
            },
            "passengers": [(booking, selectors.customer_of(booking)) for booking in page],
            "page": page,
            "events": [(event, self._event_change(flight, event)) for event in selectors.flight_event_list(flight=flight)[:50]],
            "notices": selectors.flight_notice_summary(flight=flight),
            "staff_actions": LogEntry.objects.filter(
                content_type=ContentType.objects.get_for_model(Flight), object_id=flight.pk
            ).select_related("user")[:20],
        }
        return TemplateResponse(request, "admin_portal/flight_page.html", context)

    def _flight_context(self, flight: Flight) -> dict:
        return {
            "opts": self.opts,
            "flight": flight,
            "route": route_of(flight),
            "counts": selectors.flight_passenger_counts(flight=flight),
            "flight_url": flight_page_url(flight.pk),
            "zones": {
                "origin": display.airport_zone(flight.origin_id).key,
                "destination": display.airport_zone(flight.destination_id).key,
            },
        }

    @staticmethod
    def _event_change(flight: Flight, event: FlightEvent) -> str:
        """What an event changed, in words: "cancelled", or the times before and after."""
        if event.kind == "CANCELLED":
            return "cancelled"
        before, after = (event.detail or {}).get("from", {}), (event.detail or {}).get("to", {})

        def hhmm(schedule: dict, name: str) -> str:
            return (schedule.get(name) or "?")[:5]  # the images carry HH:MM:SS

        return (
            f"departure {hhmm(before, 'departure_time')} → {hhmm(after, 'departure_time')}, "
            f"arrival {hhmm(before, 'arrival_time')} → {hhmm(after, 'arrival_time')} (local)"
        )

    def _action_page(self, request, flight, *, form, title: str, button: str, reach: str, danger: bool = False):
        context = {
            **self.admin_site.each_context(request),
            **self._flight_context(flight),
            "title": title,
            "form": form,
            "button": button,
            "reach": reach,
            "danger": danger,
        }
        return TemplateResponse(request, "admin_portal/flight_action.html", context)

    def _issue(self, request, flight, command, *, done: str, **kwargs) -> bool:
        try:
            command(flight_number=flight.flight_number, flight_date=flight.flight_date.isoformat(), **kwargs)
        except DomainError as exc:
            self.message_user(request, f"{flight}: {exc.message}", messages.ERROR)
            return False
        self.log_change(request, flight, done)
        self.message_user(request, f"{done}. The page shows it once the change has come through the CDC.", messages.SUCCESS)
        return True

    def cancel_view(self, request, object_id):
        flight, missing = self._flight_or_redirect(request, object_id)
        if missing:
            return missing
        counts = selectors.flight_passenger_counts(flight=flight)
        form = ConfirmForm(request.POST if request.method == "POST" else None)
        if request.method == "POST" and form.is_valid():
            self._issue(request, flight, commands.flight_cancel, done=f"Cancelled {flight}")
            return HttpResponseRedirect(flight_page_url(flight.pk))
        reach = _reach(counts, what="are told by email that the flight is cancelled")
        return self._action_page(
            request, flight, form=form, title=f"Cancel {flight}", button="Cancel this flight", reach=reach, danger=True
        )

    def delay_view(self, request, object_id):
        flight, missing = self._flight_or_redirect(request, object_id)
        if missing:
            return missing
        counts = selectors.flight_passenger_counts(flight=flight)
        zones = self._flight_context(flight)["zones"]
        current = {"departure_time": f"{flight.departure_time:%H:%M}", "arrival_time": f"{flight.arrival_time:%H:%M}"}
        form = FlightDelayForm(request.POST if request.method == "POST" else None, initial=current, current=current, zones=zones)
        if request.method == "POST" and form.is_valid():
            data = form.cleaned_data
            done = f"Delayed {flight}: departs {data['departure_time']}, arrives {data['arrival_time']} (local); reason: {data['reason']}"
            self._issue(
                request,
                flight,
                commands.flight_reschedule,
                done=done,
                departure_time=data["departure_time"],
                arrival_time=data["arrival_time"],
            )
            return HttpResponseRedirect(flight_page_url(flight.pk))
        reach = _reach(counts, what="are told by email the new times")
        return self._action_page(request, flight, form=form, title=f"Delay {flight}", button="Delay this flight", reach=reach)

    def notify_view(self, request, object_id):
        flight, missing = self._flight_or_redirect(request, object_id)
        if missing:
            return missing
        counts = selectors.flight_passenger_counts(flight=flight)
        form = NotifyForm(request.POST if request.method == "POST" else None)
        if request.method == "POST" and form.is_valid():
            subject, message = form.cleaned_data["subject"], form.cleaned_data["message"]
            result = services.passengers_notify(
                bookings=selectors.flight_bookings(flight=flight).order_by("order_id"),
                reason=services.message_reason(subject=subject, message=message),
                subject=subject,
                message=message,
                sent_by=_staff_name(request),
            )
            self.log_change(request, flight, f"Notified passengers: {subject}")
            self.message_user(
                request,
                f"Sent {result.sent}, skipped {result.skipped} (already sent this message), failed {result.failed}.",
                messages.SUCCESS,
            )
            for error in result.errors[:10]:
                self.message_user(request, error, messages.WARNING)
            return HttpResponseRedirect(flight_page_url(flight.pk))
        reach = _reach(counts, what="receive this message, each at most once")
        return self._action_page(request, flight, form=form, title=f"Notify the passengers of {flight}", button="Send", reach=reach)

    # --- bulk actions on the flight list --------------------------------------------------

    def _command(self, request, queryset, command, **kwargs) -> None:
        done, errors = 0, []
        for flight in queryset:
            try:
                command(flight_number=flight.flight_number, flight_date=flight.flight_date.isoformat(), **kwargs)
                done += 1
            except DomainError as exc:
                errors.append(f"{flight}: {exc.message}")
        if done:
            self.message_user(
                request,
                f"{done} flight(s) changed on the command side; the lists update when the change arrives through the CDC.",
                messages.SUCCESS,
            )
        for error in errors:
            self.message_user(request, error, messages.ERROR)

    @admin.action(description="Cancel the selected flights (notifies their passengers)")
    def cancel_flights(self, request, queryset):
        affected = selectors.flights_affected_count(flights=queryset)
        note = f"{affected} passenger(s) hold a booking on these flights; each is notified once the cancellation reaches the query side."
        _, page = action_input(
            self, request, queryset, ConfirmForm, title="Cancel flights", action="cancel_flights", button="Cancel these flights", note=note
        )
        if page:
            return page
        self._command(request, queryset, commands.flight_cancel)
        return None

    @admin.action(description="Delay / reschedule the selected flights")
    def reschedule_flights(self, request, queryset):
        affected = selectors.flights_affected_count(flights=queryset)
        note = f"New times are local at each flight's airports; {affected} passenger(s) hold a booking and are notified of new times."
        form, page = action_input(
            self,
            request,
            queryset,
            RescheduleForm,
            title="Delay or reschedule flights",
            action="reschedule_flights",
            button="Reschedule",
            note=note,
        )
        if page:
            return page
        changes = {name: value for name, value in form.cleaned_data.items() if value not in (None, "")}
        self._command(request, queryset, commands.flight_reschedule, **changes)
        return None


def _reach(counts: selectors.PassengerCounts, *, what: str) -> str:
    """What an action on a flight reaches, said before it is confirmed."""
    text = f"{counts.ordered} passenger(s) holding a booking {what}."
    if counts.no_email:
        text += f" {counts.no_email} of them have no email address on file: their notice is recorded as failed."
    return text


@admin.register(Booking)
class BookingAdmin(OpensOnToday, ReadModelAdmin):
    # What an ops person acts on first: the booking's state, its flight's state and current
    # departure; then which flight and who.
    list_display = ["status_badge", "flight_status", "departure", "flight_link", "route", "customer_link", "order", "booked"]
    exclude = PROJECTION_INTERNALS
    list_display_links = None
    list_filter = [
        "status",
        FlightPassengersFilter,
        ThroughCityFilter,
        WeatherAffectedFilter,
        date_range_filter("flight_date", "flight date"),
        date_range_filter("created_at", "booked"),
    ]
    search_fields = ["order_id"]  # shows the box; `selectors.booking_search` does the searching
    search_help_text = "a flight number, a city or IATA code (transfers included), a customer id or name, or an order id"
    # The customer is prefetched, not joined: a booking may be projected before its customer,
    # and an inner join (what list_select_related does for a required key) would hide it.
    list_select_related = False
    actions = ["notify_passengers"]
    opens_on = "flight_date"  # bookings of flights from today; "clear" on the date shows every date

    def get_queryset(self, request):
        # The flight is prefetched too (for its current status and times), for the same reason.
        return super().get_queryset(request).filter(deleted=False).prefetch_related("customer", "flight")

    def get_ordering(self, request):
        """Newest first for browsing; a selection or search is ordered the way its index is,
        so a page is sorted from the index without reading every matching row."""
        term = request.GET.get("q", "").strip()
        kind = selectors.booking_search_parse(term=term).kind if term else None
        if request.GET.get("flight_number") or kind == "flight":
            return ["flight_number", "flight_date", "status", "order_id"]
        if request.GET.get("city") or request.GET.get("weather") or kind == "place":
            return self._index_order("flight_id", request)
        if kind == "customer":
            return self._index_order("customer_id", request)
        return super().get_ordering(request)

    @staticmethod
    def _index_order(leading: str, request) -> list[str]:
        """The passenger indexes are (leading, status, deleted, +order_id). MariaDB reads them in
        ORDER BY order, without a sort, when the ORDER BY skips exactly the columns an equality
        fixes: the status when the status filter is on, else none (deleted is always fixed, but
        with a free status it must be named to keep the index order)."""
        if request.GET.get("status__exact"):
            return [leading, "order_id"]
        return [leading, "status", "deleted", "order_id"]

    def get_search_results(self, request, queryset, search_term):
        return selectors.booking_search(bookings=queryset, term=search_term), False

    @admin.display(description="status", ordering="status")
    def status_badge(self, booking):
        return display.badge(booking.status)

    @admin.display(description="flight status")
    def flight_status(self, booking):
        flight = _flight_of(booking)
        return display.badge(flight.status) if flight else format_html('<span class="muted">{}</span>', "not projected yet")

    @admin.display(description="departs (local)")
    def departure(self, booking):
        """The flight's current departure; the booked one beside it when it moved."""
        flight = _flight_of(booking)
        if flight is None:
            return display.time_html(display.at_airport(day=booking.flight_date, at=booking.departure_time, airport=booking.origin))
        moment = flight_times(flight)[0]
        if flight.departure_time != booking.departure_time:
            return display.time_html(
                moment, extra=format_html(' <s class="muted" title="booked">{}</s>', f"{booking.departure_time:%H:%M}")
            )
        return display.time_html(moment)

    @admin.display(description="flight", ordering="flight_date")
    def flight_link(self, booking):
        return flight_page_link(booking.flight_id, booking.flight_number, f"{booking.flight_date:%d %b}")

    @admin.display(description="passenger", ordering="customer_id")
    def customer_link(self, booking):
        url = reverse("admin:admin_portal_customer_change", args=[quote(booking.customer_id)])
        customer = selectors.customer_of(booking)
        name = customer.full_name if customer else f"{booking.customer_id} (not projected yet)"
        return format_html('<a href="{}" title="{}">{}</a>', url, booking.customer_id, name)

    @admin.display(description="route")
    def route(self, booking):
        return route_of(booking)

    @admin.display(description="order", ordering="order_id")
    def order(self, booking):
        """The first 8 characters, like a short commit hash; the whole id on hover."""
        return display.short_id(booking.order_id)

    @admin.display(description="booked", ordering="created_at")
    def booked(self, booking):
        return display.utc_html(booking.created_at, short=True)

    @admin.action(description="Notify the selected passengers")
    def notify_passengers(self, request, queryset):
        note = "Each passenger receives this message at most once; those already sent it are skipped."
        form, page = action_input(
            self, request, queryset, NotifyForm, title="Notify passengers", action="notify_passengers", button="Send", note=note
        )
        if page:
            return page
        subject, message = form.cleaned_data["subject"], form.cleaned_data["message"]
        result = services.passengers_notify(
            bookings=queryset.order_by("order_id"),
            reason=services.message_reason(subject=subject, message=message),
            subject=subject,
            message=message,
            sent_by=_staff_name(request),
        )
        self.message_user(
            request, f"Sent {result.sent}, skipped {result.skipped} (already notified), failed {result.failed}.", messages.SUCCESS
        )
        for error in result.errors[:10]:
            self.message_user(request, error, messages.WARNING)
        return None


@admin.register(WeatherAlert)
class WeatherAlertAdmin(FastAdmin):
    list_display = ["state", "place", "kind", "severity", "starts", "ends", "affected", "headline_short", "source_label"]
    list_display_links = ["place"]
    list_filter = [AlertValidityFilter, "severity", "kind", AlertSourceFilter, date_range_filter("valid_from", "starts")]
    search_fields = ["^city", "^airport__iata", "headline"]
    list_select_related = ["airport"]
    fields = ["city", "country", "airport", "kind", "severity", "valid_from", "valid_to", "headline", "raw_text", "source", "source_id"]
    readonly_fields = ["source", "source_id"]
    raw_id_fields = ["airport"]
    actions = ["notify_affected", "expire_now"]

    def formfield_for_dbfield(self, db_field, request, **kwargs):
        """The date and the time box of a split date-time share one label: each gets its own
        accessible name, and the date's says which zone the time is in."""
        field = super().formfield_for_dbfield(db_field, request, **kwargs)
        if db_field.name in ("valid_from", "valid_to") and field is not None:
            date_box, time_box = field.widget.widgets
            date_box.attrs["aria-label"] = f"{db_field.verbose_name}: date (UTC)"
            time_box.attrs["aria-label"] = f"{db_field.verbose_name}: time (UTC)"
            field.help_text = "in UTC"
        return field

    @admin.display(description="state")
    def state(self, alert):
        return display.badge(display.alert_state(alert))

    @admin.display(description="city / airport", ordering="city")
    def place(self, alert):
        return f"{alert.city} ({alert.airport_id})" if alert.airport_id else alert.city

    @admin.display(description="from (local)", ordering="valid_from")
    def starts(self, alert):
        return display.alert_time_html(alert, alert.valid_from)

    @admin.display(description="to (local)", ordering="valid_to")
    def ends(self, alert):
        return display.alert_time_html(alert, alert.valid_to)

    @admin.display(description="affected")
    def affected(self, alert):
        """How many ORDERED bookings the alert touches, linked to them."""
        count, more = selectors.weather_alert_affected_count(alert=alert)
        url = reverse("admin:admin_portal_booking_changelist") + "?" + urlencode({"weather": alert.pk, "status__exact": "ORDERED"})
        return format_html('<a href="{}">{}{} passenger{}</a>', url, count, "+" if more else "", "" if count == 1 else "s")

    @admin.display(description="headline")
    def headline_short(self, alert):
        return format_html('<span class="clip" title="{}">{}</span>', alert.headline, alert.headline or "-")

    @admin.display(description="source", ordering="source")
    def source_label(self, alert):
        return alert.source  # the code itself (METAR, CAP): the choice labels would read "Metar"

    @admin.action(description="Notify everyone affected by the selected alerts")
    def notify_affected(self, request, queryset):
        note = (
            "Passengers holding a booking on a flight that touches the alerted place while the alert is valid; each at most once per alert."
        )
        form, page = action_input(
            self,
            request,
            queryset,
            WeatherNotifyForm,
            title="Notify affected passengers",
            action="notify_affected",
            button="Send",
            note=note,
        )
        if page:
            return page
        for alert in queryset:
            result = services.weather_alert_notify(alert=alert, message=form.cleaned_data["message"], sent_by=_staff_name(request))
            self.message_user(request, f"{alert}: sent {result.sent}, skipped {result.skipped}, failed {result.failed}.", messages.SUCCESS)
        return None

    @admin.action(description="Expire the selected alerts now")
    def expire_now(self, request, queryset):
        expired = sum(services.weather_alert_expire(alert=alert) for alert in queryset)
        self.message_user(request, f"Expired {expired} of {len(queryset)} (the others had already ended).", messages.SUCCESS)


@admin.register(Notification)
class NotificationAdmin(ReadModelAdmin):
    list_display = ["sent", "status_badge", "recipient", "subject_short", "flight_link", "customer_id", "sent_by"]
    list_display_links = ["sent"]
    list_filter = ["status", date_range_filter("created_at", "sent")]
    search_fields = ["^reason", "=customer_id", "=booking_id"]

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("booking")

    @admin.display(description="sent", ordering="created_at")
    def sent(self, notification):
        return display.utc_html(notification.created_at, short=True)

    @admin.display(description="status", ordering="status")
    def status_badge(self, notification):
        return display.badge(notification.status)

    @admin.display(description="subject")
    def subject_short(self, notification):
        return format_html('<span class="clip" title="{}">{}</span>', notification.reason, notification.subject)

    @admin.display(description="flight")
    def flight_link(self, notification):
        try:
            booking = notification.booking
        except Booking.DoesNotExist:
            return "-"
        return format_html(
            '<a href="{}">{} {}</a>', flight_page_url(booking.flight_id), booking.flight_number, f"{booking.flight_date:%d %b}"
        )


@admin.register(FlightEvent)
class FlightEventAdmin(ReadModelAdmin):
    list_display = ["recorded", "flight_link", "kind", "notices_done"]
    list_display_links = ["recorded"]
    list_filter = ["kind", ("processed_at", admin.EmptyFieldListFilter)]
    search_fields = ["^flight_id"]

    @admin.display(description="recorded", ordering="created_at")
    def recorded(self, event):
        return display.utc_html(event.created_at, short=True)

    @admin.display(description="flight")
    def flight_link(self, event):
        number, _, day = event.flight_id.partition("#")
        return format_html('<a href="{}">{} {}</a>', flight_page_url(event.flight_id), number, day)

    @admin.display(description="notices done", ordering="processed_at")
    def notices_done(self, event):
        return display.utc_html(event.processed_at, short=True) if event.processed_at else "still open (late bookings are notified too)"


@admin.register(ShardCheckpoint)
class OperationsAdmin(NoWrites, admin.ModelAdmin):
    """Its changelist is the operations page: CDC checkpoints and lag, the dead-letter queue."""

    def changelist_view(self, request, extra_context=None):
        if not self.has_view_permission(request):
            raise PermissionDenied
        if request.method == "POST":
            self._dlq_command(request)
            return HttpResponseRedirect(request.path)
        context = {
            **self.admin_site.each_context(request),
            "title": "Operations: CDC and dead letters",
            "opts": self.model._meta,
            "lags": operations.checkpoint_lags(),
            "dlq": operations.dlq_state(),
            "consistency": operations.consistency_state(),
            "pending_events": FlightEvent.objects.filter(processed_at__isnull=True).count(),
            **operations.weather_status(),
            "metrics": observability.snapshot(),  # the counters CloudWatch gets as EMF on AWS
        }
        return TemplateResponse(request, "admin_portal/operations.html", context)

    def _dlq_command(self, request) -> None:
        command = request.POST.get("command")
        ids = set(request.POST.getlist("message_id"))
        try:
            if command == "redrive":
                result = operations.dlq_redrive(message_ids=ids or None)
                self.message_user(request, f"Redrive: {result.applied} applied, {len(result.failed)} still failing.", messages.SUCCESS)
                for failure in result.failed[:10]:
                    # Not the bare "<message id>: ...": the admin capitalises a message's first
                    # letter, and an SQS message id is case-sensitive.
                    self.message_user(request, f"Letter {failure}", messages.WARNING)
            elif command == "delete" and ids:
                self.message_user(request, f"Deleted {operations.dlq_delete(message_ids=ids)} letter(s).", messages.SUCCESS)
            elif command == "purge":
                operations.dlq_purge()
                self.message_user(request, "Dead-letter queue purged.", messages.SUCCESS)
            else:
                self.message_user(request, "Unknown command.", messages.ERROR)
        except operations.AWS_ERRORS as exc:
            self.message_user(request, f"AWS refused: {exc}", messages.ERROR)


@admin.register(ReconcileRun)
class ReconcileRunAdmin(ReadModelAdmin):
    """What `reconcile` found, newest first: the scheduled check's history."""

    list_display = ["finished_at", "items", "differences", "repaired", "summary"]

    @admin.display(description="differences by entity")
    def summary(self, run: ReconcileRun) -> str:
        counts = run.detail.get("counts", {})
        return (
            "; ".join(f"{entity.lower()}: " + ", ".join(f"{kind} {n}" for kind, n in kinds.items()) for entity, kinds in counts.items())
            or "none"
        )
