import os
import threading

import pytest
import requests
from moto.server import ThreadedMotoServer
from rest_framework.test import APIClient

from airticket import aws
from airticket.auth import CUSTOMER, STAFF, issue_token
from airticket.provisioning import provision


def one_dynamodb_request_at_a_time(app):
    """AWS runs each DynamoDB request atomically. moto does not: a transaction checks and applies
    its items one by one with no lock, and rolls back by restoring a copy of the whole table,
    undoing what other threads wrote meanwhile (concurrent bookings oversell a flight). Serialise
    DynamoDB (and its Streams) requests; other services, such as SQS long polls, stay concurrent."""
    lock = threading.Lock()

    def serialised(environ, start_response):
        if environ.get("HTTP_X_AMZ_TARGET", "").startswith("DynamoDB"):
            with lock:
                return list(app(environ, start_response))
        return app(environ, start_response)

    return serialised


@pytest.fixture(scope="session")
def moto_server():
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=int(os.environ["MOTO_TEST_PORT"]), verbose=False)
    server.start()
    server._server.app = one_dynamodb_request_at_a_time(server._server.app)
    yield os.environ["AWS_ENDPOINT_URL"]
    server.stop()


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
