"""Run a Zappa stage the way Lambda does: the settings file Zappa generates offline for the
stage, and `zappa.handler.lambda_handler` in a fresh interpreter whose working directory holds
it (as /var/task does), with the stage's production settings."""

import json
import os
import subprocess
import sys
from pathlib import Path

from django.conf import settings

PROJECT = settings.BASE_DIR
HOST = "a1b2c3d4e5.execute-api.us-east-1.amazonaws.com"
LAMBDA_SECRET = "the-lambda-secret-key-of-more-than-32-characters"

DRIVER = """
import json, sys
from types import SimpleNamespace
from zappa.handler import lambda_handler
context = SimpleNamespace(function_name="airticket", aws_request_id="req-1", get_remaining_time_in_millis=lambda: 30000)
print(json.dumps([lambda_handler(event, context) for event in json.load(sys.stdin)], default=str))
"""


def stage_config(stage: str) -> dict:
    return json.loads((PROJECT / "zappa_settings.json").read_text())[stage]


def production_env(stage: str, **extra: str) -> dict:
    """The environment a stage's Lambda loads the settings with (its own over the base's, which
    every stage `extends`), for a fresh interpreter."""
    return {
        **stage_config("base")["environment_variables"],
        **stage_config(stage).get("environment_variables", {}),
        "PATH": os.environ["PATH"],
        "DJANGO_SETTINGS_MODULE": "airticket.settings",
        **extra,
    }


def save_settings(stage: str, directory: Path) -> None:
    zappa = Path(sys.executable).parent / "zappa"
    target = directory / "zappa_settings.py"
    subprocess.run(
        [str(zappa), "save-python-settings-file", stage, "-o", str(target)], cwd=PROJECT, check=True, capture_output=True, timeout=120
    )


def api_gateway_event(
    method: str, path: str, token: str, body: dict | None = None, *, stage: str = "command", query: dict | None = None
) -> dict:
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
        "queryStringParameters": query,
        "multiValueQueryStringParameters": {k: [v] for k, v in query.items()} if query else None,
        "pathParameters": {"proxy": path.lstrip("/")},
        "stageVariables": None,
        "requestContext": {
            "resourcePath": "/{proxy+}",
            "httpMethod": method,
            "path": f"/{stage}{path}",
            "stage": stage,
            "requestId": "c0ffee",
            "identity": {"sourceIp": "203.0.113.7", "userAgent": "pytest"},
        },
        "body": None if body is None else json.dumps(body),
        "isBase64Encoded": False,
    }


def invoke(directory: Path, events: list[dict], *, database_url: str | None = None, **extra_env: str) -> list[dict]:
    env = {
        **extra_env,
        "PATH": os.environ["PATH"],
        "PYTHONPATH": str(PROJECT),
        "SECRET_KEY": LAMBDA_SECRET,
        **{name: os.environ[name] for name in ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION")},
    }
    if database_url:
        env["DATABASE_URL"] = database_url
    if os.environ.get("AIRTICKET_CLOCK"):
        # make test's moved-clock pass: the "Lambda" reads the same clock as the test that
        # signs its tokens (tests/clock/sitecustomize.py).
        env.update({name: os.environ[name] for name in ("AIRTICKET_CLOCK", "AIRTICKET_CLOCK_SHIFT") if name in os.environ})
        env["PYTHONPATH"] = os.pathsep.join([str(PROJECT / "tests" / "clock"), str(PROJECT)])
    result = subprocess.run(
        [sys.executable, "-c", DRIVER], cwd=directory, env=env, input=json.dumps(events), capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])
