"""DynamoDB refuses a plain write to an item a transaction is working on
(TransactionConflictException); botocore does not retry it. moto serialises requests, so it
never says so itself: a botocore Stubber plays DynamoDB here."""

import pytest
from botocore.stub import Stubber

from airticket import aws
from airticket.errors import Conflict
from bookings import repository as repo
from bookings import services


@pytest.fixture
def dynamodb(aws_env):
    client = aws.dynamodb()
    with Stubber(client) as stub:
        yield stub
        stub.assert_no_pending_responses()


def conflict(stub: Stubber, operation: str) -> None:
    stub.add_client_error(operation, service_error_code="TransactionConflictException", http_status_code=400)


def test_a_profile_change_colliding_with_a_booking_is_a_409_not_a_500(dynamodb):
    conflict(dynamodb, "update_item")
    profile = repo.marshal({**repo.customer_key("ann"), "entity": "CUSTOMER", "customer_id": "ann", "full_name": "Ann", "version": 3})
    dynamodb.add_response("get_item", {"Item": profile})

    with pytest.raises(Conflict) as refused:
        services.customer_update(customer_id="ann", changes={"full_name": "Ann B"})
    assert refused.value.code == "busy"


def test_a_flight_cancellation_colliding_with_a_booking_is_retried(dynamodb):
    flight = {
        **repo.flight_key("MU1", "2026-12-01"),
        "entity": "FLIGHT",
        "flight_number": "MU1",
        "flight_date": "2026-12-01",
        "status": "SCHEDULED",
        "version": 7,
    }
    dynamodb.add_response("get_item", {"Item": repo.marshal(flight)})
    conflict(dynamodb, "update_item")
    dynamodb.add_response("get_item", {"Item": repo.marshal(flight)})
    dynamodb.add_response("update_item", {"Attributes": repo.marshal({**flight, "status": "CANCELLED", "version": 8})})

    cancelled = services.flight_cancel(flight_number="MU1", flight_date="2026-12-01")

    assert (cancelled["status"], cancelled["version"]) == ("CANCELLED", 8)
