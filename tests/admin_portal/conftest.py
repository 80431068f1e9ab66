import pytest

from airticket.auth import CUSTOMER, STAFF, issue_token
from tests.conftest import client_with


@pytest.fixture
def staff_api(db):
    """A staff client for the query API (which needs no AWS, so no moto reset)."""
    return client_with(issue_token(role=STAFF))


@pytest.fixture
def customer_api(db):
    return client_with(issue_token(role=CUSTOMER, customer_id="alice"))


@pytest.fixture
def anonymous_api(db):
    return client_with(None)
