from admin_portal.models import ConsistencyOutcome
from airticket.commands import AwsCommand
from cdc_lambda import consistency


class Command(AwsCommand):
    help = (
        "Compare the command side (DynamoDB) with the read models (live items and versions per entity); "
        "with --repair, bring the read models back in line through the stream."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--repair", action="store_true", help="send what the read model lacks (and REMOVEs for ghosts) through the stream"
        )
        parser.add_argument("--wait", type=float, default=60, help="seconds to wait for the projection to apply the repairs")

    def handle(self, *args, repair, wait, **options):
        result = consistency.check(repair=repair, wait_seconds=wait)
        if result.outcome == ConsistencyOutcome.AGREED:
            self.stdout.write(f"consistency: {result.summary}")
            return
        # Loud on purpose: the user must see that the two sides disagreed and what was done.
        rule = "!" * 100
        self.stdout.write(self.style.ERROR(f"{rule}\nconsistency: {result.summary}\n  examples: {result.examples}\n{rule}"))
