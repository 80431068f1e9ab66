from django.core.management.base import BaseCommand, CommandError

from airticket.auth import CUSTOMER, STAFF, issue_token
from bookings.serializers import CUSTOMER_ID


class Command(BaseCommand):
    help = "Print a bearer token: --staff, or --customer ID."

    def add_arguments(self, parser):
        group = parser.add_mutually_exclusive_group(required=True)
        group.add_argument("--staff", action="store_true")
        group.add_argument("--customer", metavar="ID")

    def handle(self, *args, staff=False, customer=None, **options):
        if staff:
            self.stdout.write(issue_token(role=STAFF))
            return
        if not CUSTOMER_ID.fullmatch(customer):
            raise CommandError("customer id: 1-64 letters, digits, '-' or '_'")
        self.stdout.write(issue_token(role=CUSTOMER, customer_id=customer))
