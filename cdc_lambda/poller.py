"""Local stand-in for Lambda's Kinesis event source mapping.

As the mapping configured in `airticket.provisioning` does on AWS:
- **Every shard at once.** One reader thread per shard reads a page and hands it to the
  shard's lanes; the shards never wait for each other.
- **A parallelization factor.** Each shard has CDC_PARALLELIZATION_FACTOR lanes (threads, each
  with its own database connection). A record goes to the lane of its partition key's hash, so
  the records of one item stay in order (as Lambda keeps order per partition key), and the lanes
  of a shard run their batches (up to CDC_BATCH_SIZE records each) concurrently.
- **Resharding.** The shards of the stream are listed again from time to time; a child shard
  (a split's or a merge's, `ParentShardId`/`AdjacentParentShardId`) is read only once its
  parents are read to their end, so an item's older changes are handled before its newer ones.
  A shard read to its end keeps the checkpoint `SHARD_END`.
- **Retries.** `batchItemFailures` -> acknowledge up to the lowest failed record and retry from
  it with backoff; the handler raises -> bisect the batch and retry each half; still failing
  after CDC_MAX_RETRIES retries -> dead-letter those records and move on.
- **Exact checkpoints.** A shard's checkpoint (ShardCheckpoint, consumer "poller") moves only
  past records that every lane has acknowledged: to the end of the page's prefix in which each
  record was applied or dead-lettered. A lane that finished ahead of a slower one is delivered
  again after a crash (at least once), never skipped. Only the coordinating thread (the one
  that calls `run`) writes checkpoints and the heartbeat /healthz reads; a checkpoint that could
  not be written is written again, with everything acknowledged since, on its next turn.

At-least-once: a crash after the handler committed but before the checkpoint moved delivers
those records again, which the projection ignores (it goes by item version).
"""

import base64
import logging
import queue
import threading
import time
import zlib
from collections.abc import Callable
from concurrent.futures import Future, wait
from dataclasses import dataclass, field

from botocore.exceptions import BotoCoreError, ClientError
from django.conf import settings
from django.db import connection

from airticket import aws, provisioning

from . import checkpoints, dlq, lifecycle
from .batch import TRANSIENT_DB_ERRORS

logger = logging.getLogger(__name__)

Handler = Callable[[dict, object], dict]
LOCAL_ROLE_ARN = "arn:aws:iam::000000000000:role/airticket-cdc-local"
# The checkpoint of a closed shard read to its end (the Kinesis Client Library's name for it).
SHARD_END = "SHARD_END"
# GetRecords returns at most 10,000 records a call.
MAX_PAGE = 10_000
# How often a running poller lists the shards again to notice a reshard.
DISCOVER_SECONDS = 5.0
# The heartbeat (an UPDATE of the poller's checkpoint rows) at most this often while running.
HEARTBEAT_SECONDS = 1.0
_KINESIS_ERRORS = (BotoCoreError, ClientError)


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


def lane_of(*, partition_key: str, lanes: int) -> int:
    """The lane of a partition key: stable across processes (unlike `hash`), so a restarted
    poller keeps an item's records in the same lane."""
    return zlib.crc32(partition_key.encode()) % lanes


def split_into_lanes(records: list[dict], *, lanes: int) -> list[list[dict]]:
    """The records of each lane, in shard order."""
    split: list[list[dict]] = [[] for _ in range(lanes)]
    for record in records:
        split[lane_of(partition_key=record["kinesis"]["partitionKey"], lanes=lanes)].append(record)
    return split


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
    """The event source mapping's retry rules for one batch of one lane. I/O goes through
    `ack` and `dead_letter`, so the rules are testable on their own. A bisection counts as an
    attempt, like a retry, so a crashing record costs a bounded number of calls."""

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


class _Lane:
    """A thread that runs one lane's work, one job at a time, with its own database connection
    (closed when the lane ends: a lane thread's connection would otherwise outlive it)."""

    def __init__(self, name: str):
        self.jobs: queue.SimpleQueue = queue.SimpleQueue()
        self.thread = threading.Thread(target=self._run, name=name, daemon=True)
        self.thread.start()

    def submit(self, work: Callable[[], object]) -> Future:
        future: Future = Future()
        self.jobs.put((work, future))
        return future

    def _run(self) -> None:
        try:
            while (job := self.jobs.get()) is not None:
                work, future = job
                try:
                    future.set_result(work())
                except BaseException as exc:  # handed to whoever waits on the job
                    future.set_exception(exc)
        finally:
            connection.close()

    def close(self) -> None:
        self.jobs.put(None)
        self.thread.join()


