"""Local stand-in for Lambda's Kinesis event source mapping.

Per shard: read a batch (up to CDC_BATCH_SIZE), call the CDC handler with a Lambda-shaped
event, and move the shard's checkpoint (ShardCheckpoint, consumer "poller") only past what the
handler acknowledged. Like the mapping configured in `airticket.provisioning`:
- `batchItemFailures` -> checkpoint up to the lowest failed record, retry from it with backoff;
- the handler raises -> bisect the batch and retry each half;
- still failing after CDC_MAX_RETRIES retries -> dead-letter those records and move on.

At-least-once: a crash after the handler committed but before the checkpoint moved delivers
those records again, which the projection ignores (it goes by item version). The checkpoints'
`updated_at` doubles as the heartbeat /healthz reads.
"""

import base64
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from botocore.exceptions import BotoCoreError, ClientError
from django.conf import settings
from django.db import connection

from airticket import aws

from . import checkpoints, dlq, lifecycle
from .batch import TRANSIENT_DB_ERRORS

logger = logging.getLogger(__name__)

Handler = Callable[[dict, object], dict]
LOCAL_ROLE_ARN = "arn:aws:iam::000000000000:role/airticket-cdc-local"


def lambda_record(*, record: dict, shard_id: str, stream_arn: str) -> dict:
    """A Kinesis GetRecords record (boto3 shape) -> one record of a Lambda Kinesis event."""
    sequence = record["SequenceNumber"]
    return {
        "kinesis": {
            "kinesisSchemaVersion": "1.0",
            "partitionKey": record["PartitionKey"],
            "sequenceNumber": sequence,
            "data": base64.b64encode(record["Data"]).decode(),
            "approximateArrivalTimestamp": record["ApproximateArrivalTimestamp"].timestamp(),
        },
        "eventSource": "aws:kinesis",
        "eventVersion": "1.0",
        "eventID": f"{shard_id}:{sequence}",
        "eventName": "aws:kinesis:record",
        "invokeIdentityArn": LOCAL_ROLE_ARN,
        "awsRegion": settings.AWS_REGION,
        "eventSourceARN": stream_arn,
    }


def _first_failure(batch: list[dict], response) -> tuple[int | None, str]:
    """Index of the lowest record the handler reported failed (None = all done). As on AWS,
    no answer or an empty list is success, and an answer that names no record of the batch
    fails the whole batch."""
    if response is None or (isinstance(response, dict) and not response.get("batchItemFailures")):
        return None, ""
    failures = response.get("batchItemFailures") if isinstance(response, dict) else None
    if not isinstance(failures, list):
        return 0, f"unreadable handler response {response!r:.200}"
    index = {record["kinesis"]["sequenceNumber"]: i for i, record in enumerate(batch)}
    positions = [index.get(failure.get("itemIdentifier")) if isinstance(failure, dict) else None for failure in failures]
    if None in positions:
        return 0, f"handler reported unknown items {failures!r:.200}"
    return min(positions), "handler reported batchItemFailures"


class DeadLetterUnavailable(Exception):
    """The DLQ did not take records the poller gave up on: they stay unacknowledged."""


@dataclass
class Delivery:
    """The event source mapping's retry rules for one batch of one shard. I/O goes through
    `ack` (checkpoint) and `dead_letter`, so the rules are testable on their own. A bisection
    counts as an attempt, like a retry, so a crashing record costs a bounded number of calls."""

    handler: Handler
    ack: Callable[[list[dict]], None]
    dead_letter: Callable[[list[dict], str], None]
    stop: threading.Event
    max_retries: int
    backoff_base: float
    invocations: int = 0

    def _invoke(self, batch: list[dict]) -> tuple[int | None, str]:
        self.invocations += 1
        try:
            return _first_failure(batch, self.handler({"Records": batch}, None))
        except Exception as exc:  # a function error, whatever it is: Lambda bisects on it
            logger.warning("handler raised on a batch of %d: %r", len(batch), exc)
            return -1, f"handler raised {type(exc).__name__}: {exc}"

    def deliver(self, records: list[dict]) -> bool:
        """Process the records in order; False if stopped before all were acknowledged."""
        pending = [(records, 0)]  # a stack: first halves are handled before second halves
        while pending:
            batch, attempt = pending.pop()
            failed_at, reason = self._invoke(batch)
            if failed_at is None:
                self.ack(batch)
                continue
            if failed_at == -1 and len(batch) > 1:
                half = len(batch) // 2
                pending += [(batch[half:], attempt + 1), (batch[:half], attempt + 1)]
                continue
            failed_at = max(failed_at, 0)
            if failed_at:
                self.ack(batch[:failed_at])
            rest = batch[failed_at:]
            if attempt >= self.max_retries:
                self.dead_letter(rest, f"{reason} (gave up after {attempt + 1} attempts)")
                self.ack(rest)
                continue
            if lifecycle.pause(stop=self.stop, seconds=lifecycle.backoff_seconds(attempt=attempt, base=self.backoff_base)):
                return False
            pending.append((rest, attempt + 1))
        return True


