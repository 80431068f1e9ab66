from django.core.management.base import BaseCommand

from airticket.local import supervisor


class Command(BaseCommand):
    help = "The local system's setup steps, in one process: AWS resources, the read database, airports, demo schedule, staff login."
    requires_system_checks = []

    def add_arguments(self, parser):
        parser.add_argument("--fresh", action="store_true", help="flush the read database after migrating it")

    def handle(self, *args, fresh, **options):
        supervisor.run_steps_here(supervisor.setup_steps(fresh=fresh), self.stdout)
