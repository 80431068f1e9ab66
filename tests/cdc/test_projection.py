"""The CDC handler against the database: versions, tombstones, stops, flight events, poison
records and database failures. Runs on MariaDB and on SQLite (DATABASE_URL=sqlite:///...)."""

import base64
import json
import random
from datetime import date, time

import pytest
from django.conf import settings
from django.db import OperationalError, connection

from admin_portal.models import Booking, Customer, Flight, FlightEvent, FlightPassengerCount, FlightStop
from airticket import aws
from cdc_lambda.handler import handler
from tests.cdc.changes import Items, event, lambda_record, redelivered
from tests.cdc.readmodel import checksum, dlq_letters, passenger_counts_agree

pytestmark = pytest.mark.django_db(transaction=True)

NO_FAILURES = {"batchItemFailures": []}


def apply(records: list[dict]) -> dict:
    return handler(event(records), None)


def test_a_registered_customer_appears_with_its_attributes_and_version():
    items = Items()
    assert apply([items.customer("alice", full_name="Alice Liddell", mobile="+86 1")]) == NO_FAILURES
    alice = Customer.objects.get(pk="alice")
    assert (alice.full_name, alice.mobile, alice.email, alice.version, alice.deleted) == (
        "Alice Liddell",
        "+86 1",
        "alice@example.com",
        1,
        False,
    )
    assert alice.created_at is not None and alice.created_at == alice.updated_at


def test_a_stale_change_arriving_after_a_newer_one_is_ignored():
    items = Items()
    first = items.customer("bob", full_name="Bob")
    second = items.customer("bob", full_name="Robert")
    apply([second])
    apply([first])
    bob = Customer.objects.get(pk="bob")
    assert (bob.full_name, bob.version) == ("Robert", 2)


def test_a_batch_applies_only_the_newest_version_of_each_item_whatever_its_position():
    items = Items()
    versions = [items.customer("carol", full_name=f"Carol {n}") for n in range(1, 6)]
    apply([versions[3], versions[4], versions[0], versions[2], versions[1]])
    carol = Customer.objects.get(pk="carol")
    assert (carol.full_name, carol.version) == ("Carol 5", 5)


def test_an_order_becomes_a_booking_with_its_route_snapshot():
    items = Items()
    apply([items.order("alice", "o1", number="MU5159", day="2026-12-01")])
    booking = Booking.objects.get(pk="o1")
    assert (booking.customer_id, booking.flight_id, booking.flight_number, booking.flight_date) == (
        "alice",
        "MU5159#2026-12-01",
        "MU5159",
        date(2026, 12, 1),
    )
    assert (booking.origin, booking.transfers, booking.destination, booking.status) == ("PVG", ["CTU"], "PEK", "ORDERED")
    assert (booking.departure_time, booking.arrival_time) == (time(8, 0), time(10, 15))


def test_a_flight_route_is_projected_as_ordered_stops():
    items = Items()
    apply([items.flight("MU5159", origin="SHA", transfers=["CTU", "XIY"], destination="URC")])
    flight = Flight.objects.get(pk="MU5159#2026-12-01")
    assert flight.route == ["SHA", "CTU", "XIY", "URC"]
    stops = list(FlightStop.objects.filter(flight_id=flight.pk).order_by("seq").values_list("seq", "airport_id", "kind", "flight_date"))
    assert stops == [
        (0, "SHA", "ORIGIN", date(2026, 12, 1)),
        (1, "CTU", "TRANSFER", date(2026, 12, 1)),
        (2, "XIY", "TRANSFER", date(2026, 12, 1)),
        (3, "URC", "DESTINATION", date(2026, 12, 1)),
    ]


def test_a_removed_item_leaves_a_tombstone_that_a_late_change_cannot_revive():
    items = Items()
    created = items.flight("MU1")
    changed = items.flight("MU1", seats_booked=3)
    removed = items.remove({"PK": "FLIGHT#MU1#2026-12-01", "SK": "FLIGHT"})
    apply([created, removed])
    apply([changed])
    flight = Flight.objects.get(pk="MU1#2026-12-01")
    assert (flight.deleted, flight.version, flight.seats_booked) == (True, 3, 3)
    assert not FlightStop.objects.filter(flight_id=flight.pk).exists()


