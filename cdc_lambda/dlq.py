"""Dead letters: records the projection can never apply (poison) or gave up on (retries
exhausted) go to the SQS DLQ with everything needed to inspect and replay them.

`send` reports how many of the letters, in order, are safely queued, so the caller
acknowledges exactly those and lets the stream deliver the rest again.
"""

import base64
import functools
import json
import logging
from dataclasses import dataclass
from datetime import UTC, datetime

from botocore.exceptions import BotoCoreError, ClientError
from django.conf import settings

from airticket import aws

logger = logging.getLogger(__name__)

POISON = "poison"
RETRIES_EXHAUSTED = "retries_exhausted"
# SQS takes at most 10 messages and 256 KiB per batch call; a change record may be larger
# (two images of a 400 KB item), so the raw data is cut, and the cut is said.
_BATCH_MESSAGES = 10
_BATCH_BYTES = 250_000
_RAW_LIMIT = 200_000


@dataclass(frozen=True, slots=True)
class Letter:
    record: dict  # the Lambda Kinesis record as delivered
    reason: str  # POISON or RETRIES_EXHAUSTED
    error: str


def body(letter: Letter) -> str:
    kinesis = letter.record.get("kinesis") if isinstance(letter.record.get("kinesis"), dict) else {}
    raw = kinesis.get("data")
    raw = raw if isinstance(raw, str) else base64.b64encode(json.dumps(letter.record, default=str).encode()).decode()
    event_id = str(letter.record.get("eventID", ""))
    return json.dumps(
        {
            "reason": letter.reason,
            "error": letter.error,
            "event_source_arn": letter.record.get("eventSourceARN"),
            "shard_id": event_id.rsplit(":", 1)[0] if ":" in event_id else None,
            "sequence_number": kinesis.get("sequenceNumber"),
            "partition_key": kinesis.get("partitionKey"),
            "data": raw[:_RAW_LIMIT],
            "data_truncated": len(raw) > _RAW_LIMIT,
            "failed_at": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        },
        sort_keys=True,
    )


@functools.cache
def _queue_url(queue: str) -> str:
    return aws.sqs().get_queue_url(QueueName=queue)["QueueUrl"]


def _chunks(bodies: list[str]) -> list[list[str]]:
    chunks: list[list[str]] = []
    size = 0
    for text in bodies:
        if not chunks or len(chunks[-1]) == _BATCH_MESSAGES or size + len(text) > _BATCH_BYTES:
            chunks.append([])
            size = 0
        chunks[-1].append(text)
        size += len(text)
    return chunks


def _send_chunk(texts: list[str]) -> int:
    """How many leading messages of the chunk are queued."""
    response = aws.sqs().send_message_batch(
        QueueUrl=_queue_url(settings.DLQ_QUEUE),
        Entries=[{"Id": str(index), "MessageBody": text} for index, text in enumerate(texts)],
    )
    failed = sorted(int(entry["Id"]) for entry in response.get("Failed", []))
    return failed[0] if failed else len(texts)


def send(*, letters: list[Letter]) -> int:
    """Queue the letters in order; returns how many leading ones are safely queued."""
    sent = 0
    for texts in _chunks([body(letter) for letter in letters]):
        try:
            queued = _send_chunk(texts)
        except (BotoCoreError, ClientError) as exc:
            logger.error("DLQ unreachable after %d of %d letters: %s", sent, len(letters), exc)
            _queue_url.cache_clear()  # the queue may have been recreated under another URL
            return sent
        sent += queued
        if queued < len(texts):
            logger.error("DLQ refused a letter after %d of %d", sent, len(letters))
            return sent
    return sent
