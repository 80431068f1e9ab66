"""Apply a batch of decoded changes to the read models: a constant number of bulk statements
in one transaction, on MySQL/MariaDB and on SQLite.

The batch arrives in chunks of at most `batch.CHUNK` records. Per chunk: one conditional upsert
of its bookings. Once per batch: for flights one locking SELECT of the stored versions (to know
whose route stops to replace), one DELETE and one INSERT of stops, one conditional upsert; for customers one
plain SELECT of the stored versions (to count the changes the guard refuses) and one
conditional upsert; one INSERT of flight events that ignores duplicates. (A
statement is also split to stay under the driver's limits, only for very large batches.)

Bookings also move their flight's passenger counts (`FlightPassengerCount`): one locking
SELECT of the stored bookings per chunk, one upsert of the deltas per batch; and reopen the
processed events of flights that gained a booking (one UPDATE).

Concurrent batches (other shards, other lanes of a shard: see `poller`) never write the same
booking, customer or flight row, because an item's changes share a partition key, hence a shard
and a lane. What they share is the per-flight count rows (hot: a popular flight's bookings come
from every shard) and index pages. Rows are locked in key order within each statement, and the
count rows last, once per batch (see `apply`). The isolation level is READ COMMITTED (Django's
MySQL default), so the locking SELECTs take no gap locks. A deadlock or a lock wait timeout that
remains is retried in place by `batch.process` and counted.

Every upsert is conditional on the incoming change being newer than the stored row (see
`Change.rank`), inside the statement itself, so a stale or repeated change is a no-op even
without the SELECT.
All SQL is parameterised; identifiers come from the models, never from the data.
"""

import functools
import sqlite3
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from contextlib import closing
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from typing import NamedTuple

from django.db import connection, transaction

from admin_portal.models import BookingStatus, FlightEvent, FlightPassengerCount, FlightStop

from .decode import CUSTOMER, FLIGHT, ORDER, TARGETS, Change
from .stops import stop_times

# mysqlclient builds the statement text client-side: keep one statement well under the
# server's max_allowed_packet (16 MB by default) even with long names.
_MYSQL_ROWS_PER_STATEMENT = 5000
_STOP_COLUMNS = ("flight_id", "seq", "airport_id", "kind", "flight_date", "local_time")
_DEPARTS, _ARRIVES = (TARGETS[FLIGHT].columns.index(c) for c in ("departure_time", "arrival_time"))
_EVENT_COLUMNS = ("flight_id", "flight_created_at", "kind", "flight_version", "detail", "created_at")
_FLIGHT_DATE = TARGETS[FLIGHT].columns.index("flight_date")
_BOOKING_FLIGHT = TARGETS[ORDER].columns.index("flight_id")
_BOOKING_STATUS = TARGETS[ORDER].columns.index("status")
_COUNT_COLUMNS = ("flight_id", "status", "passengers")


@dataclass(frozen=True, slots=True)
class Applied:
    """Changes applied per table: those newer than the stored row when they reached it, by the
    upsert's own rule (a key won in several chunks of a batch counts once per chunk). A change
    the version guard refused (a replay, an older version delivered late) is not counted."""

    customers: int
    bookings: int
    flights: int
    events: int


def _q(name: str) -> str:
    return connection.ops.quote_name(name)


def _values(width: int, rows: int) -> str:
    one = "(" + ", ".join(["%s"] * width) + ")"
    return ", ".join([one] * rows)


@functools.cache
def _max_params() -> int:
    if connection.vendor == "sqlite":
        # Django assumes SQLite's historical 999; the library here allows far more. A limit of
        # the library, so a throwaway database tells it (and any thread may ask).
        with closing(sqlite3.connect(":memory:")) as probe:
            return probe.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)
    return 10**9


