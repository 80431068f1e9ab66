from django.core.management.base import CommandError

from airticket.commands import AwsCommand
from cdc_lambda import rebuild


class Command(AwsCommand):
    help = (
        "Compare DynamoDB with the read models (missing, stale and extra rows, with sample keys). "
        "Exits 1 when they differ; --repair projects exactly the differing items again."
    )

    def add_arguments(self, parser):
        parser.add_argument("--segments", type=int, default=4)
        parser.add_argument("--only", action="append", choices=sorted(rebuild.ENTITIES))
        parser.add_argument("--repair", action="store_true")

    def handle(self, *args, segments, only, repair, **options):
        if not 1 <= segments <= 64:
            raise CommandError("--segments must be between 1 and 64")
        report = rebuild.reconcile(segments=segments, only=only or (), repair=repair)
        rebuild.report_save(report=report)
        for line in report.lines():
            self.stdout.write(line)
        if repair:
            self.stdout.write(f"repaired {report.repaired}")
        elif report.differences:
            # CommandError exits 1: a scheduled check fails loudly.
            raise CommandError(f"the read models differ from DynamoDB in {report.differences} rows")
