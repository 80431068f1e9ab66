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
from django.contrib.admin.options import IncorrectLookupParameters, ShowFacets
from django.core.exceptions import PermissionDenied
from django.db import connection
from django.db.models import DateTimeField
from django.http import HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone
from django.utils.functional import cached_property
from django.utils.html import format_html
from django.utils.http import urlencode

from airticket import observability
from airticket.errors import DomainError
from bookings import services as commands

from . import operations, selectors, services
from .filters import PassengerFilter
from .forms import ConfirmForm, NotifyForm, RescheduleForm, WeatherNotifyForm
from .models import Airport, Booking, Customer, Flight, FlightEvent, Notification, ReconcileRun, ShardCheckpoint, WeatherAlert
from .pagination import DeferredJoinPaginator

admin.site.site_header = "Air-ticket staff portal"
admin.site.site_title = "Air-ticket staff"
admin.site.index_title = "Bookings, flights, weather and operations"


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


# --- list filters -------------------------------------------------------------------------


class FormFilter(admin.ListFilter):
    """A sidebar filter rendered as a small GET form (free text and dates, not a fixed list)."""

    template = "admin_portal/form_filter.html"
    inputs: tuple[tuple[str, str, str], ...] = ()  # (query parameter, label, input type)

    def __init__(self, request, params, model, model_admin):
        super().__init__(request, params, model, model_admin)
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
        hidden = [(key, value) for key, values in changelist.params.items() if key not in mine for value in values]
        yield {
            "inputs": [(name, label, kind, self.used_parameters.get(name, "")) for name, label, kind in self.inputs],
            "hidden": hidden,
            "clear_url": changelist.get_query_string(remove=list(mine)),
            "active": bool(self.used_parameters),
        }

    def queryset(self, request, queryset):
        if not self.used_parameters:
            return queryset
        return self.apply(queryset, self.used_parameters)

    def apply(self, queryset, values: dict):
        raise NotImplementedError


def _passenger_query(values: dict) -> dict:
    """Validate like the query API does (same FilterSet), or refuse the lookup."""
    filterset = PassengerFilter(data=values, queryset=Booking.objects.none())
    if not filterset.is_valid():
        raise IncorrectLookupParameters(filterset.errors)
    return filterset.form.cleaned_data


class FlightPassengersFilter(FormFilter):
    title = "passengers of a flight"
    inputs = (("flight_number", "flight number", "text"), ("flight_date", "date", "date"))

    def apply(self, queryset, values):
        data = _passenger_query({**values, "flight_number": values.get("flight_number", "").upper()})
        return queryset.filter(flight_number=data["flight_number"], flight_date=data["flight_date"])


class ThroughCityFilter(FormFilter):
    title = "bookings through a city (incl. transfers)"
    inputs = (("city", "city or IATA code", "text"), ("city_from", "from", "date"), ("city_to", "to", "date"))

    def apply(self, queryset, values):
        if "city" not in values:
            raise IncorrectLookupParameters("give a city")
        data = _passenger_query({"city": values["city"], "date_from": values.get("city_from", ""), "date_to": values.get("city_to", "")})
        airports = selectors.airport_codes_for_place(place=data["city"])
        touching = selectors.flight_keys_touching(airports=airports, date_from=data.get("date_from"), date_to=data.get("date_to"))
        return queryset.filter(flight_id__in=touching) if airports else queryset.none()


class WeatherAffectedFilter(FormFilter):
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
    list_display = ["customer_id", "full_name", "email", "mobile", "version", "updated_at", "bookings"]
    search_fields = ["^customer_id", "^full_name"]
    list_filter = [date_range_filter("created_at", "registered")]

    def get_queryset(self, request):
        return super().get_queryset(request).filter(deleted=False)

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


