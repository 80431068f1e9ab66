"""Rebuild and reconcile the read models from DynamoDB, on moto and MariaDB, while the stream
keeps flowing (bridge and poller running beside them)."""

import threading
import time
from datetime import timedelta
from io import StringIO

import pytest
from django.conf import settings
from django.core.management import CommandError, call_command
from django.utils import timezone

from admin_portal.models import Booking, Customer, Flight, FlightEvent, FlightStop, ReconcileRun
from airticket import aws
from bookings import services
from cdc_lambda import dlq, rebuild
from cdc_lambda.handler import handler
from tests.cdc.changes import event
from tests.cdc.readmodel import dlq_letters, snapshot
from tests.cdc.test_stream import _clear_read_model, kinesis_records, sync
from tests.factories import make_customer, make_flight

pytestmark = pytest.mark.django_db(transaction=True)

_DELETABLE = (Customer, Booking, Flight)


def state_snapshot() -> dict:
    """The read model a rebuild can know: live rows. Not flight events, which are history (what
    happened to a flight), not state: a rebuild reads the state, and must not notify again.
    Not tombstones, which are bookkeeping of a deletion."""
    rows = snapshot()
    rows.pop(FlightEvent.__name__)
    for model in _DELETABLE:
        deleted = model._meta.get_field("deleted").attname
        live = set(model.objects.filter(**{deleted: False}).values_list("pk", flat=True))
        rows[model.__name__] = [row for row in rows[model.__name__] if row[0] in live]
    return rows


def stream_only_snapshot() -> dict:
    """The same history projected from the stream alone, into an empty read model."""
    _clear_read_model()
    assert handler(event(kinesis_records()), None) == {"batchItemFailures": []}
    return state_snapshot()


def busy_history() -> dict:
    flights = [make_flight(origin="PVG", transfers=["CTU"], destination="URC"), make_flight(origin="PEK", destination="CAN")]
    orders = {}
    for n in range(12):
        customer = make_customer(f"Rider{n}" if n % 2 else f"rider{n}")
        flight = flights[n % 2]
        orders[customer["customer_id"]] = services.order_place(
            customer_id=customer["customer_id"], flight_number=flight["flight_number"], flight_date=flight["flight_date"]
        )
    for customer_id, order in list(orders.items())[:3]:
        services.order_cancel(customer_id=customer_id, order_id=order["order_id"])
    services.customer_update(customer_id="rider0", changes={"mobile": "+86 138 0000 0009"})
    services.flight_reschedule(flight_number=flights[0]["flight_number"], flight_date=flights[0]["flight_date"], departure_time="09:30")
    return {"flights": flights, "orders": orders}


def reconcile_output(*args) -> str:
    out = StringIO()
    call_command("reconcile", *args, stdout=out)
    return out.getvalue()


def test_a_rebuild_into_an_empty_read_database_while_commands_flow_ends_with_zero_differences(aws_env, tmp_path):
    busy_history()
    sync()
    _clear_read_model()

    failures = []

    def commands():  # the stream keeps flowing while the rebuild reads
        try:
            for n in range(15):
                make_customer(f"during{n}")
                services.customer_update(customer_id="Rider1" if n % 2 else "rider0", changes={"full_name": f"Renamed {n}"})
        except Exception as exc:
            failures.append(exc)

    writer = threading.Thread(target=commands)
    writer.start()
    result = rebuild.rebuild(segments=3, state_path=tmp_path / "state.json")
    writer.join()
    sync()

    assert failures == []
    assert result.items > 0
    assert "0 differences" in reconcile_output()
    assert Customer.objects.filter(customer_id__startswith="during").count() == 15
    assert state_snapshot() == stream_only_snapshot()
    assert not (tmp_path / "state.json").exists()  # finished: nothing left to resume


def test_a_rebuild_notifies_nobody_and_creates_no_flight_events(aws_env):
    history = busy_history()
    services.flight_cancel(flight_number=history["flights"][1]["flight_number"], flight_date=history["flights"][1]["flight_date"])
    _clear_read_model()

    rebuild.rebuild(segments=2, state_path=None)

    assert not FlightEvent.objects.exists()
    assert Flight.objects.get(pk=f"{history['flights'][1]['flight_number']}#{history['flights'][1]['flight_date']}").status == "CANCELLED"


