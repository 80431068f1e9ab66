"""Rebuild and reconcile the read models from DynamoDB, the source of truth, while the stream
keeps flowing.

Every item read from the table goes the stream's own way: it becomes the Lambda Kinesis record
of an INSERT of that item, in the shape the streaming destination writes, and `batch.process`
decodes and projects it. The projection's version guard (`Change.rank`) makes that safe beside
the live stream: whichever carries the newer version wins, and an equal one changes nothing.
A flight's INSERT carries no domain event, so a rebuild notifies nobody. An item the decoder
refuses goes to the DLQ with its reason, like any poison record.

A read row whose item is gone is tombstoned the same way: one version past the stored row,
through the same conditional upsert, so a newer stream change still wins. Only rows projected
before the scan began are candidates, and each is looked up again in the table (consistent
read) first, so a row the stream created during the rebuild is never removed.
"""

import gzip
import json
import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime
from datetime import time as dt_time
from pathlib import Path
from urllib.parse import urlsplit

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Count

from admin_portal.models import Booking, FlightPassengerCount, FlightStop, ReconcileRun
from airticket import aws, observability
from bookings import repository as repo

from . import batch, bridge, poller, projection
from .decode import CUSTOMER, FLIGHT, ORDER, TARGETS, Change, Poison, decode

logger = logging.getLogger(__name__)

ENTITIES = {"customers": CUSTOMER, "orders": ORDER, "flights": FLIGHT}
SOURCE_ARN = "arn:aws:dynamodb:rebuild"  # names the rebuild in DLQ letters, in place of a stream
PAGE = 500  # items per projected batch of an export file
# A Scan page is DynamoDB's own (at most 1 MB): no Limit, because every page costs a request,
# and moto walks the whole table for each one.
_BATCH_GET = 100  # BatchGetItem's limit
_APPLY_ATTEMPTS = 5
SAMPLES = 5  # sample keys reported per kind of difference


# --- items as stream records -----------------------------------------------------------------


def as_records(items: list[dict], *, source: str) -> list[dict]:
    """Marshalled items (as Scan returns them) -> Lambda Kinesis records of their INSERTs."""
    arrived = datetime.now(UTC)
    records = []
    for number, item in enumerate(items, 1):
        keys = {"PK": item["PK"], "SK": item["SK"]}
        entry = bridge.to_kinesis_record({"eventName": "INSERT", "dynamodb": {"Keys": keys, "NewImage": item}})
        raw = {
            "SequenceNumber": str(number),
            "PartitionKey": entry["PartitionKey"],
            "Data": entry["Data"],
            "ApproximateArrivalTimestamp": arrived,
        }
        records.append(poller.lambda_record(record=raw, shard_id=source, stream_arn=SOURCE_ARN))
    return records


def project(items: list[dict], *, source: str) -> None:
    """Project items through the CDC handler's own path; a transient database failure is
    retried, anything else raises (nothing half-applied: a batch is one transaction)."""
    if not items:
        return
    event = {"Records": as_records(items, source=source)}
    for attempt in range(1, _APPLY_ATTEMPTS + 1):
        if not batch.process(event=event)["batchItemFailures"]:
            return
        time.sleep(min(2**attempt * 0.1, 5))
    raise RuntimeError(f"{source}: the read database did not take a batch after {_APPLY_ATTEMPTS} attempts")


# --- reading the table: a parallel Scan, or an S3 export ------------------------------------


def _entity_filter(only: list[str]) -> dict:
    if not only:
        return {}
    names = {f":e{n}": {"S": entity} for n, entity in enumerate(only)}
    return {
        "FilterExpression": f"#entity IN ({', '.join(names)})",
        "ExpressionAttributeNames": {"#entity": "entity"},
        "ExpressionAttributeValues": names,
    }


def scan_pages(*, segment: int, total: int, start: dict | None, only: list[str]) -> Iterator[tuple[list[dict], dict | None]]:
    """One segment of a parallel, strongly consistent Scan: (items, position after them)."""
    request = {"TableName": settings.DYNAMODB_TABLE, "Segment": segment, "TotalSegments": total, "ConsistentRead": True}
    request |= _entity_filter(only)
    while True:
        page = aws.dynamodb().scan(**request, **({"ExclusiveStartKey": start} if start else {}))
        start = page.get("LastEvaluatedKey")
        yield page["Items"], start
        if not start:
            return


