"""Builders of change records exactly as the CDC handler receives them.

`Items` plays the command side's items (same attributes and versioning as `bookings.services`)
and emits DynamoDB Streams records; they go through the real `bridge.to_kinesis_record` and
`poller.lambda_record`, so a test record has the shape production records have.
"""

import base64
import itertools
import uuid
from datetime import UTC, datetime

from bookings import repository as repo
from cdc_lambda import bridge, poller

STREAM_ARN = "arn:aws:kinesis:us-east-1:123456789012:stream/airticket-changes"
SHARD = "shardId-000000000000"
_sequence = itertools.count(1)


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def stream_record(*, event_name: str, key: dict, new: dict | None = None, old: dict | None = None) -> dict:
    """A DynamoDB Streams record as boto3 returns it (images in DynamoDB JSON)."""
    dynamodb = {
        "ApproximateCreationDateTime": datetime.now(UTC),
        "Keys": repo.marshal(key),
        "SizeBytes": 321,
        "StreamViewType": "NEW_AND_OLD_IMAGES",
    }
    if new is not None:
        dynamodb["NewImage"] = repo.marshal({**key, **new})
    if old is not None:
        dynamodb["OldImage"] = repo.marshal({**key, **old})
    return {
        "eventID": uuid.uuid4().hex,
        "eventName": event_name,
        "eventSource": "aws:dynamodb",
        "awsRegion": "us-east-1",
        "dynamodb": dynamodb,
    }


def lambda_record(*, data: bytes, partition_key: str = "raw|raw", sequence: str | None = None) -> dict:
    kinesis = {
        "Data": data,
        "PartitionKey": partition_key,
        "SequenceNumber": sequence or str(next(_sequence)),
        "ApproximateArrivalTimestamp": datetime.now(UTC),
    }
    return poller.lambda_record(record=kinesis, shard_id=SHARD, stream_arn=STREAM_ARN)


def delivered(change: dict) -> dict:
    """A DynamoDB Streams record -> the Lambda Kinesis record carrying it."""
    entry = bridge.to_kinesis_record(change)
    return lambda_record(data=entry["Data"], partition_key=entry["PartitionKey"])


def redelivered(record: dict) -> dict:
    """The same change record again, under a new sequence number (a duplicate delivery)."""
    return lambda_record(data=base64.b64decode(record["kinesis"]["data"]), partition_key=record["kinesis"]["partitionKey"])


def event(records: list[dict]) -> dict:
    return {"Records": records}


class Items:
    """Command-side items and their change records, version by version."""

    def __init__(self):
        self.items: dict[tuple, dict] = {}

    def _write(self, key: dict, changes: dict, *, defaults: dict) -> dict:
        """A new item (`defaults` with `changes`), or the next version of the one there."""
        ident = (key["PK"], key["SK"])
        old = self.items.get(ident)
        stamp = now()
        if old is None:
            new = {**defaults, **changes, "version": 1, "created_at": stamp, "updated_at": stamp}
        else:
            new = {**old, **changes, "version": old["version"] + 1, "updated_at": stamp}
        self.items[ident] = new
        return delivered(stream_record(event_name="MODIFY" if old else "INSERT", key=key, new=new, old=old))

    def remove(self, key: dict) -> dict:
        old = self.items.pop((key["PK"], key["SK"]))
        return delivered(stream_record(event_name="REMOVE", key=key, old=old))

    def customer(self, customer_id: str, **changes) -> dict:
        attributes = {
            "entity": repo.CUSTOMER,
            "customer_id": customer_id,
            "full_name": customer_id.title(),
            "mobile": "",
            "email": f"{customer_id}@example.com",
        }
        return self._write(repo.customer_key(customer_id), changes, defaults=attributes)

    def flight(self, number: str, day: str = "2026-12-01", **changes) -> dict:
        attributes = {
            "entity": repo.FLIGHT,
            "flight_number": number,
            "flight_date": day,
            "origin": "PVG",
            "transfers": ["CTU"],
            "destination": "PEK",
            "departure_time": "08:00",
            "arrival_time": "10:15",
            "capacity": 100,
            "seats_booked": 0,
            "status": "SCHEDULED",
            "schedule_version": 1,
        }
        return self._write(repo.flight_key(number, day), changes, defaults=attributes)

    def order(self, customer_id: str, order_id: str, *, number: str = "MU5159", day: str = "2026-12-01", **changes) -> dict:
        attributes = {
            "entity": repo.ORDER,
            "order_id": order_id,
            "customer_id": customer_id,
            "flight_number": number,
            "flight_date": day,
            "origin": "PVG",
            "transfers": ["CTU"],
            "destination": "PEK",
            "departure_time": "08:00",
            "arrival_time": "10:15",
            "status": "ORDERED",
        }
        return self._write(repo.order_key(customer_id, order_id), changes, defaults=attributes)

    def booking(self, customer_id: str, order_id: str, *, number: str = "MU5159", day: str = "2026-12-01", **changes) -> dict:
        """An order placed on the flight item as it is now, copying what `bookings.services`
        copies: the route and times, the incarnation and the version it saw."""
        flight = self.items[(repo.flight_key(number, day)["PK"], "FLIGHT")]
        copied = {name: flight[name] for name in ("origin", "transfers", "destination", "departure_time", "arrival_time")}
        seen = {"flight_created_at": flight["created_at"], "flight_version": flight["version"]}
        return self.order(customer_id, order_id, number=number, day=day, **copied, **seen, **changes)

    def guard(self, customer_id: str, number: str = "MU5159", day: str = "2026-12-01") -> dict:
        key = repo.guard_key(customer_id, number, day)
        return delivered(
            stream_record(event_name="INSERT", key=key, new={"entity": repo.BOOKING_GUARD, "order_id": "x", "created_at": now()})
        )

    def idempotency(self, subject: str, token: str) -> dict:
        key = repo.idempotency_key(subject, token)
        return delivered(
            stream_record(
                event_name="INSERT", key=key, new={"entity": repo.IDEMPOTENCY, "fingerprint": "f", "state": "IN_PROGRESS", "expires_at": 1}
            )
        )
