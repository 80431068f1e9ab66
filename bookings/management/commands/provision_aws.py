from django.core.management.base import BaseCommand

from airticket.provisioning import ensure_alarms, provision


class Command(BaseCommand):
    help = "Create the DynamoDB table, Kinesis stream, DLQ and (on AWS) the streaming destination and CDC trigger. Safe to re-run."

    def add_arguments(self, parser):
        parser.add_argument("--alarms", action="store_true", help="also the CloudWatch alarms, their SNS topic and the dashboard")

    def handle(self, *args, alarms: bool = False, **options):
        for line in provision() + (ensure_alarms() if alarms else []):
            self.stdout.write(line)