def export_files(url: str) -> list[tuple[str, str]]:
    """(bucket, key) of every data file of a DynamoDB JSON export under `s3://bucket/prefix/`.
    AWS lists them in manifest-files.json (one JSON object per line, naming `dataFileS3Key`);
    an export without a manifest (moto writes none) is read from its `data/` files."""
    parts = urlsplit(url)
    if parts.scheme != "s3" or not parts.netloc:
        raise ValueError(f"--from-export takes s3://bucket/prefix/, not {url!r}")
    bucket, prefix = parts.netloc, parts.path.lstrip("/")
    s3 = aws.client("s3")
    keys = [
        entry["Key"]
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        for entry in page.get("Contents", [])
    ]
    manifests = sorted(key for key in keys if key.endswith("manifest-files.json"))
    if manifests:
        lines = [line for manifest in manifests for line in s3.get_object(Bucket=bucket, Key=manifest)["Body"].read().decode().splitlines()]
        files = [json.loads(line)["dataFileS3Key"] for line in lines if line.strip()]
    else:
        files = sorted(key for key in keys if "/AWSDynamoDB/" in key and "/data/" in key and key.endswith(".gz"))
    if not files:
        raise ValueError(f"no DynamoDB export under {url}")
    return [(bucket, key) for key in files]


def export_items(bucket: str, key: str, *, only: list[str]) -> list[dict]:
    body = aws.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read()
    text = gzip.decompress(body).decode() if key.endswith(".gz") else body.decode()
    items = [json.loads(line)["Item"] for line in text.splitlines() if line.strip()]
    return [item for item in items if not only or item.get("entity", {}).get("S") in only]


# --- progress and resumption -----------------------------------------------------------------


@dataclass
class Progress:
    """Items/s and an ETA: a bar redrawn in place on a terminal, a log line every few seconds
    otherwise."""

    total: int
    out: Callable[[str], None]
    tty: bool = False
    done: int = 0
    started: float = field(default_factory=time.monotonic)
    _shown: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, count: int) -> None:
        with self._lock:
            self.done += count
            now = time.monotonic()
            if now - self._shown >= (0.2 if self.tty else 5.0):
                self._shown = now
                self.out(self.line())

    def line(self) -> str:
        elapsed = max(time.monotonic() - self.started, 1e-6)
        rate = self.done / elapsed
        total = max(self.total, self.done)
        eta = f"{(total - self.done) / rate:.0f} s" if rate and total else "?"
        if self.tty:
            filled = int(30 * self.done / total) if total else 30
            return f"\r  [{'#' * filled}{'.' * (30 - filled)}] {self.done}/{total} items, {rate:.0f} items/s, ETA {eta}  "
        return f"  {self.done}/{total} items, {rate:.0f} items/s, ETA {eta}"


@dataclass
class RebuildState:
    """What a rebuild has done, saved after every page so an interrupted one resumes.
    `parts` maps a segment (or an export file) to its position: None not started, a key to go
    on after, or "done"."""

    plan: dict
    started_at: str
    parts: dict[str, object]

    @classmethod
    def load_or_start(cls, path: Path | None, *, plan: dict, parts: list[str]) -> "RebuildState":
        if path and path.exists():
            saved = json.loads(path.read_text())
            if saved.get("plan") == plan:
                return cls(**saved)
            logger.warning("%s belongs to another rebuild (%s): starting over", path, saved.get("plan"))
        return cls(plan=plan, started_at=datetime.now(UTC).isoformat(), parts=dict.fromkeys(parts))

    def save(self, path: Path | None) -> None:
        if path:
            path.parent.mkdir(parents=True, exist_ok=True)
            temporary = path.with_suffix(".tmp")
            temporary.write_text(json.dumps(asdict(self)))
            temporary.replace(path)  # atomic: a kill leaves the old state or the new one


# --- rebuild ---------------------------------------------------------------------------------


@dataclass
class RebuildResult:
    items: int
    resumed_parts: int
    tombstoned: dict[str, int]
    seconds: float


def read_database_unready() -> str | None:
    """Why the read database cannot take a rebuild yet (None: it can): a new, empty database
    (after losing the old one) has no tables until `migrate`."""
    from django.db.migrations.executor import MigrationExecutor

    executor = MigrationExecutor(connection)
    if executor.migration_plan(executor.loader.graph.leaf_nodes()):
        return "the read database is not migrated: run `manage.py migrate` first (and `manage.py load_airports` for the city search)"
    return None


