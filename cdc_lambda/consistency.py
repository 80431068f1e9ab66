"""Do the command side (DynamoDB) and the read models hold the same items, and if not, bring the
read models back in line through the projection.

The local system runs this at every start (`manage.py check_consistency --repair`): the read
database outlives a run, the local streams do not, and DynamoDB's saved tables may not match the
read database (an older checkout without saved tables, a database pointed elsewhere, a reset of
one side only). /healthz and the operations page show the latest result (`ConsistencyCheck`).

The fingerprint is cheap: per entity, the number of live items and the sum of their versions,
on each side. They are compared once the CDC has drained (the bridge and the poller have been
through every shard since the check began and nothing waits after their checkpoints), so
changes still in flight are not taken for a divergence. When they differ, reconcile
(`rebuild.reconcile`) compares them item by item, by the projection's own rank (creation time,
version), and with `repair` brings the read model in line through the projection's own path:
- missing or older in the read model: the item is projected again (a repeat is a no-op);
- a ghost (live in the read model, gone from DynamoDB): the projection leaves its tombstone,
  one version past the row;
- newer in the read model than in DynamoDB (DynamoDB lost writes that were projected): the
  projection never goes back, so this is reported, with `make reset` as the way out.
The repairs go through the projection's conditional upserts, never around them, so the stream
applied meanwhile still wins where it is newer.
"""

import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime

from django.conf import settings
from django.db.models import Count, Sum
from django.utils import timezone

from admin_portal.models import ConsistencyCheck, ConsistencyOutcome, ShardCheckpoint
from airticket import aws

from . import checkpoints, rebuild
from .decode import CUSTOMER, FLIGHT, ORDER, TARGETS

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


# --- key by key: reconcile's comparison -----------------------------------------------------

# Reconcile's kinds of difference (`rebuild.Report`), as the check reports them.
_KINDS = {
    "missing": (rebuild.MISSING, rebuild.STALE, rebuild.STOPS),
    "ghosts": (rebuild.EXTRA,),
    "ahead": (rebuild.AHEAD,),
    "unprojectable": (rebuild.UNREADABLE,),
}


@dataclass
class Difference:
    """How many items differ, by kind, with example keys."""

    missing: int = 0
    ghosts: int = 0
    ahead: int = 0
    unprojectable: int = 0
    examples: dict[str, list[str]] = field(default_factory=dict)

    @classmethod
    def of(cls, report: rebuild.Report) -> "Difference":
        difference = cls()
        for name, kinds in _KINDS.items():
            for entity in (*ENTITIES, rebuild.COUNTS):
                for kind in kinds:
                    count = report.counts.get(entity, {}).get(kind, 0)
                    if count:
                        setattr(difference, name, getattr(difference, name) + count)
                        found = difference.examples.setdefault(name, [])
                        found += [f"{entity.lower()} {key}" for key in report.samples[entity][kind]][: EXAMPLES - len(found)]
        return difference


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
        parts.append(f"{difference.missing} missing or older in the read model (projected again)")
    if difference.ghosts:
        parts.append(f"{difference.ghosts} ghost(s) in the read model, gone from DynamoDB (tombstoned)")
    if difference.ahead:
        parts.append(f"{difference.ahead} newer in the read model than in DynamoDB (cannot be undone by the projection: `make reset`)")
    if difference.unprojectable:
        parts.append(f"{difference.unprojectable} DynamoDB item(s) the projection cannot read")
    return "; ".join(parts) or "no item differs by key (the fingerprints still disagree)"


def check(*, repair: bool, settle_seconds: float = 60, wait_seconds: float = 60) -> ConsistencyCheck:
    """Compare both sides; with `repair`, send what the read model needs through the stream and
    wait for the projection to apply it. Records and returns the result."""
    started = timezone.now()
    query_side, command_side = _settled_fingerprints(started=started, settle_seconds=settle_seconds)
    if query_side == command_side:
        summary = f"command and query sides agree ({_counts(command_side)})"
        return _record_check(ConsistencyOutcome.AGREED, command_side, query_side, Difference(), 0, summary)
    report = rebuild.reconcile(repair=repair)
    difference = Difference.of(report)
    resent = report.repaired
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
        ghosts=difference.ghosts,
        missing=difference.missing,
        ahead=difference.ahead,
        resent=resent,
        examples=difference.examples,
        summary=summary,
    )


def latest() -> ConsistencyCheck | None:
    return ConsistencyCheck.objects.order_by("-checked_at", "-pk").first()
