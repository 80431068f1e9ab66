"""A batch is decoded and written in chunks (the next chunk decoded while the previous one's
statements run), in one transaction: the read model must be the one a single chunk gives, and
poison, failures and the decoder's fast path must behave as for an unchunked batch.
Runs on MariaDB and on SQLite (DATABASE_URL=sqlite:///...)."""

import base64
import json
import random

import pytest
from django.db import connection

from admin_portal.models import Booking, Customer, Flight, FlightEvent, FlightPassengerCount, FlightStop
from cdc_lambda import batch
from cdc_lambda.decode import decode
from cdc_lambda.handler import handler
from tests.cdc.changes import Items, event, lambda_record, redelivered
from tests.cdc.readmodel import checksum, dlq_letters, passenger_counts_agree
from tests.cdc.test_projection import NO_FAILURES, FailingDatabase

pytestmark = pytest.mark.django_db(transaction=True)


def history() -> list[dict]:
    """Every entity, several versions each, flights rerouted, delayed and cancelled, a removal."""
    items = Items()
    records = [items.customer(f"c{n}") for n in range(4)]
    records += [items.flight(f"MU{n}", origin="SHA", transfers=["CTU"] * n, destination="PEK") for n in range(3)]
    records += [items.order(f"c{n % 4}", f"o{n}", number=f"MU{n % 3}") for n in range(6)]
    records += [items.flight("MU0", transfers=[], status="DELAYED", departure_time="09:00"), items.customer("c1", mobile="+1")]
    records += [items.order("c0", "o0", status="CANCELLED"), items.flight("MU1", status="CANCELLED"), items.flight("MU2", capacity=7)]
    records += [items.order("c1", "o1", flight_number="MU2"), items.remove({"PK": "CUSTOMER#c3", "SK": "PROFILE"})]
    records += [items.flight("MU0", departure_time="10:00", transfers=["XIY", "CTU"]), items.customer("c2", full_name="C Two")]
    records += [items.remove({"PK": "CUSTOMER#c2", "SK": "ORDER#o2"})]  # a removed booking leaves its flight's counts
    return records


def wipe() -> None:
    for model in (Customer, Flight, FlightStop, Booking, FlightEvent, FlightPassengerCount):
        model.objects.all().delete()


@pytest.mark.parametrize("chunk", [1, 2, 5])
def test_a_chunked_batch_gives_the_read_model_of_a_single_chunk_in_any_order(monkeypatch, chunk):
    records = history()
    assert handler(event(records), None) == NO_FAILURES
    straight = checksum()
    monkeypatch.setattr(batch, "CHUNK", chunk)
    for seed in range(3):
        wipe()
        shuffled = records + [redelivered(r) for r in records]  # versions of a key in different chunks
        random.Random(seed).shuffle(shuffled)
        assert handler(event(shuffled), None) == NO_FAILURES
        assert checksum() == straight
        assert passenger_counts_agree()


def test_poison_in_a_later_chunk_is_dead_lettered_and_the_rest_applied(aws_env, monkeypatch):
    monkeypatch.setattr(batch, "CHUNK", 2)
    items = Items()
    good = [items.customer(f"c{n}") for n in range(5)]
    poison = lambda_record(data=b"{not json")
    records = [*good[:3], poison, *good[3:]]
    assert handler(event(records), None) == NO_FAILURES
    assert Customer.objects.count() == 5
    assert [letter["sequence_number"] for letter in dlq_letters()] == [poison["kinesis"]["sequenceNumber"]]


def test_a_database_failure_in_a_later_chunk_commits_no_chunk(monkeypatch):
    monkeypatch.setattr(batch, "CHUNK", 1)
    items = Items()
    records = [items.order("a", "o1"), items.order("b", "o2"), items.customer("a"), items.customer("b"), items.flight("MU6")]
    failing = FailingDatabase(fail_at=2)  # the second chunk's booking upsert, after the first chunk's
    with connection.execute_wrapper(failing):
        response = handler(event(records), None)
    assert response == {"batchItemFailures": [{"itemIdentifier": records[0]["kinesis"]["sequenceNumber"]}]}
    assert (Customer.objects.count(), Booking.objects.count(), Flight.objects.count()) == (0, 0, 0)
    assert handler(event(records), None) == NO_FAILURES
    assert (Customer.objects.count(), Booking.objects.count(), Flight.objects.count(), FlightStop.objects.count()) == (2, 2, 1, 3)


def _with_image(record: dict, **attributes) -> dict:
    change = json.loads(base64.b64decode(record["kinesis"]["data"]))
    image = change["dynamodb"]["NewImage"]
    for name, value in attributes.items():
        if value is None:
            image.pop(name)
        else:
            image[name] = value
    return lambda_record(data=json.dumps(change).encode())


def test_values_outside_the_fast_path_decode_as_before():
    """An integral number written with a fraction, an absent optional attribute: the exact
    path (TypeDeserializer) still accepts them."""
    items = Items()
    customer = decode(_with_image(items.customer("erin", mobile="+1"), version={"N": "1.0"}, mobile=None))
    assert (customer.version, customer.row[-2:]) == (1, ("", "erin@example.com"))
    flight = decode(_with_image(items.flight("MU8"), capacity={"N": "120"}, transfers={"L": []}))
    assert (flight.route, flight.row[8], flight.row[12]) == (("PVG", "PEK"), "[]", 120)