@dataclass
class _Shard:
    shard_id: str
    sequence_number: str
    iterator: str | None = None


@dataclass
class Poller:
    handler: Handler
    stop: threading.Event = field(default_factory=threading.Event)
    batch_size: int = 1000
    max_retries: int = 5
    backoff_base: float = 0.5
    poll_seconds: float = 0.2
    stream_arn: str = ""
    stream_instance: str = ""
    shards: dict[str, _Shard] = field(default_factory=dict)
    batches: int = 0
    acknowledged: int = 0
    dead_lettered: int = 0
    max_batches: int | None = None
    failures_in_a_row: int = 0
    once: bool = False

    def discover(self) -> None:
        kinesis = aws.kinesis()
        summary = kinesis.describe_stream_summary(StreamName=settings.KINESIS_STREAM)["StreamDescriptionSummary"]
        self.stream_arn = summary["StreamARN"]
        # A stream created again under the same name keeps its ARN; its creation time tells the
        # instances apart. (Not the shard's StartingSequenceNumber: moto reports the first record
        # still held there, which moves; AWS's is fixed, and also changes with the instance.)
        instance = checkpoints.instance_id(created=summary["StreamCreationTimestamp"])
        if instance != self.stream_instance:
            self.stream_instance, self.shards = instance, {}
        for shard in kinesis.list_shards(StreamName=settings.KINESIS_STREAM)["Shards"]:
            if shard["ShardId"] not in self.shards:
                sequence = checkpoints.position(
                    consumer=checkpoints.POLLER, stream=self.stream_arn, shard_id=shard["ShardId"], instance=instance
                )
                self.shards[shard["ShardId"]] = _Shard(shard["ShardId"], sequence)

    def _open(self, shard: _Shard) -> str:
        if shard.sequence_number:
            position = {"ShardIteratorType": "AFTER_SEQUENCE_NUMBER", "StartingSequenceNumber": shard.sequence_number}
        else:
            position = {"ShardIteratorType": "TRIM_HORIZON"}
        return aws.kinesis().get_shard_iterator(StreamName=settings.KINESIS_STREAM, ShardId=shard.shard_id, **position)["ShardIterator"]

    def _fetch(self, shard: _Shard) -> tuple[list[dict], str | None]:
        page = aws.kinesis().get_records(ShardIterator=shard.iterator or self._open(shard), Limit=self.batch_size)
        return page["Records"], page.get("NextShardIterator")

    def _ack(self, shard: _Shard, batch: list[dict]) -> None:
        last = batch[-1]["kinesis"]
        checkpoints.advance(
            consumer=checkpoints.POLLER,
            stream=self.stream_arn,
            shard_id=shard.shard_id,
            sequence_number=last["sequenceNumber"],
            records=len(batch),
            last_record_at=None,
        )
        shard.sequence_number = last["sequenceNumber"]
        self.acknowledged += len(batch)

    def _dead_letter(self, batch: list[dict], reason: str) -> None:
        letters = [dlq.Letter(record=record, reason=dlq.RETRIES_EXHAUSTED, error=reason) for record in batch]
        if dlq.send(letters=letters) < len(letters):
            raise DeadLetterUnavailable(f"the DLQ did not take {len(letters)} records given up on")
        self.dead_lettered += len(letters)
        logger.error("dead-lettered %d records: %s", len(letters), reason)

    def poll(self, shard: _Shard) -> bool:
        """Deliver one batch of the shard; False when stopped mid-delivery."""
        records, next_iterator = self._fetch(shard)
        shard.iterator = next_iterator
        if not records:
            return True
        batch = [lambda_record(record=record, shard_id=shard.shard_id, stream_arn=self.stream_arn) for record in records]
        delivery = Delivery(
            handler=self.handler,
            ack=lambda done: self._ack(shard, done),
            dead_letter=self._dead_letter,
            stop=self.stop,
            max_retries=self.max_retries,
            backoff_base=self.backoff_base,
        )
        self.batches += 1
        finished = delivery.deliver(batch)
        if not finished:
            shard.iterator = None  # resume from the checkpoint, not from past the unfinished batch
        return finished

    def _done(self) -> bool:
        return self.stop.is_set() or (self.max_batches is not None and self.batches >= self.max_batches)

    def _round(self) -> int:
        """One batch from every shard; returns how many records were handled."""
        handled = 0
        for shard_id in list(self.shards):
            shard = self.shards.get(shard_id)  # a rediscovery may have replaced it
            if self._done():
                break
            if shard is None:
                continue
            before = self.acknowledged + self.dead_lettered
            try:
                if not self.poll(shard):
                    break
            except (*TRANSIENT_DB_ERRORS, BotoCoreError, ClientError, DeadLetterUnavailable) as exc:
                self._recover(shard, exc)
                handled += 1  # not idle: try again rather than conclude the stream is drained
                continue
            self.failures_in_a_row = 0
            handled += self.acknowledged + self.dead_lettered - before
        return handled

    def _recover(self, shard: _Shard, exc: Exception) -> None:
        """The database or an AWS endpoint went away outside the handler: start the shard over
        from its checkpoint once it is back."""
        logger.warning("shard %s: %s: %s", shard.shard_id, type(exc).__name__, exc)
        shard.iterator = None
        connection.close_if_unusable_or_obsolete()
        self.failures_in_a_row += 1
        if self.once and self.failures_in_a_row > self.max_retries:
            raise exc  # a one-shot run reports a lasting outage instead of spinning on it
        lifecycle.pause(stop=self.stop, seconds=lifecycle.backoff_seconds(attempt=min(self.failures_in_a_row, 8), base=self.backoff_base))
        self._rediscover()

    def _rediscover(self) -> None:
        """The stream may have been deleted and created again under its name (an iterator of
        the old instance fails): look again, so its checkpoints are checked against the instance."""
        try:
            self.discover()
        except (*TRANSIENT_DB_ERRORS, BotoCoreError, ClientError) as exc:
            logger.warning("stream discovery: %s: %s", type(exc).__name__, exc)
            connection.close_if_unusable_or_obsolete()

    def run(self, *, once: bool = False) -> "Poller":
        """Poll until stopped; with `once`, until every shard is drained. `max_batches` stops
        early after that many batches (as a crash would, but cleanly)."""
        self.once = once
        self.discover()
        while not self._done():
            handled = self._round()
            self._heartbeat()
            if handled or self._done():
                continue
            if once or lifecycle.pause(stop=self.stop, seconds=self.poll_seconds):
                break
        return self

    def _heartbeat(self) -> None:
        try:
            checkpoints.heartbeat(consumer=checkpoints.POLLER, stream=self.stream_arn)
        except TRANSIENT_DB_ERRORS as exc:
            logger.warning("no heartbeat: %s", exc)
            connection.close_if_unusable_or_obsolete()


def run(
    *,
    once: bool = False,
    stop: threading.Event | None = None,
    handler: Handler | None = None,
    batch_size: int | None = None,
    max_retries: int | None = None,
    backoff_base: float = 0.5,
    poll_seconds: float | None = None,
    max_batches: int | None = None,
) -> Poller:
    if handler is None:
        from .handler import handler as cdc_handler

        handler = cdc_handler
    poller = Poller(
        handler=handler,
        stop=stop or threading.Event(),
        batch_size=batch_size or settings.CDC_BATCH_SIZE,
        max_retries=settings.CDC_MAX_RETRIES if max_retries is None else max_retries,
        backoff_base=backoff_base,
        poll_seconds=settings.CDC_POLL_INTERVAL_MS / 1000 if poll_seconds is None else poll_seconds,
        max_batches=max_batches,
    )
    return poller.run(once=once)
