from django.core.management.base import BaseCommand

from airticket.errors import Conflict
from bookings import services
from bookings.demo_schedule import DEMO_FLIGHTS, demo_dates


class Command(BaseCommand):
    help = "Create the demo flights for the next days through the command service (existing ones are kept)."

    def add_arguments(self, parser):
        parser.add_argument("--days", type=int, default=14)

    def handle(self, *args, days, **options):
        created = existing = 0
        for flight_date in demo_dates(days=days):
            for number, origin, transfers, destination, departs, arrives, capacity in DEMO_FLIGHTS:
                try:
                    services.flight_create(
                        flight_number=number,
                        flight_date=flight_date,
                        origin=origin,
                        transfers=transfers,
                        destination=destination,
                        departure_time=departs,
                        arrival_time=arrives,
                        capacity=capacity,
                    )
                    created += 1
                except Conflict:
                    existing += 1
        self.stdout.write(f"demo schedule: {created} flights created, {existing} already there")