def test_a_rebuild_killed_halfway_resumes_from_the_segments_it_finished(aws_env, tmp_path, monkeypatch):
    busy_history()
    sync()
    expected = stream_only_snapshot()
    _clear_read_model()
    state = tmp_path / "state.json"
    real_project, calls = rebuild.project, []

    def dies_on_the_third_page(items, *, source):
        calls.append(len(items))
        if len(calls) == 3:
            raise KeyboardInterrupt  # the operator's Ctrl-C, or a kill
        real_project(items, source=source)

    monkeypatch.setattr(rebuild, "project", dies_on_the_third_page)
    with pytest.raises(KeyboardInterrupt):
        rebuild.rebuild(segments=6, state_path=state)
    monkeypatch.setattr(rebuild, "project", real_project)
    assert state.exists()

    resumed = rebuild.rebuild(segments=6, state_path=state)

    table_items = sum(len(items) for items, _ in rebuild.scan_pages(segment=0, total=1, start=None, only=[]))
    assert resumed.resumed_parts >= 2
    assert resumed.items < table_items  # the finished segments were not read again
    assert "0 differences" in reconcile_output()
    assert state_snapshot() == expected


def test_a_rebuild_of_one_entity_type_touches_only_that_type(aws_env):
    busy_history()
    _clear_read_model()

    rebuild.rebuild(segments=2, only=["flights"], state_path=None)

    assert Flight.objects.count() == 2 and FlightStop.objects.count() == 5
    assert not Customer.objects.exists() and not Booking.objects.exists()


def test_a_rebuild_tombstones_rows_whose_item_is_gone_but_not_rows_projected_after_it_began(aws_env):
    busy_history()
    sync()
    Customer.objects.create(customer_id="ghost", full_name="Gone Before", version=3, created_at=timezone.now(), updated_at=timezone.now())
    Customer.objects.create(
        customer_id="newborn", full_name="Just Projected", version=1, created_at=timezone.now(), updated_at=timezone.now()
    )
    Customer.objects.filter(pk="ghost").update(projected_at=timezone.now() - timedelta(hours=1))
    # A row the stream wrote after the scan began (its item may still be on its way, or deleted
    # in a change the stream will bring): not the rebuild's to judge.
    Customer.objects.filter(pk="newborn").update(projected_at=timezone.now() + timedelta(hours=1))

    result = rebuild.rebuild(segments=2, state_path=None)

    ghost = Customer.objects.get(pk="ghost")
    assert (ghost.deleted, ghost.version) == (True, 4)
    assert not Customer.objects.get(pk="newborn").deleted
    assert result.tombstoned["CUSTOMER"] == 1


def test_reconcile_finds_deleted_rolled_back_and_stray_rows_and_repairs_exactly_them(aws_env):
    history = busy_history()
    sync()
    expected = state_snapshot()
    cancelled_order = next(iter(history["orders"].values()))["order_id"]
    Customer.objects.filter(pk__in=["rider2", "Rider3"]).delete()
    Booking.objects.filter(pk=cancelled_order).update(version=1, status="ORDERED")
    Customer.objects.create(customer_id="stray", full_name="Nobody", version=1, created_at=timezone.now(), updated_at=timezone.now())
    first_flight = f"{history['flights'][0]['flight_number']}#{history['flights'][0]['flight_date']}"
    FlightStop.objects.filter(flight_id=first_flight, seq=1).delete()

    with pytest.raises(CommandError, match="differ from DynamoDB in 7 rows"):
        reconcile_output()
    report = ReconcileRun.objects.first()
    # The rolled-back booking also left its flight's kept counts (ORDERED and CANCELLED) wrong.
    assert report.detail["counts"] == {
        "CUSTOMER": {"missing": 2, "extra": 1},
        "ORDER": {"stale": 1},
        "FLIGHT": {"stops": 1},
        "COUNTS": {"stale": 2},
    }
    assert sorted(report.detail["samples"]["CUSTOMER"]["missing"]) == ["Rider3", "rider2"]  # case kept: DynamoDB's keys

    repaired = reconcile_output("--repair")

    assert "repaired 7" in repaired
    assert "0 differences" in reconcile_output()
    assert state_snapshot() == expected
    assert Customer.objects.get(pk="stray").deleted