def _table_item_count() -> int:
    # DynamoDB refreshes ItemCount about every six hours: good enough for an ETA.
    return aws.dynamodb().describe_table(TableName=settings.DYNAMODB_TABLE)["Table"].get("ItemCount", 0)


def rebuild(
    *,
    segments: int = 4,
    only: Iterable[str] = (),
    from_export: str | None = None,
    max_items_per_second: float | None = None,
    state_path: Path | None = None,
    out: Callable[[str], None] = logger.info,
    tty: bool = False,
) -> RebuildResult:
    entities = sorted(ENTITIES[name] for name in only) if only else []
    if from_export:
        files = export_files(from_export)
        parts = {f"{bucket}/{key}": (bucket, key) for bucket, key in files}
    else:
        parts = {str(n): n for n in range(segments)}
    plan = {"table": settings.DYNAMODB_TABLE, "source": from_export or f"scan/{segments}", "only": entities}
    state = RebuildState.load_or_start(state_path, plan=plan, parts=list(parts))
    save_lock = threading.Lock()
    throttle = _Throttle(max_items_per_second)
    progress = Progress(total=0 if from_export else _table_item_count(), out=out, tty=tty)
    began = time.monotonic()
    resumed = sum(1 for position in state.parts.values() if position is not None)

    def record(part: str, position: object) -> None:
        with save_lock:
            state.parts[part] = position
            state.save(state_path)

    def run_part(part: str) -> None:
        try:
            if state.parts[part] == "done":
                return
            if from_export:
                items = export_items(*parts[part], only=entities)
                for start in range(0, len(items), PAGE):
                    page = items[start : start + PAGE]
                    throttle.take(len(page))
                    project(page, source=f"export:{part}")
                    progress.add(len(page))
            else:
                start = state.parts[part]
                for items, position in scan_pages(segment=parts[part], total=segments, start=start, only=entities):
                    throttle.take(len(items))
                    project(items, source=f"scan:{part}/{segments}")
                    progress.add(len(items))
                    record(part, position or "done")
            record(part, "done")
        finally:
            connection.close()  # each worker thread has its own connection

    with ThreadPoolExecutor(max_workers=len(parts) or 1, thread_name_prefix="rebuild") as pool:
        list(pool.map(run_part, list(parts)))
    if tty:
        out(progress.line() + "\n")
    tombstoned = tombstone_vanished(entities=entities or list(ENTITIES.values()), before=datetime.fromisoformat(state.started_at))
    if state_path and state_path.exists():
        state_path.unlink()  # finished: the next rebuild starts afresh
    return RebuildResult(items=progress.done, resumed_parts=resumed, tombstoned=tombstoned, seconds=time.monotonic() - began)


class _Throttle:
    """At most `rate` items per second over all workers (None: no limit)."""

    def __init__(self, rate: float | None):
        self.rate, self.next_at, self.lock = rate, time.monotonic(), threading.Lock()

    def take(self, count: int) -> None:
        if not self.rate:
            return
        with self.lock:
            wait = self.next_at - time.monotonic()
            self.next_at = max(self.next_at, time.monotonic()) + count / self.rate
        if wait > 0:
            time.sleep(wait)


# --- the read side's rows --------------------------------------------------------------------


def _stored_rows(entity: str, keys: list[str]) -> dict[str, tuple]:
    """The stored rows of `keys`, in `TARGETS` column order, as the database returns them."""
    with connection.cursor() as cursor:
        return projection.stored_rows(cursor, entity=entity, keys=keys)


def _text_instant(value) -> str:
    """The stored created_at as the text changes carry (see `decode._utc_text`)."""
    if isinstance(value, datetime):
        return str(value.astimezone(UTC).replace(tzinfo=None) if value.tzinfo else value)
    return str(value)


def _stored_rank(row: tuple) -> tuple[str, int]:
    return _text_instant(row[3]), int(row[1])


def _item_key(entity: str, row: tuple) -> dict:
    """The DynamoDB key of a read row."""
    if entity == CUSTOMER:
        return repo.customer_key(row[0])
    if entity == ORDER:
        return repo.order_key(row[5], row[0])  # customer_id is the booking's sixth column
    number, _, day = row[0].partition("#")
    return repo.flight_key(number, day)