@admin.register(Flight)
class FlightAdmin(ReadModelAdmin):
    list_display = ["flight_number", "flight_date", "route", "departure_time", "arrival_time", "seats", "status", "passengers"]
    list_filter = ["status", date_range_filter("flight_date", "flight date")]
    search_fields = ["flight_number"]
    search_help_text = "a flight number (prefix), or a city or IATA code the flight touches"
    list_select_related = ["origin", "destination"]
    actions = ["cancel_flights", "reschedule_flights"]
    ordering = ["-flight_date", "flight_number"]

    def get_search_results(self, request, queryset, search_term):
        return selectors.flight_search(flights=queryset, term=search_term), False

    @admin.display(description="route")
    def route(self, flight):
        return route_of(flight)

    @admin.display(description="seats")
    def seats(self, flight):
        return f"{flight.seats_booked}/{flight.capacity}"

    @admin.display(description="passengers")
    def passengers(self, flight):
        url = (
            reverse("admin:admin_portal_booking_changelist")
            + "?"
            + urlencode({"flight_number": flight.flight_number, "flight_date": flight.flight_date.isoformat()})
        )
        return format_html('<a href="{}">passengers</a>', url)

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
        note = "Every passenger holding a booking is notified once the cancellation reaches the query side."
        _, page = action_input(
            self, request, queryset, ConfirmForm, title="Cancel flights", action="cancel_flights", button="Cancel these flights", note=note
        )
        if page:
            return page
        self._command(request, queryset, commands.flight_cancel)
        return None

    @admin.action(description="Delay / reschedule the selected flights")
    def reschedule_flights(self, request, queryset):
        form, page = action_input(
            self, request, queryset, RescheduleForm, title="Delay or reschedule flights", action="reschedule_flights", button="Reschedule"
        )
        if page:
            return page
        changes = {name: value for name, value in form.cleaned_data.items() if value not in (None, "")}
        self._command(request, queryset, commands.flight_reschedule, **changes)
        return None


@admin.register(Booking)
class BookingAdmin(ReadModelAdmin):
    list_display = [
        "order_id",
        "customer_link",
        "customer_name",
        "flight_number",
        "flight_date",
        "route",
        "departure_time",
        "status",
        "created_at",
    ]
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

    def get_queryset(self, request):
        return super().get_queryset(request).filter(deleted=False).prefetch_related("customer")

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

    @admin.display(description="customer", ordering="customer_id")
    def customer_link(self, booking):
        url = reverse("admin:admin_portal_customer_change", args=[booking.customer_id])
        return format_html('<a href="{}">{}</a>', url, booking.customer_id)

    @admin.display(description="name")
    def customer_name(self, booking):
        customer = selectors.customer_of(booking)
        return customer.full_name if customer else "(not projected yet)"

    @admin.display(description="route")
    def route(self, booking):
        return route_of(booking)

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
    list_display = ["id", "place", "kind", "severity", "valid_from", "valid_to", "source", "headline", "passengers"]
    list_filter = [AlertValidityFilter, "severity", "kind", "source", date_range_filter("valid_from", "starts")]
    search_fields = ["^city", "^airport__iata", "headline"]
    list_select_related = ["airport"]
    fields = ["city", "country", "airport", "kind", "severity", "valid_from", "valid_to", "headline", "raw_text", "source", "source_id"]
    readonly_fields = ["source", "source_id"]
    raw_id_fields = ["airport"]
    actions = ["notify_affected", "expire_now"]

    @admin.display(description="city / airport")
    def place(self, alert):
        return f"{alert.city} ({alert.airport_id})" if alert.airport_id else alert.city

    @admin.display(description="passengers")
    def passengers(self, alert):
        url = reverse("admin:admin_portal_booking_changelist") + "?" + urlencode({"weather": alert.pk, "status__exact": "ORDERED"})
        if alert.valid_to <= timezone.now():
            return format_html('<a href="{}">affected</a>', url)
        # Counted for current and coming alerts only: one indexed count per row of the page.
        count = selectors.weather_alert_affected_count(alert=alert)
        shown = f"{count}+" if count >= selectors.AFFECTED_COUNT_LIMIT else count
        return format_html('<a href="{}">{} affected</a>', url, shown)

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
    list_display = ["created_at", "customer_id", "booking_id", "reason", "recipient", "subject", "status", "sent_by"]
    list_filter = ["status", date_range_filter("created_at", "sent")]
    search_fields = ["^reason", "=customer_id", "=booking_id"]


@admin.register(FlightEvent)
class FlightEventAdmin(ReadModelAdmin):
    list_display = ["created_at", "flight_id", "kind", "flight_version", "processed_at"]
    list_filter = ["kind", ("processed_at", admin.EmptyFieldListFilter)]
    search_fields = ["^flight_id"]


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
                    self.message_user(request, failure, messages.WARNING)
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
