"""When a flight is at each stop of its route, in each airport's own local time.

A flight carries what a timetable prints: `flight_date` and `departure_time` in the origin's
local time, `arrival_time` in the destination's local time, on whatever local date that falls.
The read model needs each stop's local date ("flights through Shanghai on 2 December", and
weather alerts, which are matched per airport by local calendar day). The rule:

- Origin: `flight_date` at `departure_time`, in the origin's time zone.
- Destination: the first `arrival_time` in the destination's time zone after the departure
  instant. A flight lasts less than 24 hours (the longest scheduled today are under 19), so
  that is its arrival. It may be the next local day (PEK 23:30 -> PVG 01:45), two days later
  (LAX 23:00 -> PVG 05:00) or the day before (HND 00:30 -> HNL 12:30, across the date line).
- Transfers have no times in the model: the flight is there at some instant between its
  departure and its arrival, so a transfer stop covers every local date at that airport in
  between (one, or two when the journey passes midnight there), one row per date. A weather
  alert on either day catches the flight: a passenger told once too often rather than missed.
  Such a stop has no local time.
- An airport the airport data does not know is taken in UTC.
"""

import functools
from datetime import date, datetime, time, timedelta
from typing import NamedTuple
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from admin_portal.models import StopKind
from airticket.airports import airports

_UTC = ZoneInfo("UTC")
_DAY = timedelta(days=1)


class Stop(NamedTuple):
    seq: int
    airport: str
    kind: str
    local_date: date
    local_time: time | None  # departure (origin) or arrival (destination); None at a transfer


@functools.cache
def _zone(code: str) -> ZoneInfo:
    name = airports().get(code, {}).get("tz") or "UTC"
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return _UTC


def arrival(departs: datetime, arrival_time: time, zone: ZoneInfo) -> datetime:
    """The first `arrival_time` in `zone` after `departs` (flights last less than a day)."""
    candidate = datetime.combine(departs.astimezone(zone).date() - _DAY, arrival_time, zone)
    while candidate <= departs:
        # Same wall-clock time on the next local day (Python adds to an aware datetime in
        # local time), so a daylight-saving change in between keeps the printed time.
        candidate += _DAY
    return candidate


@functools.lru_cache(maxsize=4096)
def stop_times(route: tuple[str, ...], flight_date: date, departure_time: time, arrival_time: time) -> tuple[Stop, ...]:
    """The stops of a flight on `route` (origin, transfers..., destination), with their local
    dates and times. Cached: a batch repeats few schedules."""
    origin, *transfers, destination = route
    departs = datetime.combine(flight_date, departure_time, _zone(origin))
    arrives = arrival(departs, arrival_time, _zone(destination))
    stops = [Stop(0, origin, StopKind.ORIGIN, flight_date, departure_time)]
    for seq, code in enumerate(transfers, start=1):
        zone = _zone(code)
        first, last = departs.astimezone(zone).date(), arrives.astimezone(zone).date()
        stops += [Stop(seq, code, StopKind.TRANSFER, first + offset * _DAY, None) for offset in range((last - first).days + 1)]
    stops.append(Stop(len(route) - 1, destination, StopKind.DESTINATION, arrives.date(), arrival_time))
    return tuple(stops)