def _items_now(keys: list[dict], *, projection_expression: str | None = None) -> dict[tuple[str, str], dict]:
    """The items these DynamoDB keys hold now (consistent reads), by (PK, SK)."""
    found: dict[tuple[str, str], dict] = {}
    for start in range(0, len(keys), _BATCH_GET):
        request = {
            settings.DYNAMODB_TABLE: {
                "Keys": [repo.marshal(k) for k in keys[start : start + _BATCH_GET]],
                "ConsistentRead": True,
                **({"ProjectionExpression": projection_expression} if projection_expression else {}),
            }
        }
        while request:
            reply = aws.dynamodb().batch_get_item(RequestItems=request)
            found.update(((item["PK"]["S"], item["SK"]["S"]), item) for item in reply["Responses"].get(settings.DYNAMODB_TABLE, []))
            request = reply.get("UnprocessedKeys") or None
    return found


def _existing(keys: list[dict]) -> set[tuple[str, str]]:
    """Which of these DynamoDB keys hold an item now."""
    return set(_items_now(keys, projection_expression="PK, SK"))


def _tombstone(entity: str, row: tuple) -> Change:
    version = int(row[1]) + 1
    # Dates and times as the text a decoded change carries: the row comes back from the database
    # as Python objects, and SQLite's driver binds no `time` (MySQL's takes either).
    values = [value.isoformat() if isinstance(value, date | dt_time) and not isinstance(value, datetime) else value for value in row]
    values[1], values[2], values[3] = version, True, _text_instant(row[3])
    route = ()
    if entity == FLIGHT:
        transfers = row[TARGETS[FLIGHT].columns.index("transfers")]
        origin, destination = row[TARGETS[FLIGHT].columns.index("origin_id")], row[TARGETS[FLIGHT].columns.index("destination_id")]
        route = (origin, *(json.loads(transfers) if isinstance(transfers, str) else transfers), destination)
    return Change(entity, row[0], version, True, tuple(values), route=route)


def apply_changes(changes: list[Change]) -> None:
    if not changes:
        return
    by_entity: dict[str, dict[str, Change]] = {}
    for change in changes:
        by_entity.setdefault(change.entity, {})[change.key] = change
    projected_at = projection.now()
    projection.apply([projection.Chunk(by_entity, [], projection.prepare(by_entity, projected_at=projected_at))], projected_at=projected_at)


def _live_key_pages(entity: str, *, before: datetime | None) -> Iterator[list[str]]:
    """Keys of live read rows (projected before `before`, if given), a page at a time."""
    model, key = TARGETS[entity].model, TARGETS[entity].columns[0]
    rows = model.objects.filter(deleted=False)
    if before is not None:
        rows = rows.filter(projected_at__lt=before)
    last = None
    while True:
        page = rows.filter(**({f"{key}__gt": last} if last is not None else {})).order_by(key).values_list(key, flat=True)[:_BATCH_GET]
        keys = list(page)
        if not keys:
            return
        yield keys
        last = keys[-1]


def vanished_rows(entity: str, *, before: datetime | None = None) -> Iterator[tuple]:
    """Live read rows whose item is no longer in the table."""
    for keys in _live_key_pages(entity, before=before):
        rows = [row for row in _stored_rows(entity, keys).values() if not row[2]]
        present = _existing([_item_key(entity, row) for row in rows])
        for row in rows:
            key = _item_key(entity, row)
            if (key["PK"], key["SK"]) not in present:
                yield row


def tombstone_vanished(*, entities: list[str], before: datetime) -> dict[str, int]:
    counts = {}
    for entity in entities:
        stones = [_tombstone(entity, row) for row in vanished_rows(entity, before=before)]
        for start in range(0, len(stones), PAGE):
            apply_changes(stones[start : start + PAGE])
        counts[entity] = len(stones)
    return counts


# --- reconcile -------------------------------------------------------------------------------

MISSING, STALE, STOPS, EXTRA, AHEAD, UNREADABLE = "missing", "stale", "stops", "extra", "ahead", "unreadable"
COUNTS = "COUNTS"  # the per-flight passenger counts, checked against the bookings they count
_STOP_FIELDS = ("seq", "airport_id", "kind", "flight_date", "local_time")