def test_cancelling_a_flight_emits_one_cancelled_event_however_often_it_is_delivered():
    items = Items()
    created = items.flight("MU2")
    cancelled = items.flight("MU2", status="CANCELLED")
    apply([created, cancelled])
    apply([redelivered(cancelled), redelivered(cancelled)])
    events = list(FlightEvent.objects.values_list("flight_id", "kind", "flight_version"))
    assert events == [("MU2#2026-12-01", "CANCELLED", 2)]
    detail = FlightEvent.objects.get().detail
    assert (detail["from"]["status"], detail["to"]["status"]) == ("SCHEDULED", "CANCELLED")


def test_every_schedule_change_emits_a_delayed_event_and_a_capacity_change_none():
    items = Items()
    records = [
        items.flight("MU3"),
        items.flight("MU3", capacity=120),
        items.flight("MU3", departure_time="09:00", arrival_time="11:15", status="DELAYED"),
        items.flight("MU3", departure_time="10:00", arrival_time="12:15"),
    ]
    apply(records)
    assert sorted(FlightEvent.objects.values_list("kind", "flight_version")) == [("DELAYED", 3), ("DELAYED", 4)]
    assert FlightEvent.objects.get(flight_version=4).detail["to"]["departure_time"] == "10:00:00"


def test_a_cancellation_superseded_within_the_batch_still_emits_its_event():
    items = Items()
    records = [items.flight("MU4"), items.flight("MU4", status="CANCELLED"), items.flight("MU4", seats_booked=0)]
    apply(list(reversed(records)))
    assert list(FlightEvent.objects.values_list("kind", "flight_version")) == [("CANCELLED", 2)]
    assert Flight.objects.get(pk="MU4#2026-12-01").version == 3


def test_booking_guards_and_idempotency_records_are_skipped_without_a_dead_letter(aws_env):
    items = Items()
    assert apply([items.guard("alice"), items.idempotency("customer:alice", "k1"), items.customer("alice")]) == NO_FAILURES
    assert Customer.objects.count() == 1
    assert dlq_letters() == []


def test_delivering_every_record_twice_in_any_order_gives_the_same_read_model():
    items = Items()
    records = [items.customer("alice"), items.flight("MU5"), items.order("alice", "o1", number="MU5"), items.flight("MU5", seats_booked=1)]
    records += [
        items.order("alice", "o1", status="CANCELLED"),
        items.flight("MU5", status="CANCELLED"),
        items.customer("alice", mobile="+1"),
    ]
    apply(records)
    straight = checksum()
    for seed in range(3):
        FlightEvent.objects.all().delete()
        for model in (Customer, Flight, FlightStop, Booking, FlightPassengerCount):
            model.objects.all().delete()
        shuffled = records + [redelivered(r) for r in records]
        random.Random(seed).shuffle(shuffled)
        for start in range(0, len(shuffled), 3):
            assert apply(shuffled[start : start + 3]) == NO_FAILURES
        assert checksum() == straight
        assert passenger_counts_agree()


def _poison(data: bytes) -> dict:
    return lambda_record(data=data)


def _change(payload: dict) -> bytes:
    return json.dumps(payload).encode()


