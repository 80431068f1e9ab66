"""End to end on moto: command API -> DynamoDB -> bridge -> Kinesis -> poller -> handler -> read
models; and the bridge's and poller's restart and failure behaviour."""

import base64
import json
import random

import pytest
from botocore.exceptions import ClientError
from django.conf import settings
from django.db import OperationalError, connection

from admin_portal.models import Booking, Customer, Flight, FlightEvent, FlightPassengerCount, FlightStop, ShardCheckpoint
from airticket import aws
from bookings import services
from cdc_lambda import bridge, poller
from cdc_lambda.handler import handler
from tests.cdc.changes import event, redelivered
from tests.cdc.readmodel import checksum, dlq_letters, passenger_counts_agree
from tests.factories import flight_data, make_customer, make_flight

pytestmark = pytest.mark.django_db(transaction=True)


def sync(**poller_options) -> poller.Poller:
    """Everything the command side wrote so far, through the bridge and the poller."""
    bridge.run(once=True)
    return poller.run(once=True, backoff_base=0, **poller_options)


def kinesis_records() -> list[dict]:
    """Every record on the stream, as Lambda records, shard by shard."""
    kinesis = aws.kinesis()
    arn = kinesis.describe_stream_summary(StreamName=settings.KINESIS_STREAM)["StreamDescriptionSummary"]["StreamARN"]
    records = []
    for shard in kinesis.list_shards(StreamName=settings.KINESIS_STREAM)["Shards"]:
        iterator = kinesis.get_shard_iterator(
            StreamName=settings.KINESIS_STREAM, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        while True:
            page = kinesis.get_records(ShardIterator=iterator, Limit=1000)
            records += [poller.lambda_record(record=r, shard_id=shard["ShardId"], stream_arn=arn) for r in page["Records"]]
            if not page["Records"]:
                break
            iterator = page["NextShardIterator"]
    return records


def _clear_read_model() -> None:
    for model in (FlightEvent, FlightStop, Booking, FlightPassengerCount, Flight, Customer):
        model.objects.all().delete()


def _history(staff, as_customer) -> dict:
    """A little of everything the command API can do."""
    pvg_urc = flight_data(origin="PVG", transfers=["CTU", "XIY"], destination="URC")
    pek_can = flight_data(origin="PEK", destination="CAN")
    for flight in (pvg_urc, pek_can):
        assert staff.post("/api/v1/flights", flight, format="json").status_code == 201
    alice, bob = as_customer("alice"), as_customer("bob")
    r = alice.post(
        "/api/v1/customers", {"customer_id": "alice", "full_name": "Alice"}, format="json", HTTP_IDEMPOTENCY_KEY="register-alice"
    )
    assert r.status_code == 201, r.json()
    assert bob.post("/api/v1/customers", {"customer_id": "bob", "full_name": "Bob"}, format="json").status_code == 201
    assert alice.patch("/api/v1/customers/alice", {"mobile": "+86 138 0000 0001"}, format="json").status_code == 200
    booking = {"flight_number": pvg_urc["flight_number"], "flight_date": pvg_urc["flight_date"]}
    alice_order = alice.post("/api/v1/customers/alice/orders", booking, format="json").json()
    bob_order = bob.post("/api/v1/customers/bob/orders", booking, format="json").json()
    moved = {"flight_number": pek_can["flight_number"], "flight_date": pek_can["flight_date"]}
    assert alice.patch(f"/api/v1/customers/alice/orders/{alice_order['order_id']}", moved, format="json").status_code == 200
    assert bob.post(f"/api/v1/customers/bob/orders/{bob_order['order_id']}/cancel").status_code == 200
    delay = {"departure_time": "09:30", "arrival_time": "13:00"}
    assert staff.patch(f"/api/v1/flights/{pvg_urc['flight_number']}/{pvg_urc['flight_date']}", delay, format="json").status_code == 200
    assert staff.post(f"/api/v1/flights/{pek_can['flight_number']}/{pek_can['flight_date']}/cancel").status_code == 200
    return {"flights": (pvg_urc, pek_can), "orders": {"alice": alice_order["order_id"], "bob": bob_order["order_id"]}}


def test_every_command_effect_reaches_the_read_model(staff, as_customer):
    history = _history(staff, as_customer)
    done = sync()
    assert done.dead_lettered == 0 and dlq_letters() == []
    for customer_id in ("alice", "bob"):
        source = services.customer_get(customer_id=customer_id)
        row = Customer.objects.get(pk=customer_id)
        assert (row.full_name, row.mobile, row.email, row.version) == (
            source["full_name"],
            source["mobile"],
            source["email"],
            source["version"],
        )
    for customer_id, order_id in history["orders"].items():
        source = services.order_get(customer_id=customer_id, order_id=order_id)
        row = Booking.objects.get(pk=order_id)
        assert (row.customer_id, row.flight_number, row.flight_date.isoformat(), row.status, row.version) == (
            customer_id,
            source["flight_number"],
            source["flight_date"],
            source["status"],
            source["version"],
        )
    for flight in history["flights"]:
        source = services.flight_get(flight_number=flight["flight_number"], flight_date=flight["flight_date"])
        row = Flight.objects.get(pk=f"{flight['flight_number']}#{flight['flight_date']}")
        assert (row.status, row.seats_booked, row.version, row.departure_time.strftime("%H:%M")) == (
            source["status"],
            source["seats_booked"],
            source["version"],
            source["departure_time"],
        )
        assert row.route == [flight["origin"], *flight["transfers"], flight["destination"]]
        assert list(FlightStop.objects.filter(flight=row).order_by("seq").values_list("airport_id", flat=True)) == row.route
    pvg_urc, pek_can = history["flights"]
    assert sorted(FlightEvent.objects.values_list("flight_id", "kind")) == sorted(
        [
            (f"{pvg_urc['flight_number']}#{pvg_urc['flight_date']}", "DELAYED"),
            (f"{pek_can['flight_number']}#{pek_can['flight_date']}", "CANCELLED"),
        ]
    )
    assert Booking.objects.get(pk=history["orders"]["alice"]).flight_id == f"{pek_can['flight_number']}#{pek_can['flight_date']}"


def test_duplicated_shuffled_and_replayed_streams_all_give_the_read_model_of_a_straight_run(staff, as_customer):
    _history(staff, as_customer)
    sync()
    straight = checksum()
    records = kinesis_records()
    assert len(records) > 20

    _clear_read_model()
    twice = records + [redelivered(r) for r in records]
    random.Random(7).shuffle(twice)
    for start in range(0, len(twice), 5):
        assert handler(event(twice[start : start + 5]), None) == {"batchItemFailures": []}
    assert checksum() == straight

    _clear_read_model()
    for _ in range(2):
        assert handler(event(records), None) == {"batchItemFailures": []}
    assert checksum() == straight

    _clear_read_model()
    for record in reversed(records):
        handler(event([record]), None)
    assert checksum() == straight
    assert passenger_counts_agree()


def test_the_bridge_writes_what_the_streaming_destination_writes_partitioned_by_item_key(aws_env):
    make_customer("erin", full_name="Erin")
    assert bridge.run(once=True) == 1
    [record] = kinesis_records()
    change = json.loads(base64.b64decode(record["kinesis"]["data"]))
    assert record["kinesis"]["partitionKey"] == "CUSTOMER#erin|PROFILE"
    assert set(change) == {"awsRegion", "eventID", "eventName", "userIdentity", "recordFormat", "tableName", "dynamodb", "eventSource"}
    assert (change["eventName"], change["recordFormat"], change["tableName"], change["eventSource"]) == (
        "INSERT",
        "application/json",
        "airticket",
        "aws:dynamodb",
    )
    assert set(change["dynamodb"]) == {"ApproximateCreationDateTime", "Keys", "NewImage", "SizeBytes"}
    assert isinstance(change["dynamodb"]["ApproximateCreationDateTime"], int)
    assert change["dynamodb"]["NewImage"]["full_name"] == {"S": "Erin"}


def test_the_bridge_resumes_from_its_checkpoint_and_never_puts_a_change_twice(aws_env):
    make_customer("a")
    make_customer("b")
    assert bridge.run(once=True) == 2
    make_customer("c")
    assert bridge.run(once=True) == 1
    assert bridge.run(once=True) == 0
    keys = sorted(r["kinesis"]["partitionKey"] for r in kinesis_records())
    assert keys == ["CUSTOMER#a|PROFILE", "CUSTOMER#b|PROFILE", "CUSTOMER#c|PROFILE"]
    assert ShardCheckpoint.objects.get(consumer="bridge").records == 3


def test_put_raw_stages_a_duplicate_delivery_that_changes_nothing(aws_env):
    make_customer("frank")
    sync()
    before = checksum()
    [original] = kinesis_records()
    bridge.put_raw(data=base64.b64decode(original["kinesis"]["data"]), partition_key=original["kinesis"]["partitionKey"])
    done = sync()
    assert done.acknowledged == 1
    assert checksum() == before and Customer.objects.count() == 1


def test_put_raw_stages_a_malformed_record_that_lands_in_the_dlq(aws_env):
    make_customer("grace")
    bridge.put_raw(data=b"not a change record", partition_key="demo|malformed")
    done = sync()
    assert done.acknowledged == 2 and Customer.objects.count() == 1
    [letter] = dlq_letters()
    assert (letter["reason"], base64.b64decode(letter["data"]), letter["partition_key"]) == (
        "poison",
        b"not a change record",
        "demo|malformed",
    )


class DatabaseDown:
    """Every statement fails, as when the server is unreachable, for the first `batches`
    handler calls; then the database is back."""

    def __init__(self, *, batches: int):
        self.remaining = batches
        self.calls = 0

    def handler(self, event: dict, context) -> dict:
        self.calls += 1
        if self.remaining <= 0:
            return handler(event, context)
        self.remaining -= 1
        with connection.execute_wrapper(self._refuse):
            return handler(event, context)

    def _refuse(self, execute, sql, params, many, context):
        raise OperationalError(2003, "Can't connect to MySQL server on '127.0.0.1'")


def test_a_database_outage_is_retried_until_it_is_over_and_nothing_is_lost(aws_env):
    flight = make_flight()
    for n in range(12):
        make_customer(f"c{n}")
        services.order_place(customer_id=f"c{n}", flight_number=flight["flight_number"], flight_date=flight["flight_date"])
    bridge.run(once=True)
    outage = DatabaseDown(batches=3)
    done = poller.run(once=True, handler=outage.handler, batch_size=10, max_retries=5, backoff_base=0)
    assert outage.calls > 3 and outage.remaining == 0
    assert done.dead_lettered == 0 and dlq_letters() == []
    assert Customer.objects.count() == 12 and Booking.objects.filter(status="ORDERED").count() == 12
    assert Flight.objects.get().seats_booked == 12


def test_a_record_that_keeps_crashing_the_handler_is_isolated_by_bisection_and_dead_lettered(aws_env):
    for n in range(8):
        make_customer(f"c{n}")
    bridge.run(once=True)
    crashes: list[int] = []

    def crashing_on_c5(event: dict, context) -> dict:
        if any(b"CUSTOMER#c5" in base64.b64decode(r["kinesis"]["data"]) for r in event["Records"]):
            crashes.append(len(event["Records"]))
            raise RuntimeError("a bug the record triggers")
        return handler(event, context)

    done = poller.run(once=True, handler=crashing_on_c5, max_retries=2, backoff_base=0)
    assert crashes[-1] == 1 and len(crashes) > 1  # bisected down to the one record
    assert sorted(Customer.objects.values_list("pk", flat=True)) == [f"c{n}" for n in range(8) if n != 5]
    [letter] = dlq_letters()
    assert letter["reason"] == "retries_exhausted" and "a bug the record triggers" in letter["error"]
    assert b"CUSTOMER#c5" in base64.b64decode(letter["data"])
    assert done.dead_lettered == 1 and done.acknowledged == 8


def test_a_poller_stopped_after_two_batches_resumes_from_its_checkpoint(aws_env):
    for n in range(30):
        make_customer(f"c{n:02}")
    bridge.run(once=True)
    first = poller.run(once=True, batch_size=4, max_batches=2, backoff_base=0)
    assert first.acknowledged == 8 and Customer.objects.count() == 8
    second = poller.run(once=True, batch_size=4, backoff_base=0)
    assert second.acknowledged == 22 and Customer.objects.count() == 30
    assert sum(ShardCheckpoint.objects.filter(consumer="poller").values_list("records", flat=True)) == 30


def test_an_idle_poller_keeps_a_checkpoint_per_shard_and_beats_its_heart(aws_env):
    poller.run(once=True)
    rows = ShardCheckpoint.objects.filter(consumer="poller")
    assert rows.count() == settings.KINESIS_SHARDS
    first_beat = max(rows.values_list("updated_at", flat=True))
    poller.run(once=True)
    assert max(rows.values_list("updated_at", flat=True)) > first_beat
    assert set(rows.values_list("sequence_number", flat=True)) == {""}


def test_a_checkpoint_that_cannot_be_written_is_retried_and_the_redelivered_records_change_nothing(aws_env):
    for n in range(10):
        make_customer(f"c{n}")
    bridge.run(once=True)
    refused = []

    def refuse_two_checkpoints(execute, sql, params, many, context):
        if "shardcheckpoint" in sql and sql.lstrip().upper().startswith("UPDATE") and "sequence_number" in sql and len(refused) < 2:
            refused.append(sql)
            raise OperationalError(2006, "MySQL server has gone away")
        return execute(sql, params, many, context)

    with connection.execute_wrapper(refuse_two_checkpoints):
        done = poller.run(once=True, batch_size=4, backoff_base=0)
    assert len(refused) == 2
    assert done.acknowledged == 10 and done.dead_lettered == 0
    assert sum(ShardCheckpoint.objects.filter(consumer="poller").values_list("records", flat=True)) == 10
    assert sorted(Customer.objects.values_list("pk", "version")) == [(f"c{n}", 1) for n in range(10)]


def test_a_one_shot_bridge_reports_a_missing_table_instead_of_waiting_forever(aws_env):
    aws.dynamodb().delete_table(TableName=settings.DYNAMODB_TABLE)
    with pytest.raises(ClientError):
        bridge.run(once=True, poll_seconds=0)
