"""What the operations page shows and does: CDC checkpoints and lag, the dead-letter queue.

DLQ messages are the CDC's letters (`cdc_lambda.dlq.body`): JSON with the reason, the error,
the shard, the sequence number and the raw record data (base64). Redriving one re-applies the
record through the CDC handler itself, so a record fixed by a code deploy (or one that only
ran out of retries) is projected exactly as the stream would have projected it; the
projection is idempotent, so a redrive of an already applied record changes nothing.

AWS failures never break the page: every reader returns an `error` string instead of raising.
"""

import base64
import binascii
import json
import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from botocore.exceptions import BotoCoreError, ClientError
from django.utils import timezone

from airticket import aws

from . import selectors
from .models import ShardCheckpoint, WeatherSource

log = logging.getLogger(__name__)

PEEK_LIMIT = 50
# While a redrive or a peek holds messages they are invisible to others for this long; they
# are made visible again as soon as the page is done with them.
HOLD_SECONDS = 30
AWS_ERRORS = (BotoCoreError, ClientError)
NEW_ALERTS_WINDOW = timedelta(hours=24)


# --- checkpoints and lag ----------------------------------------------------------------------


@dataclass
class ShardLag:
    checkpoint: ShardCheckpoint
    age_seconds: float | None  # now - time of the last record applied
    millis_behind: int | None = None  # Kinesis: how far the checkpoint is behind the shard's tip
    pending: bool | None = None  # records exist after the checkpoint
    error: str = ""


def _kinesis_position(checkpoint: ShardCheckpoint) -> tuple[int | None, bool]:
    kinesis = aws.kinesis()
    where = {"StreamName": checkpoint.stream.rsplit("/", 1)[-1], "ShardId": checkpoint.shard_id}
    if checkpoint.sequence_number:
        where.update(ShardIteratorType="AFTER_SEQUENCE_NUMBER", StartingSequenceNumber=checkpoint.sequence_number)
    else:
        where.update(ShardIteratorType="TRIM_HORIZON")
    page = kinesis.get_records(ShardIterator=kinesis.get_shard_iterator(**where)["ShardIterator"], Limit=1)
    return page.get("MillisBehindLatest"), bool(page.get("Records"))


def checkpoint_lags(*, now: datetime | None = None) -> list[ShardLag]:
    now = now or timezone.now()
    lags = []
    for checkpoint in ShardCheckpoint.objects.order_by("consumer", "stream", "shard_id"):
        age = (now - checkpoint.last_record_at).total_seconds() if checkpoint.last_record_at else None
        lag = ShardLag(checkpoint=checkpoint, age_seconds=age)
        if ":kinesis:" in checkpoint.stream:
            try:
                lag.millis_behind, lag.pending = _kinesis_position(checkpoint)
            except AWS_ERRORS as exc:
                lag.error = f"{type(exc).__name__}: {exc}"[:300]
        lags.append(lag)
    return lags


# --- the dead-letter queue --------------------------------------------------------------------


@dataclass
class DeadLetter:
    message_id: str
    receipt_handle: str
    body: dict
    raw_body: str

    @property
    def reason(self) -> str:
        return str(self.body.get("reason", "unreadable letter"))

    @property
    def error(self) -> str:
        return str(self.body.get("error", ""))

    @property
    def shard_id(self) -> str:
        return str(self.body.get("shard_id") or "")

    @property
    def sequence_number(self) -> str:
        return str(self.body.get("sequence_number") or "")

    @property
    def failed_at(self) -> str:
        return str(self.body.get("failed_at") or "")

    @property
    def data_preview(self) -> str:
        data = self.body.get("data")
        if not isinstance(data, str):
            return self.raw_body[:400]
        try:
            return base64.b64decode(data, validate=True).decode("utf-8", "replace")[:400]
        except (binascii.Error, ValueError):
            return data[:400]

    def lambda_event(self) -> dict:
        """The letter as a one-record Lambda Kinesis event, the shape the CDC handler takes."""
        return {
            "Records": [
                {
                    "kinesis": {
                        "kinesisSchemaVersion": "1.0",
                        "partitionKey": self.body.get("partition_key") or "redrive",
                        "sequenceNumber": self.sequence_number or self.message_id,
                        "data": self.body.get("data") or "",
                        "approximateArrivalTimestamp": timezone.now().timestamp(),
                    },
                    "eventSource": "aws:kinesis",
                    "eventVersion": "1.0",
                    "eventID": f"{self.shard_id}:{self.sequence_number}",
                    "eventName": "aws:kinesis:record",
                    "eventSourceARN": self.body.get("event_source_arn") or "",
                }
            ]
        }


@dataclass
class DlqState:
    visible: int | None = None
    in_flight: int | None = None
    letters: list[DeadLetter] = field(default_factory=list)
    error: str = ""


