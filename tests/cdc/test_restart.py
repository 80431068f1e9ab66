"""What a restart of the local system relies on: checkpoints that notice a new instance of their
stream, and the start-time comparison of both sides that brings the read model back in line
through the stream (ghosts removed, missing items sent again, the rest reported)."""

import logging
import threading
from contextlib import contextmanager

import pytest
from django.conf import settings
from django.db import connection

from admin_portal.models import Booking, ConsistencyOutcome, Customer, Flight, ShardCheckpoint
from airticket import aws, provisioning
from bookings import repository as repo
from bookings import services
from cdc_lambda import bridge, checkpoints, consistency, poller
from cdc_lambda.handler import handler
from tests.cdc.changes import Items, delivered, event, stream_record
from tests.factories import make_customer, make_flight

pytestmark = pytest.mark.django_db(transaction=True)


def sync() -> poller.Poller:
    bridge.run(once=True)
    return poller.run(once=True, backoff_base=0)


def _closing_connection(target, **options):
    def run():
        try:
            target(**options)
        finally:
            connection.close()

    return run


@contextmanager
def consumers_running():
    """The bridge and the poller as `make run` runs them (here in threads)."""
    stop = threading.Event()
    threads = [
        threading.Thread(target=_closing_connection(bridge.run, stop=stop, poll_seconds=0.05)),
        threading.Thread(target=_closing_connection(poller.run, stop=stop, poll_seconds=0.05, backoff_base=0)),
    ]
    for thread in threads:
        thread.start()
    try:
        yield
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=30)


def resets(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if "reset to TRIM_HORIZON" in r.getMessage()]


# --- checkpoints and stream instances ------------------------------------------------------------


def test_a_checkpoint_keeps_its_position_in_its_stream_instance_and_starts_over_in_another(db, caplog):
    where = {"consumer": checkpoints.POLLER, "stream": "arn:aws:kinesis:us-east-1:1:stream/s", "shard_id": "shardId-0"}
    assert checkpoints.position(**where, instance="first") == ""
    checkpoints.advance(**where, sequence_number="42", records=42, last_record_at=None)
    assert checkpoints.position(**where, instance="first") == "42"
    with caplog.at_level(logging.WARNING):
        assert checkpoints.position(**where, instance="second") == ""
        assert checkpoints.position(**where, instance="second") == ""
    [line] = resets(caplog)
    assert "was at 42 in stream instance 'first'" in line and "now instance 'second'" in line
    row = ShardCheckpoint.objects.get(**where)
    assert (row.sequence_number, row.records, row.stream_instance) == ("", 0, "second")


def test_a_checkpoint_saved_before_instances_were_recorded_starts_over(db, caplog):
    where = {"consumer": checkpoints.BRIDGE, "stream": "arn:stream", "shard_id": "shardId-0"}
    ShardCheckpoint.objects.create(**where, sequence_number="1100000000017454423100")
    with caplog.at_level(logging.WARNING):
        assert checkpoints.position(**where, instance="2026-12-01T00:00:00|1100000000017454423009") == ""
    [line] = resets(caplog)
    assert "instance 'unknown'" in line


def test_the_poller_reads_a_stream_created_again_under_its_name_from_the_start(aws_env, caplog):
    for n in range(8):
        make_customer(f"old{n}")
    assert sync().acknowledged == 8
    positioned = ShardCheckpoint.objects.filter(consumer="poller").exclude(sequence_number="").count()
    aws.kinesis().delete_stream(StreamName=settings.KINESIS_STREAM)
    provisioning.ensure_stream()  # same name, same ARN: a new instance numbering its records from 1 again
    make_customer("new1")
    make_customer("new2")
    bridge.run(once=True)
    with caplog.at_level(logging.WARNING):
        done = poller.run(once=True, backoff_base=0)
    assert done.acknowledged == 2
    assert set(Customer.objects.filter(customer_id__startswith="new").values_list("pk", flat=True)) == {"new1", "new2"}
    assert len(resets(caplog)) == positioned >= 1


def test_the_bridge_follows_a_table_created_again_and_forgets_the_old_streams_checkpoints(aws_env):
    make_customer("before")
    assert bridge.run(once=True) == 1
    aws.dynamodb().delete_table(TableName=settings.DYNAMODB_TABLE)
    provisioning.ensure_table()
    make_customer("after")
    assert bridge.run(once=True) == 1
    stream = aws.dynamodb().describe_table(TableName=settings.DYNAMODB_TABLE)["Table"]["LatestStreamArn"]
    assert set(ShardCheckpoint.objects.filter(consumer="bridge").values_list("stream", flat=True)) == {stream}


# --- both sides compared at start ----------------------------------------------------------------


def test_sides_that_agree_are_recorded_as_agreeing(aws_env):
    make_customer("ann")
    make_flight()
    sync()
    with consumers_running():
        result = consistency.check(repair=True, settle_seconds=20, wait_seconds=10)
    assert result.outcome == ConsistencyOutcome.AGREED
    assert result.command_side == result.query_side
    assert (result.command_side["CUSTOMER"], result.command_side["FLIGHT"]["items"]) == ({"items": 1, "versions": 1}, 1)
    assert consistency.latest() == result


def test_ghosts_and_missing_items_are_brought_back_in_line_through_the_stream(aws_env):
    flight = make_flight()
    make_customer("kept")
    make_customer("unseen")
    services.order_place(customer_id="kept", flight_number=flight["flight_number"], flight_date=flight["flight_date"])
    sync()
    # The read model holds rows DynamoDB never had (as after a lost write side) ...
    items = Items()
    ghosts = [items.customer("ghost"), items.flight("GH123"), items.order("kept", "ghostorder")]
    assert handler(event(ghosts), None) == {"batchItemFailures": []}
    # ... and lacks one DynamoDB has (as after a lost stream).
    Customer.objects.filter(pk="unseen").delete()

    with consumers_running():
        result = consistency.check(repair=True, settle_seconds=20, wait_seconds=30)

    assert result.outcome == ConsistencyOutcome.REPAIRED, result.summary
    assert (result.ghosts, result.missing, result.ahead, result.resent) == (3, 1, 0, 4)
    assert result.examples == {"missing": ["customer unseen"], "ghosts": ["customer ghost", "order ghostorder", "flight GH123#2026-12-01"]}
    assert "3 ghost(s)" in result.summary and "Repaired" in result.summary
    # Tombstones one version past the projected rows, left by the projection itself.
    assert Customer.objects.filter(pk="ghost").values_list("deleted", "version").get() == (True, 2)
    assert Booking.objects.get(pk="ghostorder").deleted
    assert Flight.objects.get(pk="GH123#2026-12-01").deleted
    assert not Customer.objects.get(pk="unseen").deleted
    assert consistency.query_fingerprint() == consistency.command_fingerprint()


def test_a_read_model_newer_than_dynamodb_is_reported_as_diverged(aws_env):
    make_customer("nora")
    sync()
    # A newer version of the item reached the read model, and DynamoDB lost it.
    key = repo.customer_key("nora")
    newer = {**repo.get(key), "version": 2, "full_name": "Nora Lost"}
    assert handler(event([delivered(stream_record(event_name="MODIFY", key=key, new=newer))]), None) == {"batchItemFailures": []}
    with consumers_running():
        result = consistency.check(repair=True, settle_seconds=20, wait_seconds=10)
    assert result.outcome == ConsistencyOutcome.DIVERGED
    assert (result.ahead, result.examples) == (1, {"ahead": ["customer nora"]})
    assert "make reset" in result.summary and "NOT repaired" in result.summary