def poison_records(items: Items) -> dict[str, dict]:
    """One record of every kind that can never be applied, keyed by what is wrong with it."""
    good = json.loads(base64.b64decode(items.customer("mallory")["kinesis"]["data"]))
    image = good["dynamodb"]["NewImage"]
    bad_version = {**good, "dynamodb": {**good["dynamodb"], "NewImage": {**image, "version": {"S": "three"}}}}
    unknown = {**good, "dynamodb": {**good["dynamodb"], "NewImage": {**image, "entity": {"S": "INVOICE"}}}}
    no_keys = {**good, "dynamodb": {k: v for k, v in good["dynamodb"].items() if k != "Keys"}}
    order = json.loads(base64.b64decode(items.order("mallory", "o9")["kinesis"]["data"]))
    bad_date = {
        **order,
        "dynamodb": {**order["dynamodb"], "NewImage": {**order["dynamodb"]["NewImage"], "flight_date": {"S": "2026-13-45"}}},
    }
    bad_base64 = _poison(b"")
    bad_base64["kinesis"]["data"] = "%%% not base64 %%%"
    stream = good["dynamodb"]
    listed_event = {**good, "eventName": ["INSERT"]}
    map_entity = {**good, "dynamodb": {**stream, "NewImage": {**image, "entity": {"M": {"S": {"S": "CUSTOMER"}}}}}}
    huge_version = {**good, "dynamodb": {**stream, "NewImage": {**image, "version": {"N": "1e400"}}}}
    year_one = {**good, "dynamodb": {**stream, "NewImage": {**image, "created_at": {"S": "0001-01-01T00:00:00+01:00"}}}}
    return {
        "not base64": bad_base64,
        "not JSON": _poison(b"{this is not json"),
        "unknown item type": _poison(_change(unknown)),
        "Keys is missing": _poison(_change(no_keys)),
        "version is not an integer from 0": _poison(_change(bad_version)),
        "flight_date is not an ISO date": _poison(_change(bad_date)),
        "capacity is not an integer from 0 to 2147483647": items.flight("MU999", capacity=2**40),
        "malformed record: TypeError: unhashable type: 'list'": _poison(_change(listed_event)),
        "malformed record: TypeError: unhashable type: 'dict'": _poison(_change(map_entity)),
        "malformed record: Overflow": _poison(_change(huge_version)),
        "malformed record: OverflowError: date value out of range": _poison(_change(year_one)),
    }


def test_poison_records_mid_batch_go_to_the_dlq_with_their_reasons_and_the_rest_is_applied(aws_env):
    items = Items()
    poison = poison_records(Items())
    good = [items.customer(f"c{n}") for n in range(6)]
    batch = [good[0], good[1], *list(poison.values())[:3], good[2], good[3], *list(poison.values())[3:], good[4], good[5]]
    assert apply(batch) == NO_FAILURES
    assert sorted(Customer.objects.values_list("customer_id", flat=True)) == [f"c{n}" for n in range(6)]
    letters = {letter["sequence_number"]: letter for letter in dlq_letters()}
    assert set(letters) == {record["kinesis"]["sequenceNumber"] for record in poison.values()}
    for reason, record in poison.items():
        letter = letters[record["kinesis"]["sequenceNumber"]]
        assert reason in letter["error"]
        assert (letter["reason"], letter["shard_id"], letter["data"]) == ("poison", "shardId-000000000000", record["kinesis"]["data"])
        assert letter["failed_at"].endswith("Z")


def test_a_poison_record_is_not_acknowledged_while_the_dlq_is_unreachable(aws_env):
    items = Items()
    first, poison, last = items.customer("a"), lambda_record(data=b"garbage"), items.customer("b")
    sqs = aws.sqs()
    sqs.delete_queue(QueueUrl=sqs.get_queue_url(QueueName=settings.DLQ_QUEUE)["QueueUrl"])
    assert apply([first, poison, last]) == {"batchItemFailures": [{"itemIdentifier": poison["kinesis"]["sequenceNumber"]}]}
    assert Customer.objects.count() == 2  # committed: re-applying them on the retry changes nothing
    sqs.create_queue(QueueName=settings.DLQ_QUEUE)
    assert apply([poison, last]) == NO_FAILURES
    assert [letter["sequence_number"] for letter in dlq_letters()] == [poison["kinesis"]["sequenceNumber"]]


class FailingDatabase:
    """Makes the Nth statement sent to the database fail as a dropped connection would."""

    def __init__(self, *, fail_at: int):
        self.fail_at = fail_at
        self.statements = 0

    def __call__(self, execute, sql, params, many, context):
        self.statements += 1
        if self.statements == self.fail_at:
            raise OperationalError(2013, "Lost connection to server during query")
        return execute(sql, params, many, context)


def test_a_database_failure_mid_batch_commits_nothing_and_fails_the_batch_from_its_first_record():
    items = Items()
    records = [items.customer("a"), items.flight("MU6"), items.order("a", "o1", number="MU6"), items.customer("b")]
    failing = FailingDatabase(fail_at=3)
    with connection.execute_wrapper(failing):
        response = apply(records)
    assert failing.statements >= 3
    assert response == {"batchItemFailures": [{"itemIdentifier": records[0]["kinesis"]["sequenceNumber"]}]}
    assert (Customer.objects.count(), Flight.objects.count(), FlightStop.objects.count(), Booking.objects.count()) == (0, 0, 0, 0)
    assert apply(records) == NO_FAILURES
    assert (Customer.objects.count(), Flight.objects.count(), FlightStop.objects.count(), Booking.objects.count()) == (2, 1, 3, 1)


