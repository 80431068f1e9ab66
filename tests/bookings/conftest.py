import pytest
import requests

from airticket import aws
from airticket.provisioning import ensure_table


def fresh_account(endpoint: str) -> None:
    """A fresh moto account with just the DynamoDB table: the command side needs nothing else,
    and skipping the stream and queue halves the cost of every test here."""
    requests.post(f"{endpoint}/moto-api/reset", timeout=10).raise_for_status()
    aws.reset_clients()
    ensure_table()


@pytest.fixture
def aws_env(moto_server):
    fresh_account(moto_server)
    return moto_server
