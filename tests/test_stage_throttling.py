"""The first line on AWS: API Gateway's stage throttle on the Zappa HTTP stages (set by
`provision_aws --throttling`; Zappa has no setting for it) and the command function's reserved
concurrency (`lambda_concurrency`, a Zappa setting), consistent with the per-caller throttles."""

import io
import json
import subprocess
import sys

from django.conf import settings
from django.core.management import call_command

from airticket import aws
from tests.zappa_support import LAMBDA_SECRET, PROJECT, production_env, stage_config

PER_SECOND = {"second": 1, "minute": 60, "hour": 3600, "day": 86400}


def deployed_api(name: str, stage: str) -> str:
    """A REST API as `zappa deploy` leaves it: named after the function, one deployed stage."""
    client = aws.apigateway()
    api_id = client.create_rest_api(name=name)["id"]
    root = client.get_resources(restApiId=api_id)["items"][0]["id"]
    client.put_method(restApiId=api_id, resourceId=root, httpMethod="ANY", authorizationType="NONE")
    client.put_integration(restApiId=api_id, resourceId=root, httpMethod="ANY", type="MOCK")
    client.create_deployment(restApiId=api_id, stageName=stage)
    return api_id


def test_provision_aws_throttles_every_method_of_each_deployed_http_stage(aws_env, settings):
    settings.API_THROTTLE_RATE, settings.API_THROTTLE_BURST = 40, 80
    command = deployed_api("airticket-command", "command")
    other = deployed_api("someone-else", "command")
    out = io.StringIO()

    call_command("provision_aws", "--throttling", stdout=out)

    stage = aws.apigateway().get_stage(restApiId=command, stageName="command")
    assert stage["methodSettings"]["*/*"]["throttlingRateLimit"] == 40.0
    assert stage["methodSettings"]["*/*"]["throttlingBurstLimit"] == 80
    untouched = aws.apigateway().get_stage(restApiId=other, stageName="command")
    assert "*/*" not in untouched.get("methodSettings", {})
    lines = out.getvalue().splitlines()
    assert "API airticket-command stage command: throttled at 40 requests/s, bursts of 80" in lines
    assert "API airticket-query stage query: not deployed (zappa deploy query first): skipped" in lines


def production_value(stage: str, expression: str):
    """`expression` in the stage's production settings (its environment in zappa_settings.json)."""
    env = production_env(stage, SECRET_KEY=LAMBDA_SECRET)
    code = f"import django, json; django.setup(); from django.conf import settings; print(json.dumps({expression}))"
    result = subprocess.run([sys.executable, "-c", code], cwd=PROJECT, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_the_stage_throttle_lets_a_lone_caller_reach_its_own_429_first():
    rates, stage_rate, stage_burst = production_value(
        "command", "[settings.COMMAND_THROTTLE_RATES, settings.API_THROTTLE_RATE, settings.API_THROTTLE_BURST]"
    )
    per_second = {scope: int(rate.split("/")[0]) / PER_SECOND[rate.split("/")[1]] for scope, rate in rates.items()}
    assert all(per_second.values())  # every per-caller throttle is on in production
    assert stage_rate >= max(per_second.values()) and stage_burst >= stage_rate


def test_the_command_function_has_a_reserved_concurrency_cap():
    concurrency = stage_config("command")["lambda_concurrency"]
    assert isinstance(concurrency, int) and 1 <= concurrency <= 1000
    # A cap below what the stage throttle lets through at a warm request's ~0.1 s would turn
    # allowed requests into Lambda throttles.
    assert concurrency >= settings.API_THROTTLE_RATE * 0.1
