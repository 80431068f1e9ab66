from django.core.management.base import BaseCommand
from django.db import connection

from admin_portal.models import Airport
from airticket.airports import airports

_FIELDS = ("icao", "name", "city", "subdivision", "country", "tz", "lat", "lon")


def airport_rows() -> list[Airport]:
    return [
        Airport(
            iata=code,
            icao=data["icao"],
            name=data["name"],
            city=data["city"],
            subdivision=data["subd"],
            country=data["country"],
            tz=data["tz"],
            lat=data["lat"],
            lon=data["lon"],
        )
        for code, data in airports().items()
    ]


def load_airports() -> int:
    """Insert or refresh every IATA airport of the `airportsdata` package; safe to re-run."""
    rows = airport_rows()
    # MySQL's ON DUPLICATE KEY UPDATE takes no conflict target; SQLite and PostgreSQL need one.
    target = None if connection.features.supports_update_conflicts_with_target is False else ["iata"]
    Airport.objects.bulk_create(rows, batch_size=2000, update_conflicts=True, unique_fields=target, update_fields=list(_FIELDS))
    return len(rows)


class Command(BaseCommand):
    help = "Load (or refresh) the Airport read model from the airportsdata package. Idempotent."

    def handle(self, *args, **options):
        self.stdout.write(f"{load_airports()} airports loaded")
