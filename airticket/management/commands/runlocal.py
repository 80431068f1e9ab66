from django.core.management.base import BaseCommand

from airticket.local import supervisor


class Command(BaseCommand):
    help = "Start the whole local system (moto, bridge, CDC poller, notifier, web) in the foreground."
    requires_system_checks = []

    def add_arguments(self, parser):
        parser.add_argument(
            "--fresh", action="store_true", help="start from nothing: forget DynamoDB's saved tables, flush the read database"
        )

    def handle(self, *args, fresh, **options):
        raise SystemExit(supervisor.run(self.stdout, fresh=fresh))
