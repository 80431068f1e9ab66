"""System maintenance commands behind the staff ops endpoints (the ingestor's steps 1 and 2)."""

from django.conf import settings
from django.core.management import call_command

from airticket.errors import DomainError
from airticket.provisioning import provision

from . import repository as repo


class TruncateDisabled(DomainError):
    status_code = 403
    code = "truncate_disabled"


class TruncateBusy(DomainError):
    status_code = 409
    code = "busy"


_TRUNCATE_PASSES = 20


def system_init() -> list[str]:
    """Create what is missing (table, stream, DLQ) and the demo schedule. Idempotent."""
    steps = provision()
    call_command("load_demo_schedule", stdout=_Lines(steps))
    return steps


def data_truncate() -> int:
    """Delete every item in the table. The deletes flow through the CDC like any change, so
    the read models follow. Refused unless AIRTICKET_ALLOW_TRUNCATE is on (local/demo only)."""
    if not settings.AIRTICKET_ALLOW_TRUNCATE:
        raise TruncateDisabled("truncate is disabled here (AIRTICKET_ALLOW_TRUNCATE is off)")
    deleted = 0
    # Scan and delete again until a scan finds nothing: an item written between a scan and its
    # deletes (a booking made meanwhile) is caught by the next scan, not left behind.
    for _ in range(_TRUNCATE_PASSES):
        keys = repo.scan_keys()
        if not keys:
            return deleted
        repo.delete_many(keys)
        deleted += len(keys)
    raise TruncateBusy(f"the table still had items after {_TRUNCATE_PASSES} passes: writes are still coming in")


class _Lines:
    """A stdout for call_command that appends each written line to a list."""

    def __init__(self, lines: list[str]):
        self.lines = lines

    def write(self, text: str) -> None:
        self.lines.extend(line for line in text.splitlines() if line.strip())

    def flush(self) -> None:
        pass
