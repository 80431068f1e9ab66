"""The OpenAPI document is generated without a warning and describes the bearer tokens."""

import io

import yaml
from django.core.management import call_command


def test_the_schema_generates_without_warnings_and_documents_bearer_tokens(tmp_path):
    target = tmp_path / "schema.yml"
    call_command("spectacular", "--fail-on-warn", "--file", str(target), stdout=io.StringIO(), stderr=io.StringIO())
    schema = yaml.safe_load(target.read_text())
    assert schema["components"]["securitySchemes"]["bearerAuth"] == {
        "type": "http",
        "scheme": "bearer",
        "description": "`python manage.py issue_token --staff` or `--customer ID`",
    }
    assert {"/api/v1/customers/{customer_id}/orders", "/api/v1/query/passengers"} <= set(schema["paths"])
    assert {"bearerAuth": []} in schema["paths"]["/api/v1/customers"]["post"]["security"]
