from django.core.management.base import BaseCommand

from airticket.provisioning import provision


class Command(BaseCommand):
    help = "Create the DynamoDB table, Kinesis stream, DLQ and (on AWS) the streaming destination and CDC trigger. Safe to re-run."

    def handle(self, *args, **options):
        for line in provision():
            self.stdout.write(line)