def _letter(message: dict) -> DeadLetter:
    try:
        body = json.loads(message["Body"])
    except ValueError:
        body = {}
    if not isinstance(body, dict):
        body = {}
    return DeadLetter(message_id=message["MessageId"], receipt_handle=message["ReceiptHandle"], body=body, raw_body=message["Body"])


def _receive(*, limit: int) -> list[DeadLetter]:
    """Take up to `limit` letters out of sight for HOLD_SECONDS (callers give them back)."""
    sqs, url = aws.sqs(), aws.dlq_url()
    letters: dict[str, DeadLetter] = {}
    while len(letters) < limit:
        batch = sqs.receive_message(
            QueueUrl=url, MaxNumberOfMessages=min(10, limit - len(letters)), VisibilityTimeout=HOLD_SECONDS, WaitTimeSeconds=0
        )
        messages = batch.get("Messages", [])
        if not messages:
            break
        for message in messages:
            letters.setdefault(message["MessageId"], _letter(message))
    return list(letters.values())


def _release(letters: list[DeadLetter]) -> None:
    """Make letters visible again right away."""
    sqs, url = aws.sqs(), aws.dlq_url()
    for start in range(0, len(letters), 10):
        chunk = letters[start : start + 10]
        entries = [{"Id": str(i), "ReceiptHandle": letter.receipt_handle, "VisibilityTimeout": 0} for i, letter in enumerate(chunk)]
        sqs.change_message_visibility_batch(QueueUrl=url, Entries=entries)


def _delete(letter: DeadLetter) -> None:
    aws.sqs().delete_message(QueueUrl=aws.dlq_url(), ReceiptHandle=letter.receipt_handle)


def dlq_state(*, limit: int = PEEK_LIMIT) -> DlqState:
    state = DlqState()
    try:
        state.visible, state.in_flight = aws.dlq_counts()
        if state.visible:
            state.letters = _receive(limit=limit)
            _release(state.letters)
    except AWS_ERRORS as exc:
        state.error = f"{type(exc).__name__}: {exc}"[:300]
    return state


@dataclass
class RedriveResult:
    applied: int = 0
    failed: list[str] = field(default_factory=list)


def _reapply(letter: DeadLetter) -> str:
    """Run the letter through the CDC handler; returns why it still fails, or ""."""
    # Imported here: the CDC package depends on admin_portal's models, not the other way round;
    # only this staff action reaches back into it.
    from cdc_lambda.decode import Poison, decode
    from cdc_lambda.handler import handler

    event = letter.lambda_event()
    try:
        decode(event["Records"][0])
    except Poison as exc:
        return f"still poison: {exc}"
    response = handler(event, None) or {}
    if response.get("batchItemFailures"):
        return "the handler could not apply it yet (transient failure); try again later"
    return ""


def dlq_redrive(*, message_ids: set[str] | None = None, limit: int = PEEK_LIMIT) -> RedriveResult:
    """Re-apply letters (all of the first `limit`, or those named) through the CDC handler;
    applied ones leave the queue, the others stay with the reason they still fail."""
    result = RedriveResult()
    letters = _receive(limit=limit)
    keep = []
    for letter in letters:
        if message_ids is not None and letter.message_id not in message_ids:
            keep.append(letter)
            continue
        try:
            error = _reapply(letter)
        except Exception as exc:  # a record that breaks the handler stays in the queue, with why
            error = f"{type(exc).__name__}: {exc}"[:300]
        if error:
            keep.append(letter)
            result.failed.append(f"{letter.message_id}: {error}")
            continue
        _delete(letter)
        result.applied += 1
    _release(keep)
    log.info("DLQ redrive: %d applied, %d still failing", result.applied, len(result.failed))
    return result


def dlq_delete(*, message_ids: set[str], limit: int = PEEK_LIMIT) -> int:
    letters = _receive(limit=limit)
    chosen = [letter for letter in letters if letter.message_id in message_ids]
    for letter in chosen:
        _delete(letter)
    _release([letter for letter in letters if letter.message_id not in message_ids])
    return len(chosen)


def dlq_purge() -> None:
    aws.sqs().purge_queue(QueueUrl=aws.dlq_url())


# --- weather feeds ----------------------------------------------------------------------------


def weather_status(*, now: datetime | None = None) -> dict:
    """The weather part of the page: each polled source's status, and the alerts created in
    the last day that affect ORDERED passengers, with how many (notifying stays a staff decision)."""
    now = now or timezone.now()
    return {
        "weather_sources": list(WeatherSource.objects.all()),
        "weather_alerts": selectors.weather_alerts_new_affecting(since=now - NEW_ALERTS_WINDOW, now=now),
    }
