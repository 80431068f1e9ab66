"""The doors: what a caller cannot get through."""

from datetime import timedelta

import pytest
from django.utils import timezone
from django.views.debug import get_exception_reporter_filter

from airticket.auth import CUSTOMER, issue_token
from tests.bookings.api import error
from tests.conftest import client_with


def read_with_a_token_issued_ahead(time_machine, *, ahead: timedelta, customer_id: str):
    """GET the customer with a token signed on a clock `ahead` of the server's."""
    time_machine.move_to(timezone.now() + ahead)
    token = issue_token(role=CUSTOMER, customer_id=customer_id)
    time_machine.move_to(timezone.now() - ahead)
    return client_with(token).get(f"/api/v1/customers/{customer_id}")


@pytest.mark.django_db
def test_a_token_issued_in_the_future_is_refused(aws_env, time_machine):
    response = read_with_a_token_issued_ahead(time_machine, ahead=timedelta(days=365), customer_id="c-future")
    assert response.status_code == 401
    assert error(response)["message"] == "token issued in the future"


@pytest.mark.django_db
def test_a_token_issued_a_moment_ago_on_a_slightly_fast_clock_is_accepted(aws_env, time_machine):
    response = read_with_a_token_issued_ahead(time_machine, ahead=timedelta(seconds=30), customer_id="c-skew")
    assert response.status_code == 404  # authenticated; the customer just does not exist


def test_the_debug_page_masks_the_database_url_with_its_password(rf, settings):
    request = rf.get("/", DATABASE_URL="mysql://app:hunter2@db.internal/airticket")
    reporter = get_exception_reporter_filter(request)
    meta = reporter.get_safe_request_meta(request)
    assert "hunter2" not in str(meta["DATABASE_URL"])
    assert meta["DATABASE_URL"] == reporter.cleansed_substitute
    assert "hunter2" not in str(reporter.get_safe_settings())
