"""Do the command side (DynamoDB) and the read models hold the same items, and if not, bring the
read models back in line through the projection.

The local system runs this at every start (`manage.py check_consistency --repair`): the read
database outlives a run, the local streams do not, and DynamoDB's saved tables may not match the
read database (an older checkout without saved tables, a database pointed elsewhere, a reset of
one side only). /healthz and the operations page show the latest result (`ConsistencyCheck`).

The fingerprint is cheap: per entity, the number of live items and the sum of their versions,
on each side. They are compared once the CDC has drained (the bridge and the poller have been
through every shard since the check began and nothing waits after their checkpoints), so
changes still in flight are not taken for a divergence. When they differ,
the items are compared key by key, by the projection's own rank (creation time, version):
- missing or older in the read model: the item's current image goes on the stream again, as the
  streaming destination writes it; the projection applies it (a repeat is a no-op);
- a ghost (live in the read model, gone from DynamoDB): a REMOVE record whose old image is
  rebuilt from the row goes on the stream, and the projection leaves its tombstone;
- newer in the read model than in DynamoDB (DynamoDB lost writes that were projected): the
  projection never goes back, so this is reported, with `make reset` as the way out.
The repairs are change records on the stream, never writes to the read models.
"""

import base64
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime

from django.conf import settings
from django.db.models import Count, Sum
from django.utils import timezone

from admin_portal.models import Booking, ConsistencyCheck, ConsistencyOutcome, Customer, Flight, ShardCheckpoint
from airticket import aws
from bookings import repository as repo

from . import bridge, checkpoints
from .decode import CUSTOMER, FLIGHT, ORDER, TARGETS, Change, Poison, decode

logger = logging.getLogger(__name__)

ENTITIES = (CUSTOMER, ORDER, FLIGHT)
EXAMPLES = 10  # keys kept per kind of difference

Fingerprint = dict[str, dict[str, int]]  # entity -> {"items": n, "versions": sum}


def _empty() -> Fingerprint:
    return {entity: {"items": 0, "versions": 0} for entity in ENTITIES}


def _scan(**kwargs) -> Iterator[dict]:
    for page in aws.dynamodb().get_paginator("scan").paginate(TableName=settings.DYNAMODB_TABLE, ConsistentRead=True, **kwargs):
        yield from page["Items"]


def command_fingerprint() -> Fingerprint:
    """Live items per entity in DynamoDB (one scan of two attributes)."""
    found = _empty()
    for item in _scan(ProjectionExpression="#e, #v", ExpressionAttributeNames={"#e": "entity", "#v": "version"}):
        entity = item.get("entity", {}).get("S")
        if entity in found:
            found[entity]["items"] += 1
            found[entity]["versions"] += int(item.get("version", {}).get("N", 0))
    return found


def query_fingerprint() -> Fingerprint:
    """Live rows per entity in the read models (one aggregate query per model)."""
    found = _empty()
    for entity in ENTITIES:
        totals = TARGETS[entity].model.objects.filter(deleted=False).aggregate(items=Count("pk"), versions=Sum("version"))
        found[entity] = {"items": totals["items"], "versions": totals["versions"] or 0}
    return found


# --- key by key ----------------------------------------------------------------------------------


def _instant(value) -> datetime:
    """A rank's creation time as a naive UTC datetime (the change carries text, the row a datetime)."""
    if value is None or value == "":
        return datetime.min
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if value.tzinfo is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)
    return value


def _record(event_name: str, keys: dict, image: dict) -> dict:
    """A DynamoDB Streams record (boto3's shape) for an image, as the table's stream would carry it."""
    which = "OldImage" if event_name == "REMOVE" else "NewImage"
    return {"eventName": event_name, "dynamodb": {"Keys": keys, which: image, "ApproximateCreationDateTime": time.time()}}


def _decoded(entry: dict) -> Change | None:
    return decode({"kinesis": {"data": base64.b64encode(entry["Data"]).decode()}})


@dataclass
class Difference:
    missing: list[tuple[str, str]] = field(default_factory=list)  # (entity, key)
    ghosts: list[tuple[str, str]] = field(default_factory=list)
    ahead: list[tuple[str, str]] = field(default_factory=list)
    unprojectable: list[str] = field(default_factory=list)
    repairs: list[dict] = field(default_factory=list)  # PutRecords entries

    def examples(self) -> dict[str, list[str]]:
        kinds = {"missing": self.missing, "ghosts": self.ghosts, "ahead": self.ahead}
        found = {kind: [f"{entity.lower()} {key}" for entity, key in keys[:EXAMPLES]] for kind, keys in kinds.items() if keys}
        if self.unprojectable:
            found["unprojectable"] = self.unprojectable[:EXAMPLES]
        return found