@dataclass
class Report:
    items: int = 0
    counts: dict[str, dict[str, int]] = field(default_factory=dict)  # entity -> kind -> n
    samples: dict[str, dict[str, list[str]]] = field(default_factory=dict)
    repaired: int = 0

    @property
    def differences(self) -> int:
        return sum(n for kinds in self.counts.values() for n in kinds.values())

    def add(self, entity: str, kind: str, key: str) -> None:
        self.counts.setdefault(entity, {}).setdefault(kind, 0)
        self.counts[entity][kind] += 1
        samples = self.samples.setdefault(entity, {}).setdefault(kind, [])
        if len(samples) < SAMPLES:
            samples.append(key)

    def lines(self) -> list[str]:
        if not self.differences:
            return [f"reconcile: {self.items} items, 0 differences"]
        lines = [f"reconcile: {self.items} items, {self.differences} differences"]
        for entity, kinds in sorted(self.counts.items()):
            for kind, n in sorted(kinds.items()):
                lines.append(f"  {entity.lower()} {kind}: {n} (e.g. {', '.join(self.samples[entity][kind])})")
        return lines


def _stops_differ(change: Change) -> bool:
    """The stored stops are not the ones the projection writes for this flight: its route, on
    the local dates and at the local times the flight is there (see `cdc_lambda.stops`)."""
    rows = FlightStop.objects.filter(flight_id=change.key).order_by("seq", "flight_date")
    stored = [(seq, code, kind, str(day), None if at is None else str(at)) for seq, code, kind, day, at in rows.values_list(*_STOP_FIELDS)]
    return stored != [row[1:] for row in projection.stop_rows(change)]


@dataclass(frozen=True)
class _Suspect:
    """An item whose row did not match it when the page was compared."""

    entity: str
    change: Change  # as scanned
    item: dict


def _compare_page(items: list[dict], report: Report) -> tuple[list[_Suspect], list[Change]]:
    """Compare one page of items with their rows; returns the items whose row is absent, older
    or newer (to confirm, see `_confirmed`) and the flights whose stops to write again."""
    changes: dict[str, list[tuple[Change, dict]]] = {}
    for record, item in zip(as_records(items, source="reconcile"), items, strict=True):
        try:
            change = decode(record)
        except Poison:
            report.add(item.get("entity", {}).get("S", "?"), UNREADABLE, f"{item['PK']['S']}|{item['SK']['S']}")
            continue
        if change is not None:
            changes.setdefault(change.entity, []).append((change, item))
            report.items += 1
    suspects, stops = [], []
    for entity, pairs in changes.items():
        stored = _stored_rows(entity, [change.key for change, _ in pairs])
        for change, item in pairs:
            row = stored.get(change.key)
            if row is None or row[2] or _stored_rank(row) != change.rank:
                suspects.append(_Suspect(entity, change, item))
            elif entity == FLIGHT and _stops_differ(change):
                # The row is current, so projecting it again would change nothing.
                report.add(entity, STOPS, change.key)
                stops.append(change)
    return suspects, stops


def _confirmed(suspects: list[_Suspect], *, settle_seconds: float) -> list[tuple[str, str, Change, dict]]:
    """The suspects that really differ, as (entity, kind, change, current item).

    While the stream flows, a row and a Scan page disagree for a moment: the page may hold a
    version the stream has not applied yet, or the stream may have applied one written after the
    page was read. So after `settle_seconds` (time for the stream to deliver what was scanned),
    each suspect's row is read again, then its item (consistently; in that order, so the item
    is as new as the row or newer):
    - missing or stale: the row still lacks the version scanned;
    - ahead: the row is newer than the item is now (DynamoDB lost writes that were projected),
      or removed in the read model only. The projection never goes back: reported and left
      (the way out is a rebuild into an empty database).
    An item gone meanwhile is left to the tombstone pass."""
    if not suspects:
        return []
    time.sleep(settle_seconds)
    rows = {entity: _stored_rows(entity, [s.change.key for s in suspects if s.entity == entity]) for entity in {s.entity for s in suspects}}
    current = _items_now([{"PK": s.item["PK"]["S"], "SK": s.item["SK"]["S"]} for s in suspects])
    confirmed = []
    for suspect in suspects:
        row = rows[suspect.entity].get(suspect.change.key)
        item = current.get((suspect.item["PK"]["S"], suspect.item["SK"]["S"]))
        now = decode(as_records([item], source="reconcile")[0]) if item else None
        if now is None:
            continue
        if row is None or _stored_rank(row) < suspect.change.rank:  # absent, older, or an older incarnation's tombstone
            confirmed.append((suspect.entity, MISSING if row is None or row[2] else STALE, now, item))
        elif _stored_rank(row) > now.rank or (row[2] and _stored_rank(row) >= now.rank):
            confirmed.append((suspect.entity, AHEAD, now, item))
    return confirmed


