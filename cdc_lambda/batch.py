"""One Lambda Kinesis batch: decode all, keep the newest version per key, apply in one
transaction, dead-letter the poison, and tell Lambda what to deliver again.

Acknowledgement rules (`batchItemFailures`, Lambda resumes from the lowest identifier):
- the transaction failed for a transient reason -> everything from the first record, since
  nothing of the batch is committed;
- the DLQ did not take a poison record -> everything from that record (the records after it
  are applied again, which changes nothing);
- anything else unexpected raises: a function error, which makes Lambda (and the local
  poller) bisect the batch to isolate the record.
"""

import logging
from dataclasses import dataclass, field

from django.db import InterfaceError, OperationalError, connection

from . import dlq, projection
from .decode import Change, Poison, decode

logger = logging.getLogger(__name__)

# Database down, connection lost, deadlock, lock wait timeout, "database is locked": retry.
TRANSIENT_DB_ERRORS = (OperationalError, InterfaceError)


@dataclass(slots=True)
class Decoded:
    newest: dict[str, dict[str, Change]] = field(default_factory=dict)
    event_flights: list[Change] = field(default_factory=list)
    poison: list[tuple[int, dlq.Letter]] = field(default_factory=list)  # (index in batch, letter)
    changes: int = 0
    ignored: int = 0


def decode_batch(records: list[dict]) -> Decoded:
    decoded = Decoded()
    for index, record in enumerate(records):
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


def process(*, event: dict) -> dict:
    records = event.get("Records") or []
    if not records:
        return {"batchItemFailures": []}
    decoded = decode_batch(records)
    _reusable_connection()
    try:
        applied = projection.apply(changes=decoded.newest, event_flights=decoded.event_flights)
    except TRANSIENT_DB_ERRORS as exc:
        logger.warning("batch of %d not applied, Lambda will retry it: %s: %s", len(records), type(exc).__name__, exc)
        _reusable_connection()
        return _failures_from(records, 0)
    letters = [letter for _, letter in decoded.poison]
    queued = dlq.send(letters=letters) if letters else 0
    logger.info(
        "batch of %d: %d changes (%d customers, %d bookings, %d flights newest), %d flight events, %d ignored, %d poison",
        len(records),
        decoded.changes,
        applied.customers,
        applied.bookings,
        applied.flights,
        applied.events,
        decoded.ignored,
        len(letters),
    )
    if queued < len(letters):
        return _failures_from(records, decoded.poison[queued][0])
    return {"batchItemFailures": []}
