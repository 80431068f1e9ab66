import os

import pytest
import requests
from rest_framework.test import APIClient

from airticket import aws
from airticket.auth import CUSTOMER, STAFF, issue_token
from airticket.local import moto_server as local_moto
from airticket.provisioning import provision


@pytest.fixture(scope="session")
def moto_server():
    server = local_moto.start_in_thread("127.0.0.1", int(os.environ["MOTO_TEST_PORT"]))
    yield os.environ["AWS_ENDPOINT_URL"]
    server.shutdown()


@pytest.fixture
def aws_env(moto_server):
    """A fresh, provisioned AWS account for each test."""
    requests.post(f"{moto_server}/moto-api/reset", timeout=10).raise_for_status()
    aws.reset_clients()
    provision()
    return moto_server


def client_with(token: str | None) -> APIClient:
    client = APIClient()
    if token:
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client


@pytest.fixture
def staff(aws_env) -> APIClient:
    return client_with(issue_token(role=STAFF))


@pytest.fixture
def as_customer(aws_env):
    def make(customer_id: str) -> APIClient:
        return client_with(issue_token(role=CUSTOMER, customer_id=customer_id))

    return make


@pytest.fixture
def anonymous(aws_env) -> APIClient:
    return client_with(None)
