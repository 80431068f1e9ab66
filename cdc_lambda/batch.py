"""One Lambda Kinesis batch: decode it in chunks, keep the newest version per key, apply the
chunks in one transaction (each while the next is decoded), dead-letter the poison, and tell
Lambda what to deliver again.

Acknowledgement rules (`batchItemFailures`, Lambda resumes from the lowest identifier):
- a deadlock (MySQL 1213) or lock wait timeout (1205) -> the transaction is run again here, a
  few times with a short jittered backoff (the chunks are decoded once), and counted
  (`CdcDeadlockRetries`, `CdcLockWaitRetries`): concurrent batches of other shards and lanes
  write the same hot rows, and such a conflict is not the batch's fault;
- the transaction failed for another transient reason, or kept conflicting -> everything from
  the first record, since nothing of the batch is committed;
- the DLQ did not take a poison record -> everything from that record (the records after it
  are applied again, which changes nothing);
- anything else unexpected raises: a function error, which makes Lambda (and the local
  poller) bisect the batch to isolate the record.
"""

import logging
import random
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

from django.db import InterfaceError, OperationalError, connection

from airticket import observability

from . import dlq, projection
from .decode import Change, Poison, decode

logger = logging.getLogger(__name__)

# Records per chunk. Decoding threads decode the chunks of a batch while this one writes them:
# mysqlclient releases the GIL while the server executes a statement, so decoding (CPU in this
# process) overlaps writing (CPU in the database server) instead of preceding it. Chunks are
# decoded and applied separately but in one transaction, which gives the same read model as a
# single chunk (see `projection.apply`). The pool is shared by the batches that run at once in
# one process (the local poller's lanes); a chunk's future is consumed in order, so a batch
# applies its chunks in order whichever thread decoded them. (The process-wide
# `sys.setswitchinterval` this once set is gone: with concurrent batches it changed every
# thread's scheduling, and docs/BENCHMARKS.md measures the projection without it.)
CHUNK = 250
_decoder = ThreadPoolExecutor(max_workers=4, thread_name_prefix="cdc-decode")

# Database down, connection lost, deadlock, lock wait timeout, "database is locked": retry.
TRANSIENT_DB_ERRORS = (OperationalError, InterfaceError)
# MySQL/MariaDB error codes of a conflict with a concurrent transaction, whose retry in place
# succeeds once the other one committed: ER_LOCK_DEADLOCK (the server rolled this one back) and
# ER_LOCK_WAIT_TIMEOUT (innodb_lock_wait_timeout; the whole transaction is rolled back here).
DEADLOCK, LOCK_WAIT_TIMEOUT = 1213, 1205
CONFLICT_METRICS = {DEADLOCK: "CdcDeadlockRetries", LOCK_WAIT_TIMEOUT: "CdcLockWaitRetries"}
CONFLICT_ATTEMPTS = 6  # then the batch goes back to the event source mapping (batchItemFailures)
_CONFLICT_BACKOFF = 0.02  # seconds, doubled per attempt, jittered, capped below
_CONFLICT_BACKOFF_CAP = 0.5


def conflict_code(exc: Exception) -> int | None:
    """The MySQL error code of a conflict worth retrying in place, else None."""
    code = exc.args[0] if isinstance(exc, OperationalError) and exc.args else None
    return code if code in CONFLICT_METRICS else None


@dataclass(slots=True)
class Decoded:
    newest: dict[str, dict[str, Change]] = field(default_factory=dict)
    event_flights: list[Change] = field(default_factory=list)
    poison: list[tuple[int, dlq.Letter]] = field(default_factory=list)  # (index in batch, letter)
    changes: int = 0
    ignored: int = 0


def decode_batch(records: list[dict], *, start: int = 0) -> Decoded:
    """Decode `records`, which begin at index `start` of the batch (poison is reported by its
    index in the batch)."""
    decoded = Decoded()
    for index, record in enumerate(records, start):
        try:
            change = decode(record)
        except Poison as exc:
            decoded.poison.append((index, dlq.Letter(record=record, reason=dlq.POISON, error=str(exc))))
            continue
        if change is None:
            decoded.ignored += 1
            continue
        decoded.changes += 1
        if change.events:
            decoded.event_flights.append(change)
        by_key = decoded.newest.setdefault(change.entity, {})
        current = by_key.get(change.key)
        if current is None or change.rank > current.rank:
            by_key[change.key] = change
    return decoded


def _sequence(record: dict) -> str:
    return record["kinesis"]["sequenceNumber"]


def _failures_from(records: list[dict], index: int) -> dict:
    return {"batchItemFailures": [{"itemIdentifier": _sequence(records[index])}]}


def _reusable_connection() -> None:
    """Lambda keeps the process between batches: drop a connection that broke or aged out,
    as Django does between requests (never inside a caller's transaction)."""
    if not connection.in_atomic_block:
        connection.close_if_unusable_or_obsolete()


