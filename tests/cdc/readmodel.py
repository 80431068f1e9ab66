"""Observing the read side: a checksum of every projected row, and the DLQ's letters."""

import hashlib
import json

from django.conf import settings
from django.db.models import Count

from admin_portal.models import Booking, Customer, Flight, FlightEvent, FlightPassengerCount, FlightStop
from airticket import aws

# Everything the projection decides; not the wall-clock bookkeeping (projected_at, ids).
_SNAPSHOT = {
    Customer: ("customer_id", "version", "deleted", "created_at", "updated_at", "full_name", "mobile", "email"),
    Flight: (
        "flight_key",
        "version",
        "deleted",
        "created_at",
        "updated_at",
        "flight_number",
        "flight_date",
        "origin_id",
        "transfers",
        "destination_id",
        "departure_time",
        "arrival_time",
        "capacity",
        "seats_booked",
        "status",
    ),
    FlightStop: ("flight_id", "seq", "airport_id", "kind", "flight_date", "local_time"),
    Booking: (
        "order_id",
        "version",
        "deleted",
        "created_at",
        "updated_at",
        "customer_id",
        "flight_id",
        "flight_number",
        "flight_date",
        "origin",
        "transfers",
        "destination",
        "departure_time",
        "arrival_time",
        "status",
        "flight_created_at",
        "flight_version",
    ),
    FlightPassengerCount: ("flight_id", "status", "passengers"),
    FlightEvent: ("flight_id", "kind", "flight_version", "detail"),
}


def snapshot() -> dict[str, list]:
    return {model.__name__: sorted(_rows(model).values_list(*fields), key=repr) for model, fields in _SNAPSHOT.items()}


def _rows(model):
    # A count that went up and down again is the same read model as one never written.
    return model.objects.exclude(passengers=0) if model is FlightPassengerCount else model.objects.all()


def passenger_counts_agree() -> bool:
    """The projection's per-flight counts are exactly the live bookings, per flight and status."""
    counted = {(r.flight_id, r.status): r.passengers for r in _rows(FlightPassengerCount)}
    live = Booking.objects.filter(deleted=False).values_list("flight_id", "status").annotate(n=Count("pk")).order_by()
    return counted == {(flight, status): n for flight, status, n in live}


def checksum() -> str:
    return hashlib.sha256(json.dumps(snapshot(), default=str, sort_keys=True).encode()).hexdigest()


def dlq_letters() -> list[dict]:
    """Every message in the DLQ (each received once, then hidden from later calls)."""
    sqs = aws.sqs()
    url = sqs.get_queue_url(QueueName=settings.DLQ_QUEUE)["QueueUrl"]
    letters = []
    while True:
        batch = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=300).get("Messages", [])
        if not batch:
            return letters
        letters.extend(json.loads(message["Body"]) for message in batch)
