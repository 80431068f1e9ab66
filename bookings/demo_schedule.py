"""The demo flight schedule: the original lab's five flights on real airports, plus flights
with transfer stops so city queries have something to find at a transfer."""

from datetime import date, timedelta

from .services import origin_today

DEMO_FLIGHTS = [
    # number, origin, transfers, destination, departs, arrives, capacity
    ("MU5159", "SHA", [], "PEK", "08:00", "10:20", 180),
    ("CZ2801", "CAN", [], "CTU", "09:30", "11:55", 160),
    ("MU2324", "PVG", [], "WUH", "13:10", "15:00", 150),
    ("CZ3243", "CAN", [], "SHA", "16:45", "19:05", 170),
    ("SC4826", "TAO", [], "CKG", "07:20", "10:30", 150),
    ("MU5401", "SHA", ["CTU"], "LXA", "07:05", "14:40", 160),
    ("CA1501", "PEK", ["XIY"], "KMG", "10:15", "16:30", 180),
    ("CZ6901", "URC", ["LHW", "XIY"], "CAN", "06:40", "15:10", 200),
]


def demo_dates(*, start: date | None = None, days: int = 14) -> list[str]:
    """The demo's flight dates, from the first day every demo origin still accepts: a flight is
    dated by its origin's calendar, and in Asia the date can be a day ahead of the UTC one."""
    first = start or max(origin_today(origin=origin) for _, origin, *_ in DEMO_FLIGHTS)
    return [(first + timedelta(days=offset)).isoformat() for offset in range(days)]
