"""The command API as Lambda runs it: Zappa's handler, with the settings file Zappa generates
offline for the `command` stage, answering API Gateway (REST, v1 proxy) events against moto."""

import json
import os
import subprocess
import sys
from pathlib import Path

from django.conf import settings
from django.test import override_settings

from airticket.auth import CUSTOMER, STAFF, issue_token
from bookings import repository as repo

PROJECT = settings.BASE_DIR
LAMBDA_SECRET = "the-command-lambda-secret-key-of-more-than-32-chars"
HOST = "a1b2c3d4e5.execute-api.us-east-1.amazonaws.com"

# Runs in a fresh interpreter whose working directory holds zappa_settings.py, as /var/task does.
DRIVER = """
import json, sys
from types import SimpleNamespace
from zappa.handler import lambda_handler
context = SimpleNamespace(function_name="airticket-command", aws_request_id="req-1", get_remaining_time_in_millis=lambda: 30000)
print(json.dumps([lambda_handler(event, context) for event in json.load(sys.stdin)]))
"""


def save_zappa_settings(directory: Path) -> None:
    zappa = Path(sys.executable).parent / "zappa"
    subprocess.run(
        [str(zappa), "save-python-settings-file", "command", "-o", str(directory / "zappa_settings.py")],
        cwd=PROJECT,
        check=True,
        capture_output=True,
        timeout=120,
    )


def api_gateway_event(method: str, path: str, token: str, body: dict | None = None) -> dict:
    headers = {
        "Host": HOST,
        "Authorization": f"Bearer {token}",
        "Content-Type": "application/json",
        "X-Forwarded-Proto": "https",
        "X-Forwarded-Port": "443",
        "X-Forwarded-For": "203.0.113.7",
    }
    return {
        "resource": "/{proxy+}",
        "path": path,
        "httpMethod": method,
        "headers": headers,
        "multiValueHeaders": {name: [value] for name, value in headers.items()},
        "queryStringParameters": None,
        "multiValueQueryStringParameters": None,
        "pathParameters": {"proxy": path.lstrip("/")},
        "stageVariables": None,
        "requestContext": {
            "resourcePath": "/{proxy+}",
            "httpMethod": method,
            "path": f"/command{path}",
            "stage": "command",
            "requestId": "c0ffee",
            "identity": {"sourceIp": "203.0.113.7", "userAgent": "pytest"},
        },
        "body": None if body is None else json.dumps(body),
        "isBase64Encoded": False,
    }


def invoke(directory: Path, events: list[dict]) -> list[dict]:
    env = {
        "PATH": os.environ["PATH"],
        "PYTHONPATH": str(PROJECT),
        "SECRET_KEY": LAMBDA_SECRET,
        **{name: os.environ[name] for name in ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION")},
    }
    result = subprocess.run(
        [sys.executable, "-c", DRIVER], cwd=directory, env=env, input=json.dumps(events), capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_the_zappa_handler_registers_a_customer_from_an_api_gateway_event(aws_env, tmp_path):
    save_zappa_settings(tmp_path)
    with override_settings(TOKEN_SECRET=LAMBDA_SECRET):
        zoe, staff = issue_token(role=CUSTOMER, customer_id="zoe"), issue_token(role=STAFF)
    created, read, refused = invoke(
        tmp_path,
        [
            api_gateway_event("POST", "/api/v1/customers", zoe, {"customer_id": "zoe", "full_name": "Zoe Lambda"}),
            api_gateway_event("GET", "/api/v1/customers/zoe", staff),
            api_gateway_event("GET", "/api/v1/customers/zoe", "forged"),
        ],
    )
    assert created["statusCode"] == 201, created
    assert json.loads(created["body"])["customer_id"] == "zoe"
    assert (read["statusCode"], json.loads(read["body"])["full_name"]) == (200, "Zoe Lambda")
    assert refused["statusCode"] == 401
    stored = repo.get(repo.customer_key("zoe"))
    assert (stored["full_name"], stored["version"]) == ("Zoe Lambda", 1)