def _counted(flights: list[str] | None = None) -> dict[tuple[str, str], int]:
    """Live bookings per (flight, status), counted from the bookings themselves."""
    bookings = Booking.objects.filter(deleted=False)
    if flights is not None:
        bookings = bookings.filter(flight_id__in=flights)
    return {(f, s): n for f, s, n in bookings.order_by().values_list("flight_id", "status").annotate(n=Count("pk"))}


def _kept(flights: list[str] | None = None) -> dict[tuple[str, str], int]:
    counts = FlightPassengerCount.objects.all() if flights is None else FlightPassengerCount.objects.filter(flight_id__in=flights)
    return {(f, s): n for f, s, n in counts.values_list("flight_id", "status", "passengers")}


def counts_differing() -> list[tuple[str, str]]:
    """(flight, status) pairs whose kept count is not the number of live bookings."""
    with transaction.atomic():  # one snapshot for both reads: a batch projected between them is not a difference
        counted, kept = _counted(), _kept()
    return sorted(key for key in counted.keys() | kept.keys() if counted.get(key, 0) != kept.get(key, 0))


def counts_repair(*, flights: list[str]) -> None:
    """Count these flights' bookings again and keep that. The flights' count rows are locked
    first, so a batch projected meanwhile waits for the new numbers and moves them on."""
    for flight in sorted(flights):
        with transaction.atomic():
            list(FlightPassengerCount.objects.select_for_update().filter(flight_id=flight))
            counted, kept = _counted([flight]), _kept([flight])
            for (_, status), n in counted.items() | {key: 0 for key in kept.keys() - counted.keys()}.items():
                FlightPassengerCount.objects.update_or_create(flight_id=flight, status=status, defaults={"passengers": n})


def reconcile(*, segments: int = 4, only: Iterable[str] = (), repair: bool = False, settle_seconds: float | None = None) -> Report:
    """Compare the table with the read models entity by entity; with `repair`, project again
    exactly the differing items and tombstone the rows whose item is gone. Safe while the
    stream flows: a difference is one that outlasts `settle_seconds` (see `_confirmed`)."""
    entities = sorted(ENTITIES[name] for name in only) if only else sorted(ENTITIES.values())
    report = Report()
    lock = threading.Lock()
    suspects: list[_Suspect] = []

    def run_segment(segment: int) -> None:
        try:
            for items, _ in scan_pages(segment=segment, total=segments, start=None, only=entities):
                with lock:
                    page_suspects, stops = _compare_page(items, report)
                    suspects.extend(page_suspects)
                if repair and stops:
                    projection.rewrite_stops(flights=stops)
                with lock:
                    report.repaired += len(stops) if repair else 0
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=segments, thread_name_prefix="reconcile") as pool:
        list(pool.map(run_segment, range(segments)))
    settle = settings.RECONCILE_SETTLE_SECONDS if settle_seconds is None else settle_seconds
    confirmed = _confirmed(suspects, settle_seconds=settle)
    for entity, kind, change, _ in confirmed:
        report.add(entity, kind, change.key)
    again = [item for _, kind, _, item in confirmed if kind in (MISSING, STALE)]
    if repair and again:
        for start in range(0, len(again), PAGE):
            project(again[start : start + PAGE], source="reconcile")
        report.repaired += len(again)
    for entity in entities:
        extras = list(vanished_rows(entity))
        for row in extras:
            report.add(entity, EXTRA, row[0])
        if repair and extras:
            apply_changes([_tombstone(entity, row) for row in extras])
            report.repaired += len(extras)
    if ORDER in entities:  # last: after the bookings themselves were repaired
        differing = counts_differing()
        for flight, status in differing:
            report.add(COUNTS, STALE, f"{flight} {status}")
        if repair and differing:
            counts_repair(flights=sorted({flight for flight, _ in differing}))
            report.repaired += len(differing)
    return report


def report_save(*, report: Report) -> None:
    # What the "reconcile differences" alarm watches, from the command as from the schedule.
    observability.record({"ReconcileDifferences": report.differences, "ReconcileItems": report.items, "ReconcileRepaired": report.repaired})
    ReconcileRun.objects.create(
        items=report.items,
        differences=report.differences,
        repaired=report.repaired,
        detail={"counts": report.counts, "samples": report.samples},
    )
