from django.core.management.base import BaseCommand

from cdc_lambda import bridge, lifecycle


class Command(BaseCommand):
    help = "Local stand-in for DynamoDB's Kinesis streaming destination: table stream -> Kinesis. Restart-safe; stops on SIGINT/SIGTERM."

    def add_arguments(self, parser):
        parser.add_argument("--once", action="store_true", help="bridge what is there, then exit")

    def handle(self, *args, once: bool = False, **options):
        bridged = bridge.run(once=once, stop=lifecycle.stop_on_signals())
        self.stdout.write(f"bridged {bridged} change records")
