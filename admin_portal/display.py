"""How the staff portal shows times and states: every time with its zone.

Flight times are local at the airport (departure at the origin, arrival at the destination),
the way airlines print them; the UTC instant rides along in a `title` (hover) and in the
`datetime` attribute. Instants the system records itself (bookings, notices, events) are shown
in UTC, labelled. The zone comes from the airport data package, not the Airport table, so a
page costs no query per row.
"""

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.utils import timezone
from django.utils.html import format_html
from django.utils.safestring import SafeString

from airticket.airports import airports

from .models import WeatherAlert


def airport_zone(code: str) -> ZoneInfo:
    """The airport's time zone; UTC for a code the airport data does not know."""
    try:
        return ZoneInfo(airports().get(code, {}).get("tz") or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


@dataclass(frozen=True)
class LocalTime:
    local: datetime  # aware, in the airport's zone

    @property
    def label(self) -> str:
        return f"{self.local:%H:%M} {self.local.tzname()}"

    @property
    def utc(self) -> datetime:
        return self.local.astimezone(UTC)

    @property
    def utc_label(self) -> str:
        day = "" if self.utc.date() == self.local.date() else f"{self.utc:%d %b} "
        return f"{day}{self.utc:%H:%M} UTC"


def at_airport(*, day: date, at: time, airport: str) -> LocalTime:
    return LocalTime(datetime.combine(day, at, tzinfo=airport_zone(airport)))


def arrival_day(*, day: date, departs: time, arrives: time) -> date:
    """An arrival clock time before the departure's is on the next day."""
    return day + timedelta(days=1) if arrives < departs else day


def time_html(moment: LocalTime, *, extra: str = "") -> SafeString:
    """`08:00 CST`, with the UTC instant on hover and beside it in small print."""
    return format_html(
        '<time class="local-time" datetime="{}" title="{}">{}{}</time>',
        moment.utc.isoformat().replace("+00:00", "Z"),
        moment.utc_label,
        moment.label,
        extra,
    )


def hhmm_at(*, day: date, hhmm: str, airport: str) -> LocalTime:
    return at_airport(day=day, at=time.fromisoformat(hhmm), airport=airport)


def utc_html(moment: datetime | None, *, short: bool = False) -> SafeString | str:
    """An instant the system recorded, in UTC and labelled so; `short` drops the year (on hover)."""
    if moment is None:
        return "-"
    moment = moment.astimezone(UTC)
    full = f"{moment:%Y-%m-%d %H:%M} UTC"
    text = f"{moment:%d %b %H:%M} UTC" if short else full
    return format_html('<time datetime="{}" title="{}">{}</time>', moment.isoformat().replace("+00:00", "Z"), full, text)


def short_id(value: str, *, length: int = 8) -> SafeString:
    """A long identifier (a 32-character order id) cut short, whole on hover."""
    shown = value if len(value) <= length + 1 else f"{value[:length]}…"
    return format_html('<span class="id" title="{}">{}</span>', value, shown)


def alert_zone(alert: WeatherAlert) -> ZoneInfo:
    """The alerted place's zone: its airport's, or that of the first airport of its city."""
    if alert.airport_id:
        return airport_zone(alert.airport_id)
    for code, data in airports().items():
        if data["city"].casefold() == alert.city.casefold() and (not alert.country or data["country"] == alert.country):
            return airport_zone(code)
    return ZoneInfo("UTC")


def alert_time_html(alert: WeatherAlert, moment: datetime) -> SafeString:
    local = LocalTime(moment.astimezone(alert_zone(alert)))
    return format_html(
        '<time datetime="{}" title="{}">{} {}</time>',
        local.utc.isoformat().replace("+00:00", "Z"),
        f"{local.utc:%Y-%m-%d %H:%M} UTC",
        f"{local.local:%d %b}",
        local.label,
    )


def alert_state(alert: WeatherAlert, *, now: datetime | None = None) -> str:
    """ACTIVE, UPCOMING or EXPIRED (valid_to is excluded: half-open window)."""
    now = now or timezone.now()
    if alert.valid_to <= now:
        return "EXPIRED"
    return "UPCOMING" if alert.valid_from > now else "ACTIVE"


def badge(text: str, *, kind: str | None = None) -> SafeString:
    """A state shown as text and colour (never colour alone)."""
    return format_html('<span class="badge badge-{}">{}</span>', (kind or text).lower(), text)
