from django.core.management.base import BaseCommand, CommandError

from airticket.auth import CUSTOMER, STAFF, STAFF_ID, issue_token
from bookings.serializers import CUSTOMER_ID


class Command(BaseCommand):
    help = "Print a bearer token: --staff [NAME] (a staff identity; a new one when unnamed), or --customer ID."

    def add_arguments(self, parser):
        group = parser.add_mutually_exclusive_group(required=True)
        group.add_argument("--staff", nargs="?", const="", metavar="NAME", help="staff identity the token acts as")
        group.add_argument("--customer", metavar="ID")

    def handle(self, *args, staff=None, customer=None, **options):
        if staff is not None:
            if staff and not STAFF_ID.fullmatch(staff):
                raise CommandError("staff name: 1-64 letters, digits, '.', '@', '-' or '_'")
            self.stdout.write(issue_token(role=STAFF, staff_id=staff or None))
            return
        if not CUSTOMER_ID.fullmatch(customer):
            raise CommandError("customer id: 1-64 letters, digits, '-' or '_'")
        self.stdout.write(issue_token(role=CUSTOMER, customer_id=customer))