def test_reconcile_takes_no_change_that_the_stream_applied_after_the_scan_for_a_difference(aws_env, monkeypatch):
    busy_history()
    sync()
    pages = list(rebuild.scan_pages(segment=0, total=1, start=None, only=[]))
    # After the page was read: one customer changes and the stream applies it (its row is now
    # newer than the page), another changes and the stream has not got there yet.
    services.customer_update(customer_id="rider0", changes={"full_name": "Changed After The Scan"})
    sync()
    services.customer_update(customer_id="Rider1", changes={"full_name": "Not Projected Yet"})
    monkeypatch.setattr(rebuild, "scan_pages", lambda **_: iter(pages))

    report = rebuild.reconcile(segments=1, settle_seconds=0)

    # rider0's row is as new as its item now: not "ahead". Rider1's row holds the version the
    # page read: not "stale" either (its newer change is the stream's to bring).
    assert (report.differences, report.counts) == (0, {})
    Customer.objects.filter(pk="rider0").update(version=99)  # now truly newer than DynamoDB
    assert rebuild.reconcile(segments=1, settle_seconds=0).counts == {"CUSTOMER": {"ahead": 1}}


def test_reconcile_repairs_a_change_whose_dead_letter_aged_out(aws_env, monkeypatch):
    busy_history()
    sync()
    services.customer_update(customer_id="rider4", changes={"email": "new-address@example.com"})

    def everything_is_poison(*, event):  # the record went to the DLQ ...
        dlq.send(letters=[dlq.Letter(record=r, reason=dlq.POISON, error="simulated") for r in event["Records"]])
        return {"batchItemFailures": []}

    monkeypatch.setattr("cdc_lambda.handler.process", everything_is_poison)
    sync()
    monkeypatch.undo()
    assert len(dlq_letters()) == 1
    aws.sqs().purge_queue(QueueUrl=aws.dlq_url())  # ... and aged out of it (14 days at most)
    assert Customer.objects.get(pk="rider4").email == "rider4@example.com"

    with pytest.raises(CommandError):
        reconcile_output()
    reconcile_output("--repair")

    assert Customer.objects.get(pk="rider4").email == "new-address@example.com"
    assert "0 differences" in reconcile_output()


def test_the_commands_refuse_bad_options_with_a_clear_message(aws_env):
    with pytest.raises(CommandError, match="between 1 and 64"):
        call_command("rebuild_read_model", "--segments", "0")
    with pytest.raises(CommandError, match="s3://bucket/prefix/"):
        call_command("rebuild_read_model", "--from-export", "/tmp/export", "--state", "none")


def test_a_rebuild_into_a_database_without_its_tables_says_to_migrate_first(aws_env, monkeypatch):
    monkeypatch.setattr("django.db.migrations.executor.MigrationExecutor.migration_plan", lambda self, targets: ["unapplied"])
    with pytest.raises(CommandError, match="not migrated: run `manage.py migrate` first"):
        call_command("rebuild_read_model", "--state", "none")


def test_a_rebuild_reads_a_table_export_from_s3_instead_of_scanning(aws_env, tmp_path):
    busy_history()
    sync()
    expected = state_snapshot()
    table = aws.dynamodb().describe_table(TableName=settings.DYNAMODB_TABLE)["Table"]
    aws.client("s3").create_bucket(Bucket="exports")
    aws.dynamodb().update_continuous_backups(
        TableName=settings.DYNAMODB_TABLE, PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": True}
    )
    export = aws.dynamodb().export_table_to_point_in_time(
        TableArn=table["TableArn"], S3Bucket="exports", S3Prefix="nightly", ExportFormat="DYNAMODB_JSON"
    )["ExportDescription"]
    while aws.dynamodb().describe_export(ExportArn=export["ExportArn"])["ExportDescription"]["ExportStatus"] == "IN_PROGRESS":
        time.sleep(0.1)
    _clear_read_model()

    out = StringIO()
    call_command("rebuild_read_model", "--from-export", "s3://exports/nightly/", "--state", str(tmp_path / "s.json"), stdout=out)

    assert "rebuilt" in out.getvalue()
    assert state_snapshot() == expected
    assert "0 differences" in reconcile_output()


def test_staff_see_each_reconcile_report_in_the_admin(aws_env, client, django_user_model):
    Customer.objects.create(customer_id="stray", full_name="Nobody", version=1)
    with pytest.raises(CommandError):
        reconcile_output()
    client.force_login(django_user_model.objects.create_superuser("ops", "ops@example.com", "pw"))

    page = client.get("/admin/admin_portal/reconcilerun/")

    assert page.status_code == 200
    assert "customer: extra 1" in page.content.decode()
