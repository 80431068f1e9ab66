import sys
from pathlib import Path

from django.conf import settings
from django.core.management.base import CommandError

from airticket.commands import AwsCommand
from cdc_lambda import rebuild


class Command(AwsCommand):
    help = (
        "Rebuild the read models from DynamoDB (a parallel consistent Scan, or an S3 export) through the CDC "
        "projection, while the stream keeps flowing; then tombstone rows whose item is gone. Resumes after an interruption."
    )

    def add_arguments(self, parser):
        parser.add_argument("--segments", type=int, default=4, help="parallel Scan segments (TotalSegments), 1-64")
        parser.add_argument("--only", action="append", choices=sorted(rebuild.ENTITIES), help="one entity type (repeatable)")
        parser.add_argument("--from-export", metavar="S3_URL", help="read a DynamoDB JSON table export at s3://bucket/prefix/")
        parser.add_argument("--max-items-per-second", type=float, help="read rate limit over all segments")
        parser.add_argument(
            "--state", type=Path, help="where progress is kept for a resume (default: var/rebuild-<table>.json; 'none' to keep none)"
        )

    def handle(self, *args, segments, only, from_export, max_items_per_second, state, **options):
        if not 1 <= segments <= 64:
            raise CommandError("--segments must be between 1 and 64")
        if max_items_per_second is not None and max_items_per_second <= 0:
            raise CommandError("--max-items-per-second must be positive")
        unready = rebuild.read_database_unready()
        if unready:
            raise CommandError(unready)
        state_path = None if str(state) == "none" else state or Path(settings.BASE_DIR) / "var" / f"rebuild-{settings.DYNAMODB_TABLE}.json"
        try:
            result = rebuild.rebuild(
                segments=segments,
                only=only or (),
                from_export=from_export,
                max_items_per_second=max_items_per_second,
                state_path=state_path,
                out=self._progress,
                tty=self.stdout.isatty(),
            )
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        stones = ", ".join(f"{entity.lower()} {n}" for entity, n in result.tombstoned.items())
        resumed = f", resumed {result.resumed_parts} parts" if result.resumed_parts else ""
        self.stdout.write(f"rebuilt {result.items} items in {result.seconds:.1f} s{resumed}; tombstoned {stones}")

    def _progress(self, line: str) -> None:
        self.stdout.write(line, ending="" if line.startswith("\r") else "\n")
        sys.stdout.flush()
