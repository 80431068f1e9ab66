"""The command API as Lambda runs it: Zappa's handler, with the settings file Zappa generates
offline for the `command` stage, answering API Gateway (REST, v1 proxy) events against moto."""

import json

from django.test import override_settings

from airticket.auth import CUSTOMER, STAFF, issue_token
from bookings import repository as repo
from tests.zappa_support import LAMBDA_SECRET, api_gateway_event, invoke, save_settings


def test_the_zappa_handler_registers_a_customer_from_an_api_gateway_event(aws_env, tmp_path):
    save_settings("command", tmp_path)
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
