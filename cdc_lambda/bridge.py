"""Local stand-in for DynamoDB's Kinesis streaming destination (moto does not implement it).

Reads the table's DynamoDB Stream and writes each change into the Kinesis stream in the shape
AWS writes, partitioned by item key ("PK|SK"), so all changes of one item land on one shard.
Its position per stream shard is a ShardCheckpoint (consumer "bridge"), moved only after the
put succeeded: a crash in between repeats records (AWS's destination is at-least-once too).

`to_kinesis_record` and `put_raw` are public so tools can stage a duplicate delivery or a
malformed record exactly as the stream would carry it.
"""

import base64
import json
import logging
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime

from botocore.exceptions import BotoCoreError, ClientError
from django.conf import settings
from django.db import connection

from airticket import aws

from . import checkpoints, lifecycle
from .batch import TRANSIENT_DB_ERRORS

logger = logging.getLogger(__name__)

# PutRecords takes at most 500 records and 5 MiB per call.
_PUT_RECORDS = 500
_PUT_BYTES = 4_500_000
_PUT_ATTEMPTS = 8
_READ_LIMIT = 1000
_ONCE_FAILURES = 3


def partition_key(keys: dict) -> str:
    return f"{keys['PK']['S']}|{keys['SK']['S']}"


def _epoch_ms(value) -> int:
    """boto3 parses the streams API's timestamp into a datetime; the destination writes ms."""
    if isinstance(value, datetime):
        return int(value.timestamp() * 1000)
    return int(float(value) * 1000)


def _identity(identity: dict | None) -> dict | None:
    # TTL deletions carry {"Type": "Service", "PrincipalId": "dynamodb.amazonaws.com"}.
    if not identity:
        return None
    return {"type": identity.get("Type"), "principalId": identity.get("PrincipalId")}


def _json_default(value):
    if isinstance(value, bytes | bytearray):  # binary attributes travel base64-encoded
        return base64.b64encode(value).decode()
    if isinstance(value, set):
        return sorted(value)
    raise TypeError(f"cannot serialise {type(value).__name__}")


def to_kinesis_record(stream_record: dict, *, table_name: str | None = None) -> dict:
    """A DynamoDB Streams record (as boto3 returns it) -> a PutRecords entry whose data is the
    JSON the Kinesis streaming destination writes."""
    stream = stream_record["dynamodb"]
    change = {
        "awsRegion": stream_record.get("awsRegion", settings.AWS_REGION),
        "eventID": stream_record.get("eventID"),
        "eventName": stream_record["eventName"],
        "userIdentity": _identity(stream_record.get("userIdentity")),
        "recordFormat": "application/json",
        "tableName": table_name or settings.DYNAMODB_TABLE,
        "dynamodb": {
            "ApproximateCreationDateTime": _epoch_ms(stream.get("ApproximateCreationDateTime", time.time())),
            "Keys": stream["Keys"],
            **{image: stream[image] for image in ("NewImage", "OldImage") if image in stream},
            "SizeBytes": stream.get("SizeBytes", 0),
        },
        "eventSource": "aws:dynamodb",
    }
    return {
        "Data": json.dumps(change, separators=(",", ":"), default=_json_default).encode(),
        "PartitionKey": partition_key(stream["Keys"]),
    }


def put_raw(*, data: bytes, partition_key: str) -> dict:
    """Put one record as is (a replayed change, or deliberately broken data); returns
    {"ShardId", "SequenceNumber"}."""
    response = aws.kinesis().put_record(StreamName=settings.KINESIS_STREAM, Data=data, PartitionKey=partition_key)
    return {"ShardId": response["ShardId"], "SequenceNumber": response["SequenceNumber"]}


def _put_chunks(entries: list[dict]) -> list[list[dict]]:
    chunks: list[list[dict]] = []
    size = 0
    for entry in entries:
        entry_size = len(entry["Data"]) + len(entry["PartitionKey"])
        if not chunks or len(chunks[-1]) == _PUT_RECORDS or size + entry_size > _PUT_BYTES:
            chunks.append([])
            size = 0
        chunks[-1].append(entry)
        size += entry_size
    return chunks


def put_records(*, entries: list[dict]) -> None:
    """Put all entries or raise. Throttled entries are retried (their order within a key may
    change, which the projection tolerates: it goes by item version)."""
    for chunk in _put_chunks(entries):
        pending = chunk
        for attempt in range(_PUT_ATTEMPTS):
            response = aws.kinesis().put_records(StreamName=settings.KINESIS_STREAM, Records=pending)
            pending = [entry for entry, result in zip(pending, response["Records"], strict=True) if "ErrorCode" in result]
            if not pending:
                break
            time.sleep(lifecycle.backoff_seconds(attempt=attempt, base=0.05))
        else:
            raise RuntimeError(f"Kinesis refused {len(pending)} records after {_PUT_ATTEMPTS} attempts")


# --- the bridge loop -----------------------------------------------------------------------------


@dataclass
class _Shard:
    shard_id: str
    sequence_number: str
    iterator: str | None = None
    closed: bool = False


