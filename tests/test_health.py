"""GET /healthz is 200 only when the database, AWS and (locally) the bridge and poller answer."""

from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from admin_portal.models import ConsistencyCheck, ConsistencyOutcome, ShardCheckpoint
from airticket import aws
from cdc_lambda import bridge

pytestmark = pytest.mark.django_db


def beat(consumer: str, *, ago: timedelta = timedelta(0)) -> None:
    checkpoint = ShardCheckpoint.objects.create(consumer=consumer, stream="arn:stream", shard_id="shardId-0")
    ShardCheckpoint.objects.filter(pk=checkpoint.pk).update(updated_at=timezone.now() - ago)


def health() -> tuple[int, dict]:
    response = Client().get("/healthz")
    return response.status_code, response.json()["checks"]


def test_it_is_healthy_when_every_part_answers(aws_env, settings):
    settings.CDC_LOCAL_POLLER = True
    beat("bridge")
    beat("poller")
    assert health() == (200, {"database": "ok", "aws": "ok", "bridge": "ok", "poller": "ok", "consistency": "ok"})


def test_a_silent_poller_makes_it_unavailable(aws_env, settings):
    settings.CDC_LOCAL_POLLER = True
    beat("bridge")
    beat("poller", ago=timedelta(seconds=settings.CDC_HEARTBEAT_SECONDS + 5))
    status, checks = health()
    assert status == 503
    assert checks["poller"] == "error: RuntimeError: no poller heartbeat"
    assert checks["bridge"] == "ok"


def test_a_bridge_that_never_started_makes_it_unavailable(aws_env, settings):
    settings.CDC_LOCAL_POLLER = True
    beat("poller")
    status, checks = health()
    assert (status, checks["bridge"]) == (503, "error: RuntimeError: no bridge heartbeat")


def test_a_missing_table_makes_it_unavailable(aws_env, settings):
    aws.dynamodb().delete_table(TableName=settings.DYNAMODB_TABLE)
    status, checks = health()
    assert status == 503
    assert checks["aws"].startswith("error: ResourceNotFoundException")


def test_on_aws_it_does_not_wait_for_a_local_poller(aws_env, settings):
    settings.CDC_LOCAL_POLLER = False
    ConsistencyCheck.objects.create(outcome=ConsistencyOutcome.DIVERGED, summary="only a local run checks at start")
    assert health() == (200, {"database": "ok", "aws": "ok", "bridge": "ok", "poller": "ok", "consistency": "ok"})


def test_an_idle_bridge_still_beats(aws_env):
    bridge.run(once=True)
    ShardCheckpoint.objects.filter(consumer="bridge").update(updated_at=timezone.now() - timedelta(hours=1))
    bridge.run(once=True)  # nothing to move
    [checkpoint] = ShardCheckpoint.objects.filter(consumer="bridge")
    assert timezone.now() - checkpoint.updated_at < timedelta(minutes=1)


def health_after_a_start_check(settings, **check):
    """/healthz of a local system whose consumers beat, after the start-time comparison `check`."""
    settings.CDC_LOCAL_POLLER = True
    beat("bridge")
    beat("poller")
    ConsistencyCheck.objects.create(**check)
    return Client().get("/healthz")


def test_sides_left_apart_at_start_make_it_unavailable_and_say_why(aws_env, settings):
    response = health_after_a_start_check(
        settings, outcome=ConsistencyOutcome.DIVERGED, ahead=1, summary="DIVERGED at start: 1 newer in the read model"
    )
    assert response.status_code == 503
    body = response.json()
    assert body["checks"]["consistency"] == "error: RuntimeError: DIVERGED at start: 1 newer in the read model"
    assert body["consistency_at_start"]["outcome"] == "DIVERGED"


def test_a_divergence_repaired_at_start_is_reported_but_healthy(aws_env, settings):
    response = health_after_a_start_check(
        settings, outcome=ConsistencyOutcome.REPAIRED, ghosts=2, summary="DIVERGED at start: 2 ghosts. Repaired"
    )
    assert response.status_code == 200
    report = response.json()["consistency_at_start"]
    assert (report["outcome"], report["summary"]) == ("REPAIRED", "DIVERGED at start: 2 ghosts. Repaired")
