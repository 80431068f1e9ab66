from django.core.management.base import BaseCommand

from airticket import local


class Command(BaseCommand):
    help = "Forget the local system's data (DynamoDB's saved tables, the read database): the next runlocal starts from nothing."
    requires_system_checks = []

    def handle(self, *args, **options):
        raise SystemExit(local.reset(self.stdout))