@dataclass
class Bridge:
    stop: threading.Event = field(default_factory=threading.Event)
    poll_seconds: float = 0.2
    stream_arn: str = ""
    shards: dict[str, _Shard] = field(default_factory=dict)
    bridged: int = 0

    def discover(self) -> None:
        table = aws.dynamodb().describe_table(TableName=settings.DYNAMODB_TABLE)["Table"]
        if table.get("LatestStreamArn") != self.stream_arn:
            self.stream_arn, self.shards = table["LatestStreamArn"], {}
            # The table's stream was replaced (the table created again): positions in the old one are void.
            checkpoints.forget_other_streams(consumer=checkpoints.BRIDGE, stream=self.stream_arn)
        created, shards = self._describe_shards()
        for shard in shards:
            if shard["ShardId"] not in self.shards:
                instance = checkpoints.instance_id(
                    created=created, first_sequence_number=shard.get("SequenceNumberRange", {}).get("StartingSequenceNumber", "")
                )
                sequence = checkpoints.position(
                    consumer=checkpoints.BRIDGE, stream=self.stream_arn, shard_id=shard["ShardId"], instance=instance
                )
                self.shards[shard["ShardId"]] = _Shard(shard["ShardId"], sequence)

    def _describe_shards(self) -> tuple[str, list[dict]]:
        """(when the stream was created, its shards)."""
        shards, start = [], {}
        while True:
            described = aws.dynamodbstreams().describe_stream(StreamArn=self.stream_arn, **start)["StreamDescription"]
            shards.extend(described["Shards"])
            if not described.get("LastEvaluatedShardId"):
                # Parents are listed before their children: read in this order.
                return str(described.get("CreationRequestDateTime", "")), shards
            start = {"ExclusiveStartShardId": described["LastEvaluatedShardId"]}

    def _open(self, shard: _Shard) -> str:
        position = (
            {"ShardIteratorType": "AFTER_SEQUENCE_NUMBER", "SequenceNumber": shard.sequence_number}
            if shard.sequence_number
            else {"ShardIteratorType": "TRIM_HORIZON"}
        )
        return aws.dynamodbstreams().get_shard_iterator(StreamArn=self.stream_arn, ShardId=shard.shard_id, **position)["ShardIterator"]

    def pump(self, shard: _Shard) -> int:
        """Move one page of the shard to Kinesis; returns how many records moved."""
        if shard.closed:
            return 0
        try:
            page = aws.dynamodbstreams().get_records(ShardIterator=shard.iterator or self._open(shard), Limit=_READ_LIMIT)
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "ExpiredIteratorException":
                raise
            shard.iterator = None
            return 0
        records = page["Records"]
        if records:
            put_records(entries=[to_kinesis_record(record) for record in records])
            last = records[-1]["dynamodb"]
            checkpoints.advance(
                consumer=checkpoints.BRIDGE,
                stream=self.stream_arn,
                shard_id=shard.shard_id,
                sequence_number=last["SequenceNumber"],
                records=len(records),
                last_record_at=last.get("ApproximateCreationDateTime"),
            )
            shard.sequence_number = last["SequenceNumber"]
            self.bridged += len(records)
        shard.iterator = page.get("NextShardIterator")
        shard.closed = shard.iterator is None
        return len(records)

    def _round(self) -> int:
        if not self.stream_arn:
            self.discover()
        return sum(self.pump(shard) for shard in list(self.shards.values()))

    def run(self, *, once: bool = False) -> int:
        """Bridge until stopped (or, with `once`, until the table's stream has nothing new).
        An endpoint or the database going away is waited out (a one-shot run gives up after a
        few tries); the position is the checkpoint, so nothing is skipped."""
        failures = 0
        while not self.stop.is_set():
            try:
                moved = self._round()
            except (BotoCoreError, ClientError, *TRANSIENT_DB_ERRORS) as exc:
                failures += 1
                if once and failures > _ONCE_FAILURES:
                    raise
                logger.warning("bridge: %s: %s", type(exc).__name__, exc)
                self.stream_arn, self.shards = "", {}  # start over from the stored checkpoints
                connection.close_if_unusable_or_obsolete()
                lifecycle.pause(stop=self.stop, seconds=lifecycle.backoff_seconds(attempt=min(failures, 8), base=self.poll_seconds))
                continue
            failures = 0
            checkpoints.heartbeat(consumer=checkpoints.BRIDGE, stream=self.stream_arn)  # /healthz reads it
            if moved:
                continue
            if once or lifecycle.pause(stop=self.stop, seconds=self.poll_seconds):
                break
            self.discover()  # new shards appear as DynamoDB rolls them over
        return self.bridged


def run(*, once: bool = False, stop: threading.Event | None = None, poll_seconds: float | None = None) -> int:
    bridge = Bridge(
        stop=stop or threading.Event(), poll_seconds=settings.CDC_POLL_INTERVAL_MS / 1000 if poll_seconds is None else poll_seconds
    )
    return bridge.run(once=once)
