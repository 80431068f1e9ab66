from django.core.management.base import BaseCommand

from airticket import local


class Command(BaseCommand):
    help = "Start the whole local system (moto, bridge, CDC poller, notifier, web) in the foreground."
    requires_system_checks = []

    def handle(self, *args, **options):
        raise SystemExit(local.run(self.stdout))
