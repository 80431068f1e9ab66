from io import StringIO

import pytest
import requests
from django.conf import settings
from django.core.management import CommandError, call_command

from airticket import aws
from airticket.auth import verify_token
from tests.bookings.api import customer_url, flight_url
from tests.conftest import client_with
from tests.factories import make_customer, make_flight


def command_output(*args) -> str:
    out = StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


@pytest.fixture
def empty_moto(moto_server):
    requests.post(f"{moto_server}/moto-api/reset", timeout=10).raise_for_status()
    aws.reset_clients()
    return moto_server


def test_provision_aws_creates_the_table_stream_and_queue_then_reports_them_as_existing(empty_moto):
    first = command_output("provision_aws")
    assert f"table {settings.DYNAMODB_TABLE}: created" in first
    assert f"stream {settings.KINESIS_STREAM}: created" in first
    assert "streaming destination: skipped (local endpoint" in first
    second = command_output("provision_aws")
    assert f"table {settings.DYNAMODB_TABLE}: exists" in second
    assert f"stream {settings.KINESIS_STREAM}: exists" in second
    assert f"queue {settings.DLQ_QUEUE}: ready" in second
    table = aws.dynamodb().describe_table(TableName=settings.DYNAMODB_TABLE)["Table"]
    assert table["StreamSpecification"] == {"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"}
    assert [k["AttributeName"] for k in table["KeySchema"]] == ["PK", "SK"]
    ttl = aws.dynamodb().describe_time_to_live(TableName=settings.DYNAMODB_TABLE)["TimeToLiveDescription"]
    assert (ttl["TimeToLiveStatus"], ttl["AttributeName"]) == ("ENABLED", "expires_at")
    stream = aws.kinesis().describe_stream_summary(StreamName=settings.KINESIS_STREAM)["StreamDescriptionSummary"]
    assert stream["OpenShardCount"] == settings.KINESIS_SHARDS
    assert aws.dlq_url().endswith(settings.DLQ_QUEUE)


def test_issue_token_for_staff_prints_a_token_the_api_accepts_for_staff_work(aws_env):
    flight = make_flight()
    token = command_output("issue_token", "--staff").strip()
    assert client_with(token).get(flight_url(flight)).status_code == 200


def test_issue_token_for_a_named_staff_member_carries_that_identity():
    token = command_output("issue_token", "--staff", "ops.lead").strip()
    assert verify_token(token).subject == "staff:ops.lead"


def test_issue_token_for_unnamed_staff_gives_each_token_its_own_identity():
    first, second = (verify_token(command_output("issue_token", "--staff").strip()) for _ in range(2))
    assert first.is_staff and second.is_staff
    assert first.subject != second.subject


def test_issue_token_for_a_customer_acts_for_that_customer_only(aws_env):
    make_customer("alice")
    make_customer("bob")
    alice = client_with(command_output("issue_token", "--customer", "alice").strip())
    assert alice.get(customer_url("alice")).status_code == 200
    assert alice.get(customer_url("bob")).status_code == 403


@pytest.mark.parametrize(
    "args",
    [
        ["--customer", "bad id!"],
        ["--customer", "c" * 65],
        ["--customer", ""],
        [],
        ["--staff", "--customer", "alice"],
        ["--staff", "bad name!"],
    ],
)
def test_issue_token_refuses_a_bad_or_missing_identity(args):
    with pytest.raises(CommandError):
        call_command("issue_token", *args, stdout=StringIO(), stderr=StringIO())