def _chunks(rows: Sequence[tuple], width: int) -> Iterable[Sequence[tuple]]:
    size = max(1, min(_MYSQL_ROWS_PER_STATEMENT, _max_params() // width))
    for start in range(0, len(rows), size):
        yield rows[start : start + size]


def _flat(rows: Iterable[tuple]) -> list:
    return [value for row in rows for value in row]


def _insert_sql(table: str, columns: Sequence[str], rows: int) -> str:
    # S608: identifiers come from the models and every value is a placeholder.
    return f"INSERT INTO {_q(table)} ({', '.join(_q(c) for c in columns)}) VALUES {_values(len(columns), rows)}"  # noqa: S608


def _where_in_sql(statement: str, column: str, count: int) -> str:
    return f"{statement} WHERE {_q(column)} IN ({', '.join(['%s'] * count)})"


def _upsert_sql(table: str, columns: Sequence[str], rows: int) -> str:
    """INSERT that, on a key clash, overwrites the row only if the incoming change is newer:
    (created_at, version) greater than the stored pair, as `Change.rank`."""
    head = _insert_sql(table, columns, rows)
    key, version, created = _q(columns[0]), _q("version"), _q("created_at")
    plain = [c for c in columns[1:] if c not in ("version", "created_at")]
    if connection.vendor == "mysql":
        # Assignments run left to right and later ones see earlier results, so the pair the
        # condition reads is assigned last: version, then created_at (which never decreases
        # when the change wins, and cannot increase when it loses).
        newer = f"({created} IS NULL OR (VALUES({created}), VALUES({version})) > ({created}, {version}))"
        sets = [f"{_q(c)} = IF({newer}, VALUES({_q(c)}), {_q(c)})" for c in plain]
        sets.append(f"{version} = IF({newer}, VALUES({version}), {version})")
        sets.append(f"{created} = IF({created} IS NULL OR VALUES({created}) > {created}, VALUES({created}), {created})")
        return f"{head} ON DUPLICATE KEY UPDATE {', '.join(sets)}"
    sets = ", ".join(f"{_q(c)} = excluded.{_q(c)}" for c in columns[1:])
    stored_created, stored_version = f"{_q(table)}.{created}", f"{_q(table)}.{version}"
    newer = f"{stored_created} IS NULL OR (excluded.{created}, excluded.{version}) > ({stored_created}, {stored_version})"
    return f"{head} ON CONFLICT ({key}) DO UPDATE SET {sets} WHERE {newer}"


def _insert_ignoring_duplicates_sql(table: str, columns: Sequence[str], rows: int) -> str:
    head = _insert_sql(table, columns, rows)
    if connection.vendor == "mysql":
        # Not INSERT IGNORE: that would also swallow data errors, not just the duplicate.
        return f"{head} ON DUPLICATE KEY UPDATE {_q('id')} = {_q('id')}"
    return f"{head} ON CONFLICT DO NOTHING"


def _upserts(*, entity: str, changes: Iterable[Change], projected_at: str) -> Iterator[tuple[str, list]]:
    target = TARGETS[entity]
    columns = (*target.columns, "projected_at")
    # Sorted by key so concurrent batches lock rows in the same order (no deadlock cycles). A
    # batch's bookings are locked chunk by chunk, each sorted; concurrent batches come from other
    # shards, i.e. other items, and a deadlock on shared index gaps is retried as transient.
    rows = [(*c.row, projected_at) for c in sorted(changes, key=lambda c: c.key)]
    for chunk in _chunks(rows, len(columns)):
        yield _upsert_sql(target.table, columns, len(chunk)), _flat(chunk)


def _upsert(cursor, *, entity: str, changes: list[Change], projected_at: str) -> None:
    for sql, params in _upserts(entity=entity, changes=changes, projected_at=projected_at):
        cursor.execute(sql, params)


def stored_rows(cursor, *, entity: str, keys: Sequence[str], columns: Sequence[str] | None = None, lock: bool = False) -> dict[str, tuple]:
    """Stored rows of `keys`: key -> the row's `columns` (the entity's key first; by default
    every `TARGETS` column, in order), as the database returns them. With `lock`, locked until
    the transaction ends."""
    target = TARGETS[entity]
    key = target.columns[0]
    columns = target.columns if columns is None else (key, *columns)
    lock_sql = " FOR UPDATE" if lock and connection.vendor == "mysql" else ""  # SQLite: one writer at a time anyway
    select = f"SELECT {', '.join(_q(c) for c in columns)} FROM {_q(target.table)}"  # noqa: S608 (identifiers from the model)
    found: dict[str, tuple] = {}
    for chunk in _chunks(keys, 1):
        cursor.execute(_where_in_sql(select, key, len(chunk)) + lock_sql, list(chunk))
        found.update((row[0], row) for row in cursor.fetchall())
    return found


def _stored(cursor, *, entity: str, keys: list[str], extra: tuple[str, ...] = (), lock: bool = True) -> dict[str, tuple]:
    """Stored rows of `keys` (locked until the transaction ends, by default): key -> (rank, *extra)."""
    rows = stored_rows(cursor, entity=entity, keys=keys, columns=("created_at", "version", *extra), lock=lock)
    # str() of the naive datetime is the text the changes carry (see decode.Image.instant).
    return {key: (("" if created is None else str(created), version), *rest) for key, (_, created, version, *rest) in rows.items()}


def _stored_ranks(cursor, *, entity: str, keys: list[str], lock: bool) -> dict[str, tuple[str, int]]:
    return {key: rank for key, (rank,) in _stored(cursor, entity=entity, keys=keys, lock=lock).items()}


def _winners(cursor, *, entity: str, changes: list[Change], lock: bool = True) -> list[Change]:
    """The changes the conditional upsert will apply: newer than the stored row."""
    stored = _stored_ranks(cursor, entity=entity, keys=sorted(c.key for c in changes), lock=lock)
    return [c for c in changes if c.key not in stored or c.rank > stored[c.key]]


def _count_changes(cursor, *, bookings: Iterable[Change], deltas: Counter, arrived: set[str]) -> int:
    """Before a chunk's booking upsert: what each winning change does to its flight's passenger
    counts (the stored row leaves its (flight, status), the new one joins its own). Read from
    the locked stored rows, with the upsert's own rule for who wins, so a duplicate, a stale
    change or a replay moves nothing. `arrived` collects the flights that gained an ORDERED
    booking. Returns how many of the changes win."""
    bookings = sorted(bookings, key=lambda c: c.key)
    if not bookings:
        return 0
    won = 0
    stored = _stored(cursor, entity=ORDER, keys=[c.key for c in bookings], extra=("flight_id", "status", "deleted"))
    for change in bookings:
        old = stored.get(change.key)
        if old is not None:
            rank, flight, status, deleted = old
            if change.rank <= rank:
                continue
            if not deleted:
                deltas[flight, status] -= 1
        won += 1
        if not change.deleted:
            flight, status = change.row[_BOOKING_FLIGHT], change.row[_BOOKING_STATUS]
            deltas[flight, status] += 1
            if status == BookingStatus.ORDERED:
                arrived.add(flight)
    return won


def _add_counts(cursor, *, deltas: Counter) -> None:
    rows = sorted((flight, status, delta) for (flight, status), delta in deltas.items() if delta)
    table = FlightPassengerCount._meta.db_table
    passengers = _q("passengers")
    for chunk in _chunks(rows, len(_COUNT_COLUMNS)):
        head = _insert_sql(table, _COUNT_COLUMNS, len(chunk))
        if connection.vendor == "mysql":
            sql = f"{head} ON DUPLICATE KEY UPDATE {passengers} = {passengers} + VALUES({passengers})"
        else:
            sql = (
                f"{head} ON CONFLICT ({_q('flight_id')}, {_q('status')}) DO UPDATE SET {passengers} = {passengers} + excluded.{passengers}"
            )
        cursor.execute(sql, _flat(chunk))


def _reopen_events(cursor, *, flights: set[str]) -> None:
    """A booking that reaches the read model after its flight's events were processed (shard
    lag, a poller outage, a DLQ redrive days later) reopens them: the notifier then tells that
    passenger too, and only that passenger (the others are already notified)."""
    table = FlightEvent._meta.db_table
    update = f"UPDATE {_q(table)} SET {_q('processed_at')} = NULL"  # noqa: S608 (identifiers from the model)
    for chunk in _chunks(sorted(flights), 1):
        cursor.execute(_where_in_sql(update, "flight_id", len(chunk)) + f" AND {_q('processed_at')} IS NOT NULL", list(chunk))


def stop_rows(change: Change) -> list[tuple]:
    """Each stop on the local date (and at the local time) the flight is there: see `stops`."""
    if change.deleted:  # a removed flight touches no city
        return []
    day, departs, arrives = change.row[_FLIGHT_DATE], change.row[_DEPARTS], change.row[_ARRIVES]
    stops = stop_times(change.route, date.fromisoformat(day), time.fromisoformat(departs), time.fromisoformat(arrives))
    return [(change.key, seq, code, kind, str(day), None if at is None else str(at)) for seq, code, kind, day, at in stops]


def _replace_stops(cursor, *, winners: list[Change]) -> None:
    """Stops follow the flight row: only flights whose change wins get their stops rewritten."""
    if not winners:
        return
    table = FlightStop._meta.db_table
    keys = [c.key for c in winners]
    for chunk in _chunks(keys, 1):
        cursor.execute(_where_in_sql(f"DELETE FROM {_q(table)}", "flight_id", len(chunk)), list(chunk))  # noqa: S608 (identifiers from the model)
    rows = [row for change in winners for row in stop_rows(change)]
    for chunk in _chunks(rows, len(_STOP_COLUMNS)):
        cursor.execute(_insert_sql(table, _STOP_COLUMNS, len(chunk)), _flat(chunk))


def rewrite_stops(*, flights: list[Change]) -> None:
    """Write the stops of these flights again whatever the stored rank (reconcile's repair of
    stops that drifted from a flight row that is itself current)."""
    with transaction.atomic(), connection.cursor() as cursor:
        keys = sorted(c.key for c in flights)
        table = FlightStop._meta.db_table
        for chunk in _chunks(keys, 1):
            cursor.execute(_where_in_sql(f"DELETE FROM {_q(table)}", "flight_id", len(chunk)), list(chunk))  # noqa: S608 (identifiers from the model)
        rows = [row for change in flights for row in stop_rows(change)]
        for chunk in _chunks(rows, len(_STOP_COLUMNS)):
            cursor.execute(_insert_sql(table, _STOP_COLUMNS, len(chunk)), _flat(chunk))


def _insert_events(cursor, *, flights: Iterable[Change], created_at: str) -> int:
    rows = [(c.key, c.rank[0], kind, c.version, detail, created_at) for c in flights for kind, detail in c.events]
    for chunk in _chunks(rows, len(_EVENT_COLUMNS)):
        cursor.execute(_insert_ignoring_duplicates_sql(FlightEvent._meta.db_table, _EVENT_COLUMNS, len(chunk)), _flat(chunk))
    return len(rows)


def now() -> str:
    """The batch's projected_at (and flight events' created_at)."""
    return str(datetime.now(UTC).replace(tzinfo=None))


class Chunk(NamedTuple):
    """Decoded changes of consecutive records of a batch: the newest change per key, by entity;
    every flight change that carries domain events (older versions included: each event
    happened); and the customer and booking upserts, from `prepare`."""

    changes: dict[str, dict[str, Change]]
    event_flights: list[Change]
    upserts: list[tuple[str, list]]


# Bookings are most of the changes and of the database's work: they are written chunk by chunk,
# so that the next chunk is decoded meanwhile. Customers and flights are fewer: collected, newest
# per key, and written once after the last chunk (fewer statements; flights take five).
_PER_CHUNK = (ORDER,)
_PER_BATCH = (CUSTOMER, FLIGHT)


def prepare(changes: dict[str, dict[str, Change]], *, projected_at: str) -> list[tuple[str, list]]:
    """A chunk's statements, as SQL and parameters. Sends no query (it reads only the backend's
    vendor and quoting), so the decoding thread builds them."""
    return [
        (sql, params)
        for entity in _PER_CHUNK
        if entity in changes
        for sql, params in _upserts(entity=entity, changes=changes[entity].values(), projected_at=projected_at)
    ]


def apply(chunks: Iterable[Chunk], *, projected_at: str) -> Applied:
    """Apply the chunks of one batch, in order, in one transaction.

    `chunks` may be lazy (see `batch.process`): the next chunk is decoded while this one's
    statements run. A key in several chunks is harmless: each upsert is conditional on the
    stored rank, so the read model is the one a single chunk would give."""
    bookings = customers_won = flights_won = 0
    newest: dict[str, dict[str, Change]] = {entity: {} for entity in _PER_BATCH}
    event_flights: list[Change] = []
    deltas: Counter = Counter()
    arrived: set[str] = set()
    with transaction.atomic(), connection.cursor() as cursor:
        for chunk in chunks:
            bookings += _count_changes(cursor, bookings=chunk.changes.get(ORDER, {}).values(), deltas=deltas, arrived=arrived)
            for sql, params in chunk.upserts:
                cursor.execute(sql, params)
            for entity, kept in newest.items():
                for key, change in chunk.changes.get(entity, {}).items():
                    if key not in kept or change.rank > kept[key].rank:
                        kept[key] = change
            event_flights += chunk.event_flights
        customers, flights = list(newest[CUSTOMER].values()), list(newest[FLIGHT].values())
        if flights:
            winners = _winners(cursor, entity=FLIGHT, changes=flights)  # the stored ranks, before the upsert moves them
            flights_won = len(winners)
            _replace_stops(cursor, winners=winners)
            _upsert(cursor, entity=FLIGHT, changes=flights, projected_at=projected_at)
        if customers:
            # Only to count what the guard refuses (CdcDuplicatesIgnored): a plain read, no lock,
            # so the upsert is still the statement that waits for a row another writer holds.
            # A key lives on one shard, so no other batch writes it meanwhile (a rebuild may:
            # then the count can be off by that row; the upsert's own guard stays exact).
            customers_won = len(_winners(cursor, entity=CUSTOMER, changes=customers, lock=False))
            _upsert(cursor, entity=CUSTOMER, changes=customers, projected_at=projected_at)
        events = _insert_events(cursor, flights=event_flights, created_at=projected_at)
        if arrived:
            _reopen_events(cursor, flights=arrived)
        # Last: the per-flight counts are the rows every concurrent batch writes (all the
        # bookings of a flight, from every shard and lane). One increment per (flight, status)
        # for the whole batch, in key order (no lock cycles between batches), taken just before
        # the commit, so a batch holds a hot row for the commit's duration only.
        _add_counts(cursor, deltas=deltas)
    return Applied(customers=customers_won, bookings=bookings, flights=flights_won, events=events)
