"""Where a local consumer is in each shard (ShardCheckpoint), and its heartbeat.

A checkpoint moves only after the work it covers is done (put on Kinesis, or committed and
acknowledged), so a crash between the two repeats work instead of losing it.
"""

from datetime import datetime

from django.db.models import F
from django.utils import timezone

from admin_portal.models import ShardCheckpoint

BRIDGE, POLLER = "bridge", "poller"


def position(*, consumer: str, stream: str, shard_id: str) -> str:
    """The last sequence number handled in the shard ("" = none yet). Creates the row, so an
    idle consumer still has somewhere to beat its heart."""
    checkpoint, _ = ShardCheckpoint.objects.get_or_create(consumer=consumer, stream=stream, shard_id=shard_id)
    return checkpoint.sequence_number


def advance(*, consumer: str, stream: str, shard_id: str, sequence_number: str, records: int, last_record_at: datetime | None) -> None:
    ShardCheckpoint.objects.filter(consumer=consumer, stream=stream, shard_id=shard_id).update(
        sequence_number=sequence_number,
        records=F("records") + records,
        last_record_at=last_record_at,
        updated_at=timezone.now(),
    )


def heartbeat(*, consumer: str, stream: str) -> None:
    ShardCheckpoint.objects.filter(consumer=consumer, stream=stream).update(updated_at=timezone.now())
