"""Demo weather: alerts dated from now, over the demo schedule's cities, so that after the
ingestor's seed the portal has passengers affected by weather to find and notify.

Raised through `services.weather_alert_create` like any manual alert. Each has a source id of
its own for the day, so running the command again the same day changes nothing."""

from dataclasses import dataclass
from datetime import datetime, timedelta

from . import services
from .models import AlertKind, AlertSource, Severity, WeatherAlert


@dataclass(frozen=True)
class DemoAlert:
    city: str
    kind: str
    severity: str
    starts: timedelta  # from now
    lasts: timedelta
    headline: str


DEMO_ALERTS = [
    # Valid now and through tomorrow: MU5159, MU2324, CZ3243 and MU5401 touch Shanghai.
    DemoAlert("Shanghai", AlertKind.TYPHOON, Severity.EXTREME, timedelta(hours=-1), timedelta(hours=40), "Typhoon approaching Shanghai"),
    # Starts later today: CZ2801 lands in Chengdu and MU5401 transfers there.
    DemoAlert("Chengdu", AlertKind.LOW_VISIBILITY, Severity.SEVERE, timedelta(hours=6), timedelta(hours=30), "Dense fog over Chengdu"),
    # Already over: the list marks it expired.
    DemoAlert(
        "Beijing", AlertKind.SNOW, Severity.MODERATE, timedelta(hours=-30), timedelta(hours=20), "Heavy snow at Beijing, now cleared"
    ),
]


def demo_weather_raise(*, now: datetime) -> list[WeatherAlert]:
    day = now.date().isoformat()
    return [
        services.weather_alert_create(
            city=alert.city,
            country="CN",
            kind=alert.kind,
            severity=alert.severity,
            valid_from=now + alert.starts,
            valid_to=now + alert.starts + alert.lasts,
            source=AlertSource.MANUAL,
            source_id=f"demo:{day}:{alert.city}",
            headline=alert.headline,
        )
        for alert in DEMO_ALERTS
    ]