def test_a_database_failure_at_the_passenger_counts_rolls_the_bookings_back_and_the_retry_counts_each_once():
    items = Items()
    records = [items.flight("MU6"), items.order("a", "o1", number="MU6"), items.order("b", "o2", number="MU6")]
    records += [items.order("a", "o1", status="CANCELLED")]
    apply(records[:2])
    table = FlightPassengerCount._meta.db_table

    def fail_at_the_counts(execute, sql, params, many, context):
        if table in sql and sql.lstrip().upper().startswith("INSERT"):
            raise OperationalError(2013, "Lost connection to server during query")
        return execute(sql, params, many, context)

    with connection.execute_wrapper(fail_at_the_counts):
        response = apply(records)
    assert response == {"batchItemFailures": [{"itemIdentifier": records[0]["kinesis"]["sequenceNumber"]}]}
    assert Booking.objects.get(pk="o1").status == "ORDERED" and not Booking.objects.filter(pk="o2").exists()
    assert apply(records) == NO_FAILURES
    assert apply([redelivered(r) for r in records]) == NO_FAILURES
    assert dict(FlightPassengerCount.objects.filter(flight_id="MU6#2026-12-01").values_list("status", "passengers")) == {
        "ORDERED": 1,
        "CANCELLED": 1,
    }
    assert passenger_counts_agree()


def test_a_connection_killed_by_the_server_mid_batch_is_reported_and_replaced():
    if connection.vendor != "mysql":
        pytest.skip("needs a database server whose connections can be killed")
    items = Items()
    records = [items.customer("a"), items.customer("b"), items.flight("MU7")]
    connection.ensure_connection()
    victim = connection.connection.thread_id()
    killed = []

    def kill_own_connection(execute, sql, params, many, context):
        if not killed and sql.lstrip().upper().startswith("INSERT"):
            from django.db import connections

            other = connections.create_connection("default")
            with other.cursor() as cursor:
                cursor.execute("KILL %s", [victim])
            other.close()
            killed.append(victim)
        return execute(sql, params, many, context)

    with connection.execute_wrapper(kill_own_connection):
        response = apply(records)
    assert killed
    assert response == {"batchItemFailures": [{"itemIdentifier": records[0]["kinesis"]["sequenceNumber"]}]}
    assert apply(records) == NO_FAILURES
    assert connection.connection.thread_id() != victim
    assert (Customer.objects.count(), Flight.objects.count()) == (2, 1)


def test_an_item_created_again_after_its_removal_wins_over_its_tombstone():
    old, new = Items(), Items()
    created, removed = old.customer("dave", full_name="Dave"), old.remove({"PK": "CUSTOMER#dave", "SK": "PROFILE"})
    recreated = new.customer("dave", full_name="David")  # a truncate, then the same id registered anew: version 1
    apply([created, removed])
    assert Customer.objects.get(pk="dave").deleted
    apply([recreated])
    apply([redelivered(removed), redelivered(created)])
    dave = Customer.objects.get(pk="dave")
    assert (dave.full_name, dave.version, dave.deleted) == ("David", 1, False)


def test_a_flight_created_again_and_cancelled_again_at_the_same_version_emits_a_new_event():
    old, new = Items(), Items()
    first = [old.flight("MU3"), old.flight("MU3", status="CANCELLED"), old.remove({"PK": "FLIGHT#MU3#2026-12-01", "SK": "FLIGHT"})]
    second = [new.flight("MU3"), new.flight("MU3", status="CANCELLED")]  # a truncate, the schedule again: versions 1, 2
    apply(first)
    apply(second)
    apply([redelivered(second[1])])
    events = FlightEvent.objects.order_by("flight_created_at")
    assert [(e.kind, e.flight_version) for e in events] == [("CANCELLED", 2), ("CANCELLED", 2)]
    assert events[0].flight_created_at < events[1].flight_created_at