class _Page:
    """Which records of a page the lanes have acknowledged (applied or dead-lettered). Each
    record is marked by the one lane it belongs to, so no two threads write the same slot."""

    def __init__(self, records: list[dict]):
        self.records = records
        self.index = {record["kinesis"]["sequenceNumber"]: i for i, record in enumerate(records)}
        self.done = [False] * len(records)

    def ack(self, batch: list[dict]) -> None:
        for record in batch:
            self.done[self.index[record["kinesis"]["sequenceNumber"]]] = True

    def prefix(self) -> int:
        """How many records from the start are acknowledged: the checkpoint may move past them."""
        return next((i for i, done in enumerate(self.done) if not done), len(self.done))


@dataclass
class _Shard:
    shard_id: str
    sequence_number: str
    parents: tuple[str, ...] = ()
    closed: bool = False
    iterator: str | None = None

    @property
    def ended(self) -> bool:
        return self.sequence_number == SHARD_END


@dataclass
class _Ack:
    """A reader's report to the coordinator: the shard of that stream instance is done up to
    `sequence_number`."""

    instance: str
    shard_id: str
    sequence_number: str
    records: int


class _Reader:
    """Reads one shard and delivers each page through the shard's lanes."""

    def __init__(self, poller: "Poller", shard: _Shard):
        self.poller, self.shard, self.instance = poller, shard, poller.stream_instance
        self.stop = threading.Event()  # set by the coordinator
        self.failures_in_a_row = 0
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name=f"cdc-{shard.shard_id}", daemon=True)

    def _run(self) -> None:
        poller = self.poller
        lanes = [_Lane(f"cdc-{self.shard.shard_id}-lane{n}") for n in range(poller.parallelization_factor)]
        try:
            while not (self.stop.is_set() or poller.done()):
                try:
                    handled = self._step(lanes)
                except (*_KINESIS_ERRORS, DeadLetterUnavailable, *TRANSIENT_DB_ERRORS) as exc:
                    self._recover(exc)
                    continue
                self.failures_in_a_row = 0
                if self.shard.ended:
                    break
                if not handled and (poller.once or lifecycle.pause(stop=self.stop, seconds=poller.poll_seconds)):
                    break
        except BaseException as exc:  # the coordinator re-raises it
            self.error = exc
        finally:
            for lane in lanes:
                lane.close()
            poller.events.put(self)  # "this reader has ended"

    def _recover(self, exc: Exception) -> None:
        """An AWS endpoint (or the DLQ) failed outside the handler: start the shard over from
        the last acknowledged record once it is back."""
        logger.warning("shard %s: %s: %s", self.shard.shard_id, type(exc).__name__, exc)
        self.shard.iterator = None
        self.failures_in_a_row += 1
        self.poller.events.put("rediscover")  # the stream may have been replaced
        if self.poller.once and self.failures_in_a_row > self.poller.max_retries:
            raise exc  # a one-shot run reports a lasting outage instead of spinning on it
        attempt = min(self.failures_in_a_row, 8)
        lifecycle.pause(stop=self.stop, seconds=lifecycle.backoff_seconds(attempt=attempt, base=self.poller.backoff_base))

    def _open(self) -> str:
        shard = self.shard
        if shard.sequence_number:
            position = {"ShardIteratorType": "AFTER_SEQUENCE_NUMBER", "StartingSequenceNumber": shard.sequence_number}
        else:
            position = {"ShardIteratorType": "TRIM_HORIZON"}
        return aws.kinesis().get_shard_iterator(StreamName=settings.KINESIS_STREAM, ShardId=shard.shard_id, **position)["ShardIterator"]

    def _step(self, lanes: list[_Lane]) -> int:
        """Deliver one page of the shard; how many records were acknowledged."""
        poller, shard = self.poller, self.shard
        limit = min(MAX_PAGE, poller.batch_size * poller.parallelization_factor)
        page = aws.kinesis().get_records(ShardIterator=shard.iterator or self._open(), Limit=limit)
        records, shard.iterator = page["Records"], page.get("NextShardIterator")
        if not records:
            # AWS ends a closed shard with no next iterator; moto keeps giving one, so a closed
            # shard (as last listed) that has nothing more is at its end too.
            if shard.iterator is None or shard.closed:
                shard.sequence_number, shard.iterator = SHARD_END, None
                poller.events.put(_Ack(self.instance, shard.shard_id, SHARD_END, 0))
            return 0
        batch = [lambda_record(record=record, shard_id=shard.shard_id, stream_arn=poller.stream_arn) for record in records]
        progress = _Page(batch)
        split = split_into_lanes(batch, lanes=len(lanes))
        jobs = [lane.submit(lambda part=part: self._deliver_lane(part, progress)) for lane, part in zip(lanes, split, strict=True) if part]
        wait(jobs)
        done = progress.prefix()
        if done:
            shard.sequence_number = batch[done - 1]["kinesis"]["sequenceNumber"]
            poller.events.put(_Ack(self.instance, shard.shard_id, shard.sequence_number, done))
        if done < len(batch):
            shard.iterator = None  # resume from the last acknowledged record, not past the page
        for job in jobs:
            job.result()  # a lane's failure (the DLQ down) is handled as the shard's
        return done

    def _deliver_lane(self, records: list[dict], progress: _Page) -> bool:
        """One lane's share of a page, in batches of at most CDC_BATCH_SIZE, in order."""
        poller = self.poller
        for start in range(0, len(records), poller.batch_size):
            if self.stop.is_set() or not poller.claim_batch():
                return False
            delivery = Delivery(
                handler=poller.handler,
                ack=progress.ack,
                dead_letter=poller.dead_letter,
                stop=self.stop,
                max_retries=poller.max_retries,
                backoff_base=poller.backoff_base,
            )
            if not delivery.deliver(records[start : start + poller.batch_size]):
                return False
        return True