def _stored_ranks() -> dict[str, dict[str, tuple[datetime, int, bool]]]:
    """Every read-model row's (created_at, version, deleted), per entity. Read before DynamoDB is
    scanned: a row projected meanwhile cannot then pass for a ghost."""
    ranks: dict[str, dict[str, tuple[datetime, int, bool]]] = {}
    for entity in ENTITIES:
        model = TARGETS[entity].model
        rows = model.objects.values_list("pk", "created_at", "version", "deleted").iterator(chunk_size=5000)
        ranks[entity] = {key: (_instant(created), version, deleted) for key, created, version, deleted in rows}
    return ranks


def compare() -> Difference:
    difference = Difference()
    stored = _stored_ranks()
    present: dict[str, set[str]] = {entity: set() for entity in ENTITIES}
    for item in _scan():
        keys = {"PK": item["PK"], "SK": item["SK"]}
        entry = bridge.to_kinesis_record(_record("INSERT", keys, item))
        try:
            change = _decoded(entry)
        except Poison as exc:
            difference.unprojectable.append(f"{item['PK'].get('S')}|{item['SK'].get('S')}: {exc}"[:200])
            continue
        if change is None:  # booking guards, idempotency records: not projected
            continue
        present[change.entity].add(change.key)
        rank = (_instant(change.rank[0]), change.version)
        row = stored[change.entity].get(change.key)
        if row is None or row[:2] < rank:  # absent, older, or an older incarnation's tombstone
            difference.missing.append((change.entity, change.key))
            difference.repairs.append(entry)
        elif row[:2] > rank or row[2]:  # newer, or removed in the read model only
            difference.ahead.append((change.entity, change.key))
    for entity in ENTITIES:
        ghosts = sorted(key for key, (_, _, deleted) in stored[entity].items() if not deleted and key not in present[entity])
        difference.ghosts += [(entity, key) for key in ghosts]
        difference.repairs += [_removal(row) for row in TARGETS[entity].model.objects.filter(pk__in=ghosts)]
    return difference


def _dynamo_time(value: datetime | None) -> str | None:
    return None if value is None else value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _stamps(row) -> dict:
    return {
        "version": row.version,
        "created_at": _dynamo_time(row.created_at),
        "updated_at": _dynamo_time(row.updated_at or row.created_at),
    }


def _route(row, origin: str, destination: str) -> dict:
    return {
        "origin": origin,
        "transfers": list(row.transfers),
        "destination": destination,
        "departure_time": row.departure_time.isoformat(),
        "arrival_time": row.arrival_time.isoformat(),
    }


def _customer_image(row: Customer) -> tuple[dict, dict]:
    image = {"entity": repo.CUSTOMER, "customer_id": row.customer_id, **_stamps(row)}
    image |= {"full_name": row.full_name, "mobile": row.mobile, "email": row.email}
    return repo.customer_key(row.customer_id), image


def _order_image(row: Booking) -> tuple[dict, dict]:
    image = {"entity": repo.ORDER, "order_id": row.order_id, "customer_id": row.customer_id, **_stamps(row)}
    image |= {"flight_number": row.flight_number, "flight_date": row.flight_date.isoformat(), "status": row.status}
    image |= _route(row, row.origin, row.destination)
    return repo.order_key(row.customer_id, row.order_id), image


def _flight_image(row: Flight) -> tuple[dict, dict]:
    image = {"entity": repo.FLIGHT, "flight_number": row.flight_number, "flight_date": row.flight_date.isoformat(), **_stamps(row)}
    image |= {"capacity": row.capacity, "seats_booked": row.seats_booked, "status": row.status}
    image |= _route(row, row.origin_id, row.destination_id)
    return repo.flight_key(row.flight_number, row.flight_date.isoformat()), image


_IMAGES: dict[type, Callable] = {Customer: _customer_image, Booking: _order_image, Flight: _flight_image}


def _removal(row) -> dict:
    """A REMOVE record for a ghost row: its old image is the row as projected, so the projection
    leaves a tombstone one version past it (and a later incarnation of the item still wins)."""
    keys, image = _IMAGES[type(row)](row)
    return bridge.to_kinesis_record(_record("REMOVE", repo.marshal(keys), repo.marshal(image)))


# --- the check at start --------------------------------------------------------------------------


def _pending(client, *, consumer: str, stream: str, shards: list[str], opener: Callable[[str, str], dict], since: datetime) -> bool:
    """Whether any shard holds records after the consumer's checkpoint (or the consumer has not
    been through it since `since`, so its checkpoint may belong to another stream instance)."""
    rows = ShardCheckpoint.objects.filter(consumer=consumer, stream=stream, updated_at__gte=since)
    positions = dict(rows.values_list("shard_id", "sequence_number"))
    for shard_id in shards:
        if shard_id not in positions:
            return True
        iterator = opener(shard_id, positions[shard_id])["ShardIterator"]
        if client.get_records(ShardIterator=iterator, Limit=1)["Records"]:
            return True
    return False


def _position(sequence_number: str, name: str) -> dict:
    if sequence_number:
        return {"ShardIteratorType": "AFTER_SEQUENCE_NUMBER", name: sequence_number}
    return {"ShardIteratorType": "TRIM_HORIZON"}


