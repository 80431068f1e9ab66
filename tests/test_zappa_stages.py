"""The query and CDC Zappa stages answer the events Lambda gives them.

Each stage's settings file is generated offline (`zappa save-python-settings-file STAGE`);
then `zappa.handler.lambda_handler` runs in a fresh Python process, as on Lambda, with the
production settings of the stage: an API Gateway event for a query endpoint, and a Kinesis
event (routed by its `eventSourceARN`, exactly as the stage's `events` entry names it) for
the CDC function.
"""

import base64
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.db import connection

from admin_portal.models import Customer
from airticket.auth import STAFF, issue_token
from bookings import repository as repo

ROOT = Path(__file__).resolve().parent.parent
SECRET = "zappa-stage-test-secret-0123456789abcdef"
RUN_HANDLER = """
import json, sys
sys.path[:0] = [sys.argv[1], sys.argv[2]]
from zappa.handler import lambda_handler
print("RESULT " + json.dumps(lambda_handler(json.loads(sys.argv[3]), None), default=str))
"""


def stage_settings(stage: str, directory: Path) -> dict:
    zappa = Path(sys.executable).parent / "zappa"
    target = directory / "zappa_settings.py"
    subprocess.run(
        [str(zappa), "save-python-settings-file", stage, "-s", str(ROOT / "zappa_settings.json"), "-o", str(target)],
        check=True,
        cwd=ROOT,
        capture_output=True,
    )
    return json.loads((ROOT / "zappa_settings.json").read_text())[stage]


def invoke(event: dict, settings_dir: Path, *, token_secret: str = SECRET):
    """Run the Lambda handler in a fresh process against this test's database and moto."""
    db = connection.settings_dict
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    env.update(SECRET_KEY=token_secret, DATABASE_URL=f"mysql://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}")
    done = subprocess.run(
        [sys.executable, "-c", RUN_HANDLER, str(settings_dir), str(ROOT), json.dumps(event)],
        env=env,
        cwd=settings_dir,
        capture_output=True,
        text=True,
        timeout=120,
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    assert done.returncode == 0 and lines, done.stdout[-2000:] + done.stderr[-3000:]
    return json.loads(lines[-1][len("RESULT ") :])


def api_gateway_get(path: str, query: dict, token: str) -> dict:
    return {
        "httpMethod": "GET",
        "path": path,
        "headers": {"Host": "abc123.execute-api.us-east-1.amazonaws.com", "Authorization": f"Bearer {token}", "Accept": "application/json"},
        "multiValueHeaders": {},
        "queryStringParameters": query,
        "multiValueQueryStringParameters": {k: [v] for k, v in query.items()},
        "requestContext": {"stage": "query", "identity": {"sourceIp": "203.0.113.7"}},
        "body": None,
        "isBase64Encoded": False,
    }


def kinesis_event(arn: str, change: dict) -> dict:
    data = base64.b64encode(json.dumps(change).encode()).decode()
    record = {
        "kinesis": {
            "kinesisSchemaVersion": "1.0",
            "partitionKey": "CUSTOMER#zed|PROFILE",
            "sequenceNumber": "49590338271490256608559692538361571095921575989136588898",
            "data": data,
            "approximateArrivalTimestamp": 1764168000.0,
        },
        "eventSource": "aws:kinesis",
        "eventVersion": "1.0",
        "eventID": "shardId-000000000000:49590338271490256608559692538361571095921575989136588898",
        "eventName": "aws:kinesis:record",
        "invokeIdentityArn": "arn:aws:iam::000000000000:role/airticket-cdc",
        "awsRegion": "us-east-1",
        "eventSourceARN": arn,
    }
    return {"Records": [record]}


def customer_inserted(customer_id: str) -> dict:
    stamp = "2026-11-26T10:00:00.000000Z"
    item = {
        "entity": repo.CUSTOMER,
        "customer_id": customer_id,
        "full_name": "Zed Zappa",
        "mobile": "",
        "email": "",
        "version": 1,
        "created_at": stamp,
        "updated_at": stamp,
    }
    key = repo.customer_key(customer_id)
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
            "NewImage": repo.marshal({**key, **item}),
            "SizeBytes": 120,
        },
    }


@pytest.mark.django_db(transaction=True)
def test_the_cdc_stage_projects_a_kinesis_event_routed_by_its_stream_arn(aws_env, tmp_path):
    stage = stage_settings("cdc", tmp_path)
    arn = stage["events"][0]["event_source"]["arn"]
    result = invoke(kinesis_event(arn, customer_inserted("zed")), tmp_path)
    assert result == {"batchItemFailures": []}
    assert Customer.objects.get(pk="zed").full_name == "Zed Zappa"


@pytest.mark.django_db(transaction=True)
def test_the_query_stage_answers_an_api_gateway_event_for_a_query_endpoint(aws_env, tmp_path, settings):
    Customer.objects.create(customer_id="ann", full_name="Ann Query", version=1)
    stage_settings("query", tmp_path)
    settings.TOKEN_SECRET = SECRET
    token = issue_token(role=STAFF)
    response = invoke(api_gateway_get("/api/v1/query/customers", {"search": "ann"}, token), tmp_path)
    assert response["statusCode"] == 200, response
    body = json.loads(response["body"])
    assert body["count"] == 1
    assert body["results"][0]["customer_id"] == "ann"


@pytest.mark.django_db(transaction=True)
def test_the_query_stage_refuses_a_token_signed_with_another_secret(aws_env, tmp_path, settings):
    stage_settings("query", tmp_path)
    settings.TOKEN_SECRET = "some-other-secret-that-the-stage-does-not-know"
    response = invoke(api_gateway_get("/api/v1/query/customers", {}, issue_token(role=STAFF)), tmp_path)
    assert response["statusCode"] == 401