def _chunks(records: list[dict]) -> list[tuple[int, list[dict]]]:
    return [(start, records[start : start + CHUNK]) for start in range(0, len(records), CHUNK)]


def _prepare(records: list[dict], *, start: int, projected_at: str) -> tuple[Decoded, projection.Chunk]:
    """In the decoding thread: decode a chunk and build its upserts."""
    decoded = decode_batch(records, start=start)
    upserts = projection.prepare(decoded.newest, projected_at=projected_at)
    return decoded, projection.Chunk(decoded.newest, decoded.event_flights, upserts)


def _summarise(
    records: list[dict], *, decoded: list[Decoded], applied: projection.Applied, poison: int, queued: int, started: float
) -> None:
    """The batch's one summary line and its metrics. Duplicates are the changes not applied:
    superseded by a newer change of the same key in the batch, or refused by the version guard
    because the stored row is as new or newer (a redelivery, a replay, an older version arriving
    late; Kinesis delivers at least once and out of order). The lag is the age of the newest
    record the batch applied."""
    changes = sum(chunk.changes for chunk in decoded)
    rows = applied.customers + applied.bookings + applied.flights
    arrived = [r["kinesis"].get("approximateArrivalTimestamp") for r in records]
    newest = max((float(a) for a in arrived if a is not None), default=None)
    values = {
        "CdcRecords": len(records),
        "CdcChanges": changes,
        "CdcChangesApplied": rows,
        "CdcDuplicatesIgnored": max(changes - rows, 0),
        "CdcIgnored": sum(chunk.ignored for chunk in decoded),
        "CdcFlightEvents": applied.events,
        "CdcPoison": poison,
        "CdcPoisonNotQueued": poison - queued,
        "CdcBatchDuration": round((time.monotonic() - started) * 1000, 1),
    }
    units = {"CdcBatchDuration": observability.MILLISECONDS}
    if newest is not None:
        values["ProjectionLag"] = round(max(time.time() - newest, 0.0), 3)
        units["ProjectionLag"] = observability.SECONDS
    logger.log(
        logging.WARNING if poison else logging.INFO,
        "batch of %d: %d changes, %d rows, %d poison",
        len(records),
        changes,
        rows,
        poison,
        extra=values,
    )
    observability.record(values, units=units)


def _apply_retrying_conflicts(chunks, *, projected_at: str) -> projection.Applied:
    """`projection.apply`, run again after a deadlock or a lock wait timeout: the conflicting
    transaction of another batch has committed or is about to, so waiting a few milliseconds
    and redoing this one is cheaper and sooner than handing the whole batch back to the event
    source mapping (whose retry would also count against MaximumRetryAttempts and could end in
    the DLQ). Each retry is counted, so the rate shows on the dashboard and in the benchmark."""
    for attempt in range(CONFLICT_ATTEMPTS):
        try:
            return projection.apply(chunks(), projected_at=projected_at)
        except OperationalError as exc:
            code = conflict_code(exc)
            if code is None or attempt == CONFLICT_ATTEMPTS - 1:
                raise
            observability.count(CONFLICT_METRICS[code])
            logger.info("batch conflicted with another (%s), retrying: %s", code, exc)
            # Full jitter: two batches that deadlocked must not retry in lockstep.
            time.sleep(random.uniform(0, min(_CONFLICT_BACKOFF_CAP, _CONFLICT_BACKOFF * 2**attempt)))  # noqa: S311 (not crypto)
    raise AssertionError("unreachable")


def process(*, event: dict) -> dict:
    records = event.get("Records") or []
    if not records:
        return {"batchItemFailures": []}
    started = time.monotonic()
    _reusable_connection()
    projected_at = projection.now()
    preparing: list[Future] = []
    decoded: list[Decoded] = []

    def chunks():
        # Every chunk is queued for decoding at once; this thread applies each as soon as it
        # is ready, while the next is prepared. A retry after a conflict reuses the futures.
        if not preparing:
            preparing.extend(_decoder.submit(_prepare, chunk, start=start, projected_at=projected_at) for start, chunk in _chunks(records))
        decoded.clear()
        for future in preparing:
            chunk_decoded, chunk = future.result()  # a non-Poison error surfaces here: nothing is committed
            decoded.append(chunk_decoded)
            yield chunk

    try:
        applied = _apply_retrying_conflicts(chunks, projected_at=projected_at)
    except TRANSIENT_DB_ERRORS as exc:
        logger.warning("batch of %d not applied, Lambda will retry it: %s: %s", len(records), type(exc).__name__, exc)
        _reusable_connection()
        return _failures_from(records, 0)
    finally:
        for future in preparing:  # after a failure: no point decoding the rest
            future.cancel()
    poison = [entry for chunk in decoded for entry in chunk.poison]
    letters = [letter for _, letter in poison]
    queued = dlq.send(letters=letters) if letters else 0
    _summarise(records, decoded=decoded, applied=applied, poison=len(letters), queued=queued, started=started)
    if queued < len(letters):
        return _failures_from(records, poison[queued][0])
    return {"batchItemFailures": []}
