"""The query and CDC Zappa stages answer the events Lambda gives them: an API Gateway event
for a query endpoint, and a Kinesis event routed by its `eventSourceARN`, exactly as the
stage's `events` entry names it, to the CDC function."""

import base64
import contextlib
import json
import socket

import pytest
from django.db import connection
from django.test import override_settings

from admin_portal.models import Customer, ReconcileRun
from airticket.auth import STAFF, issue_token
from bookings import repository as repo
from tests.zappa_support import LAMBDA_SECRET, api_gateway_event, invoke, save_settings, stage_config

pytestmark = pytest.mark.django_db(transaction=True)


def this_database() -> str:
    db = connection.settings_dict
    return f"mysql://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}"


def kinesis_event(arn: str, change: dict) -> dict:
    sequence = "49590338271490256608559692538361571095921575989136588898"
    record = {
        "kinesis": {
            "kinesisSchemaVersion": "1.0",
            "partitionKey": "CUSTOMER#zed|PROFILE",
            "sequenceNumber": sequence,
            "data": base64.b64encode(json.dumps(change).encode()).decode(),
            "approximateArrivalTimestamp": 1764168000.0,
        },
        "eventSource": "aws:kinesis",
        "eventVersion": "1.0",
        "eventID": f"shardId-000000000000:{sequence}",
        "eventName": "aws:kinesis:record",
        "invokeIdentityArn": "arn:aws:iam::000000000000:role/airticket-cdc",
        "awsRegion": "us-east-1",
        "eventSourceARN": arn,
    }
    return {"Records": [record]}


def customer_inserted(customer_id: str) -> dict:
    stamp = "2026-11-26T10:00:00.000000Z"
    key = repo.customer_key(customer_id)
    item = {
        **key,
        "entity": repo.CUSTOMER,
        "customer_id": customer_id,
        "full_name": "Zed Zappa",
        "version": 1,
        "created_at": stamp,
        "updated_at": stamp,
    }
    return {
        "awsRegion": "us-east-1",
        "eventID": "e1",
        "eventName": "INSERT",
        "userIdentity": None,
        "recordFormat": "application/json",
        "tableName": "airticket",
        "eventSource": "aws:dynamodb",
        "dynamodb": {
            "ApproximateCreationDateTime": 1764151200000,
            "Keys": repo.marshal(key),
            "NewImage": repo.marshal(item),
            "SizeBytes": 120,
        },
    }


def test_the_cdc_stage_projects_a_kinesis_event_routed_by_its_stream_arn(aws_env, tmp_path):
    save_settings("cdc", tmp_path)
    arn = stage_config("cdc")["events"][0]["event_source"]["arn"]
    [result] = invoke(tmp_path, [kinesis_event(arn, customer_inserted("zed"))], database_url=this_database())
    assert result == {"batchItemFailures": []}
    assert Customer.objects.get(pk="zed").full_name == "Zed Zappa"


def test_the_cdc_stage_traces_each_batch_in_x_ray_annotated_with_its_shard(aws_env, tmp_path):
    # Zappa's `xray_tracing` turns Lambda's active tracing on for every stage (base) ...
    assert stage_config("base")["xray_tracing"] is True
    assert all(stage_config(stage)["extends"] == "base" for stage in ("command", "cdc", "query"))
    # ... and in Lambda's environment (a task root, a sampled trace id, the daemon's address)
    # the CDC handler sends its batch's subsegment to the X-Ray daemon.
    daemon = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    daemon.bind(("127.0.0.1", 0))
    daemon.settimeout(10)
    save_settings("cdc", tmp_path)
    arn = stage_config("cdc")["events"][0]["event_source"]["arn"]
    lambda_env = {
        "LAMBDA_TASK_ROOT": str(tmp_path),
        "_X_AMZN_TRACE_ID": "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1",
        "AWS_XRAY_DAEMON_ADDRESS": f"127.0.0.1:{daemon.getsockname()[1]}",
    }

    [result] = invoke(tmp_path, [kinesis_event(arn, customer_inserted("zed"))], database_url=this_database(), **lambda_env)

    assert result == {"batchItemFailures": []}
    segments = []
    with contextlib.suppress(TimeoutError), daemon:
        while not any(s["name"] == "## handler" for s in segments):
            header, body = daemon.recv(65536).decode().split("\n", 1)
            assert json.loads(header) == {"format": "json", "version": 1}
            segments.append(json.loads(body))
    [batch] = [s for s in segments if s["name"] == "## handler"]
    assert batch["trace_id"] == "1-5759e988-bd862e3fe1be46a994272793"
    assert batch["annotations"] | {"ColdStart": None} == {
        "ColdStart": None,
        "Service": "airticket",
        "shard": "shardId-000000000000",
        "records": 1,
    }
    assert Customer.objects.get(pk="zed").full_name == "Zed Zappa"


def test_the_query_stage_answers_an_api_gateway_event_for_a_query_endpoint(aws_env, tmp_path):
    Customer.objects.create(customer_id="ann", full_name="Ann Query", version=1)
    save_settings("query", tmp_path)
    with override_settings(TOKEN_SECRET=LAMBDA_SECRET):
        staff = issue_token(role=STAFF)
    events = [
        api_gateway_event("GET", "/api/v1/query/customers", staff, stage="query", query={"search": "ann"}),
        api_gateway_event("GET", "/api/v1/query/customers", issue_token(role=STAFF), stage="query"),  # signed with another secret
    ]
    found, refused = invoke(tmp_path, events, database_url=this_database())
    assert found["statusCode"] == 200, found
    body = json.loads(found["body"])
    assert (body["count"], body["results"][0]["customer_id"]) == (1, "ann")
    assert refused["statusCode"] == 401


def test_the_cdc_stage_runs_its_scheduled_reconcile_and_keeps_the_report(aws_env, tmp_path):
    save_settings("cdc", tmp_path)
    [schedule] = [e for e in stage_config("cdc")["events"] if "expression" in e]
    Customer.objects.create(customer_id="stray", full_name="Not In DynamoDB", version=1)
    scheduled = {
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "resources": [f"arn:aws:events:us-east-1:000000000000:rule/airticket-cdc-{schedule['function']}"],
        "detail": {},
    }

    [result] = invoke(tmp_path, [scheduled], database_url=this_database())

    assert result == {"items": 0, "differences": 1}
    assert ReconcileRun.objects.get().detail["samples"] == {"CUSTOMER": {"extra": ["stray"]}}