@dataclass
class Poller:
    handler: Handler
    stop: threading.Event = field(default_factory=threading.Event)
    batch_size: int = 1000
    parallelization_factor: int = 1
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
    once: bool = False
    events: queue.SimpleQueue = field(default_factory=queue.SimpleQueue)
    readers: dict[str, _Reader] = field(default_factory=dict)
    _unwritten: dict[str, _Ack] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _beaten: float = 0.0
    _drained: set[str] = field(default_factory=set)  # with `once`: shards already read to the present

    # --- shared with the readers and lanes ---------------------------------------------------

    def done(self) -> bool:
        return self.stop.is_set() or (self.max_batches is not None and self.batches >= self.max_batches)

    def claim_batch(self) -> bool:
        """Count a batch about to be delivered; False once `max_batches` are (or stopped)."""
        with self._lock:
            if self.done():
                return False
            self.batches += 1
            return True

    def dead_letter(self, batch: list[dict], reason: str) -> None:
        letters = [dlq.Letter(record=record, reason=dlq.RETRIES_EXHAUSTED, error=reason) for record in batch]
        if dlq.send(letters=letters) < len(letters):
            raise DeadLetterUnavailable(f"the DLQ did not take {len(letters)} records given up on")
        with self._lock:
            self.dead_lettered += len(letters)
        logger.error("dead-lettered %d records: %s", len(letters), reason)

    # --- the coordinator (the thread that calls `run`) ------------------------------------------

    def discover(self) -> None:
        """List the shards (open and closed) and load the checkpoints of new ones. A stream
        created again under the same name (a new instance) starts everything over."""
        kinesis = aws.kinesis()
        summary = kinesis.describe_stream_summary(StreamName=settings.KINESIS_STREAM)["StreamDescriptionSummary"]
        # A stream created again under the same name keeps its ARN; its creation time tells the
        # instances apart. (Not the shard's StartingSequenceNumber: moto reports the first record
        # still held there, which moves; AWS's is fixed, and also changes with the instance.)
        instance = checkpoints.instance_id(created=summary["StreamCreationTimestamp"])
        if instance != self.stream_instance:
            if self.readers:
                self._stop_readers()
                self.readers = {}  # their reports belong to the old instance: ignored
            self.stream_arn, self.stream_instance, self.shards, self._unwritten, self._drained = (
                summary["StreamARN"],
                instance,
                {},
                {},
                set(),
            )
        for listed in provisioning.list_shards():
            shard = self.shards.get(listed["ShardId"])
            closed = "EndingSequenceNumber" in listed["SequenceNumberRange"]
            if shard is None:
                sequence = checkpoints.position(
                    consumer=checkpoints.POLLER, stream=self.stream_arn, shard_id=listed["ShardId"], instance=instance
                )
                parents = tuple(p for p in (listed.get("ParentShardId"), listed.get("AdjacentParentShardId")) if p)
                self.shards[listed["ShardId"]] = _Shard(listed["ShardId"], sequence, parents=parents, closed=closed)
            else:
                shard.closed = closed  # a reader sees it: a drained closed shard is at its end

    def _ready(self, shard: _Shard) -> bool:
        """Not at its end, not being read, and every parent still listed is read to its end."""
        if shard.ended or shard.shard_id in self.readers or shard.shard_id in self._drained:
            return False
        return all(self.shards[parent].ended for parent in shard.parents if parent in self.shards)

    def _start_readers(self) -> None:
        for shard in list(self.shards.values()):
            if not self.done() and self._ready(shard):
                reader = self.readers[shard.shard_id] = _Reader(self, shard)
                reader.thread.start()

    def _stop_readers(self) -> None:
        """Stop every reader and wait for it (its batch in flight finishes or stays
        unacknowledged); their last reports are taken by whoever reads the events next."""
        for reader in self.readers.values():
            reader.stop.set()
        for reader in self.readers.values():
            reader.thread.join()

    def _write_checkpoints(self) -> None:
        """Write what the readers acknowledged; what cannot be written now is kept (with the
        records it covers) for the next turn."""
        while self._unwritten:
            shard_id, ack = next(iter(self._unwritten.items()))
            try:
                checkpoints.advance(
                    consumer=checkpoints.POLLER,
                    stream=self.stream_arn,
                    shard_id=shard_id,
                    sequence_number=ack.sequence_number,
                    records=ack.records,
                    last_record_at=None,
                )
            except TRANSIENT_DB_ERRORS as exc:
                logger.warning("checkpoint of %s not written, trying again: %s: %s", shard_id, type(exc).__name__, exc)
                connection.close_if_unusable_or_obsolete()
                return
            del self._unwritten[shard_id]

    def _take(self, event) -> None:
        if isinstance(event, _Ack):
            if event.instance != self.stream_instance:
                return
            kept = self._unwritten.get(event.shard_id)
            self._unwritten[event.shard_id] = _Ack(
                event.instance, event.shard_id, event.sequence_number, event.records + (kept.records if kept else 0)
            )
            self.acknowledged += event.records
        elif isinstance(event, _Reader):
            if self.readers.get(event.shard.shard_id) is not event:
                return  # a reader of a stream instance that is gone
            del self.readers[event.shard.shard_id]
            if event.error is not None:
                raise event.error
            if self.once:
                self._drained.add(event.shard.shard_id)
        elif event == "rediscover":
            self._rediscover()

    def _rediscover(self) -> None:
        try:
            self.discover()
        except (*TRANSIENT_DB_ERRORS, *_KINESIS_ERRORS) as exc:
            logger.warning("stream discovery: %s: %s", type(exc).__name__, exc)
            connection.close_if_unusable_or_obsolete()

    def run(self, *, once: bool = False) -> "Poller":
        """Poll until stopped; with `once`, until every shard (and every child of a shard read
        to its end) is drained. `max_batches` stops early after that many batches (as a crash
        would, but cleanly)."""
        self.once = once
        self.discover()
        discovered = time.monotonic()
        try:
            while not self.done():
                self._start_readers()
                if once and not self.readers:
                    break
                self._take_events(timeout=self.poll_seconds)
                self._write_checkpoints()
                if time.monotonic() - self._beaten > HEARTBEAT_SECONDS:
                    self._heartbeat()
                if not once and time.monotonic() - discovered > DISCOVER_SECONDS:
                    self._rediscover()
                    discovered = time.monotonic()
        finally:
            self._finish()
        return self

    def _take_events(self, *, timeout: float) -> None:
        """Wait up to `timeout` for a report, then take every report waiting."""
        try:
            self._take(self.events.get(timeout=timeout))
        except queue.Empty:
            return
        while True:
            try:
                event = self.events.get_nowait()
            except queue.Empty:
                return
            self._take(event)

    def _finish(self) -> None:
        """Stop the readers, take their last reports and write them (also after a failure)."""
        for reader in self.readers.values():
            reader.stop.set()
        while self.readers:
            try:
                self._take(self.events.get())
            except Exception:
                logger.exception("a shard reader failed while the poller stopped")
        try:
            self._take_events(timeout=0)
        except Exception:
            logger.exception("a shard reader failed while the poller stopped")
        self._write_checkpoints()
        self._heartbeat()

    def _heartbeat(self) -> None:
        self._beaten = time.monotonic()
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
    parallelization_factor: int | None = None,
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
        parallelization_factor=parallelization_factor or settings.CDC_PARALLELIZATION_FACTOR,
        max_retries=settings.CDC_MAX_RETRIES if max_retries is None else max_retries,
        backoff_base=backoff_base,
        poll_seconds=settings.CDC_POLL_INTERVAL_MS / 1000 if poll_seconds is None else poll_seconds,
        max_batches=max_batches,
    )
    return poller.run(once=once)
