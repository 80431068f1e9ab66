"""Where a local consumer is in each shard (ShardCheckpoint), and its heartbeat.

A checkpoint moves only after the work it covers is done (put on Kinesis, or committed and
acknowledged), so a crash between the two repeats work instead of losing it.

A position means something only in the stream instance it was taken in. A stream deleted and
created again under the same name keeps its ARN on AWS (Kinesis), and moto forgets its streams
on every restart: the new instance numbers its records from the start again, so an old position
would skip them. Each checkpoint therefore stores what identifies its instance; a checkpoint of
another instance starts over from TRIM_HORIZON (records repeat, which the projection ignores;
none are skipped).
"""

import logging
from datetime import datetime

from django.db.models import F
from django.utils import timezone

from admin_portal.models import ShardCheckpoint

logger = logging.getLogger(__name__)

BRIDGE, POLLER = "bridge", "poller"


def instance_id(*, created: datetime | str, first_sequence_number: str = "") -> str:
    """What tells one instance of a stream (shard) from another created under the same name."""
    stamp = created.isoformat() if isinstance(created, datetime) else str(created)
    return f"{stamp}|{first_sequence_number}" if first_sequence_number else stamp


def position(*, consumer: str, stream: str, shard_id: str, instance: str) -> str:
    """The last sequence number handled in this instance of the shard ("" = none yet: read from
    TRIM_HORIZON). Creates the row, so an idle consumer still has somewhere to beat its heart."""
    checkpoint, _ = ShardCheckpoint.objects.get_or_create(
        consumer=consumer, stream=stream, shard_id=shard_id, defaults={"stream_instance": instance}
    )
    if checkpoint.stream_instance == instance:
        return checkpoint.sequence_number
    if checkpoint.sequence_number:
        logger.warning(
            "%s checkpoint of %s %s was at %s in stream instance %r, the stream is now instance %r: reset to TRIM_HORIZON",
            consumer,
            stream,
            shard_id,
            checkpoint.sequence_number,
            checkpoint.stream_instance or "unknown",
            instance,
        )
    ShardCheckpoint.objects.filter(pk=checkpoint.pk).update(
        stream_instance=instance, sequence_number="", records=0, last_record_at=None, updated_at=timezone.now()
    )
    return ""


def forget_other_streams(*, consumer: str, stream: str) -> int:
    """Drop a consumer's checkpoints of streams other than `stream` (the table's stream was
    replaced: their positions can never be used again)."""
    deleted, _ = ShardCheckpoint.objects.filter(consumer=consumer).exclude(stream=stream).delete()
    if deleted:
        logger.warning("%s: forgot %d checkpoint(s) of streams other than %s", consumer, deleted, stream)
    return deleted


def advance(*, consumer: str, stream: str, shard_id: str, sequence_number: str, records: int, last_record_at: datetime | None) -> None:
    ShardCheckpoint.objects.filter(consumer=consumer, stream=stream, shard_id=shard_id).update(
        sequence_number=sequence_number,
        records=F("records") + records,
        last_record_at=last_record_at,
        updated_at=timezone.now(),
    )


def heartbeat(*, consumer: str, stream: str) -> None:
    ShardCheckpoint.objects.filter(consumer=consumer, stream=stream).update(updated_at=timezone.now())