def cdc_drained(*, since: datetime) -> bool:
    """The bridge and then the poller have nothing left to move: every change DynamoDB held when
    this was called is in the read model. (Checkpoints move only after the work they cover, so a
    batch in flight still counts as pending.)"""
    streams, kinesis = aws.dynamodbstreams(), aws.kinesis()
    table_stream = aws.dynamodb().describe_table(TableName=settings.DYNAMODB_TABLE)["Table"]["LatestStreamArn"]
    shards = [shard["ShardId"] for shard in streams.describe_stream(StreamArn=table_stream)["StreamDescription"]["Shards"]]
    if _pending(
        streams,
        consumer=checkpoints.BRIDGE,
        stream=table_stream,
        shards=shards,
        opener=lambda shard, seq: streams.get_shard_iterator(StreamArn=table_stream, ShardId=shard, **_position(seq, "SequenceNumber")),
        since=since,
    ):
        return False
    name = settings.KINESIS_STREAM
    arn = kinesis.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]["StreamARN"]
    shards = [shard["ShardId"] for shard in kinesis.list_shards(StreamName=name)["Shards"]]
    return not _pending(
        kinesis,
        consumer=checkpoints.POLLER,
        stream=arn,
        shards=shards,
        opener=lambda shard, seq: kinesis.get_shard_iterator(StreamName=name, ShardId=shard, **_position(seq, "StartingSequenceNumber")),
        since=since,
    )


def _settled_fingerprints(*, started: datetime, settle_seconds: float) -> tuple[Fingerprint, Fingerprint]:
    """Fingerprints once they agree, or once the CDC has drained (the difference is then not a
    change in flight), or when `settle_seconds` run out (the CDC is stuck: also worth saying)."""
    deadline = time.monotonic() + settle_seconds
    while True:
        drained = cdc_drained(since=started)
        query_side, command_side = query_fingerprint(), command_fingerprint()
        if query_side == command_side or drained or time.monotonic() > deadline:
            return query_side, command_side
        time.sleep(0.5)


def _wait_for_agreement(*, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if query_fingerprint() == command_fingerprint():
            return True
        time.sleep(0.5)
    return False


def _counts(fingerprint: Fingerprint) -> str:
    return ", ".join(f"{entity.lower()}s {fingerprint[entity]['items']}" for entity in ENTITIES)


def _describe(difference: Difference) -> str:
    parts = []
    if difference.missing:
        parts.append(f"{len(difference.missing)} missing or older in the read model (sent through the stream again)")
    if difference.ghosts:
        parts.append(f"{len(difference.ghosts)} ghost(s) in the read model, gone from DynamoDB (removed through the stream)")
    if difference.ahead:
        parts.append(f"{len(difference.ahead)} newer in the read model than in DynamoDB (cannot be undone by the projection: `make reset`)")
    if difference.unprojectable:
        parts.append(f"{len(difference.unprojectable)} DynamoDB item(s) the projection cannot read")
    return "; ".join(parts) or "no item differs by key (the fingerprints still disagree)"


def check(*, repair: bool, settle_seconds: float = 60, wait_seconds: float = 60) -> ConsistencyCheck:
    """Compare both sides; with `repair`, send what the read model needs through the stream and
    wait for the projection to apply it. Records and returns the result."""
    started = timezone.now()
    query_side, command_side = _settled_fingerprints(started=started, settle_seconds=settle_seconds)
    if query_side == command_side:
        summary = f"command and query sides agree ({_counts(command_side)})"
        return _record_check(ConsistencyOutcome.AGREED, command_side, query_side, Difference(), 0, summary)
    difference = compare()
    resent = 0
    if repair and difference.repairs:
        bridge.put_records(entries=difference.repairs)
        resent = len(difference.repairs)
    repaired = repair and not difference.ahead and not difference.unprojectable and _wait_for_agreement(seconds=wait_seconds)
    outcome = ConsistencyOutcome.REPAIRED if repaired else ConsistencyOutcome.DIVERGED
    summary = (
        f"DIVERGED at start: DynamoDB has {_counts(command_side)}; the read model has {_counts(query_side)}. "
        f"{_describe(difference)}. {'Repaired: both sides agree now.' if repaired else 'NOT repaired.'}"
    )
    return _record_check(outcome, command_side, query_side, difference, resent, summary)


def _record_check(outcome, command_side, query_side, difference: Difference, resent: int, summary: str) -> ConsistencyCheck:
    log = logger.info if outcome == ConsistencyOutcome.AGREED else logger.error
    log("consistency: %s", summary)
    return ConsistencyCheck.objects.create(
        outcome=outcome,
        command_side=command_side,
        query_side=query_side,
        ghosts=len(difference.ghosts),
        missing=len(difference.missing),
        ahead=len(difference.ahead),
        resent=resent,
        examples=difference.examples(),
        summary=summary,
    )


def latest() -> ConsistencyCheck | None:
    return ConsistencyCheck.objects.order_by("-checked_at", "-pk").first()
