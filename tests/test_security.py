"""The doors: what a caller cannot get through."""

from datetime import timedelta

import pytest
from django.utils import timezone
from django.views.debug import get_exception_reporter_filter

from airticket.auth import CUSTOMER, issue_token
from tests.bookings.api import error
from tests.conftest import client_with


@pytest.mark.django_db
def test_a_token_issued_in_the_future_is_refused(aws_env, time_machine):
    time_machine.move_to(timezone.now() + timedelta(days=365))
    token = issue_token(role=CUSTOMER, customer_id="c-future")
    time_machine.move_to(timezone.now() - timedelta(days=365))
    response = client_with(token).get("/api/v1/customers/c-future")
    assert response.status_code == 401
    assert error(response)["message"] == "token issued in the future"


@pytest.mark.django_db
def test_a_token_issued_a_moment_ago_on_a_slightly_fast_clock_is_accepted(aws_env, time_machine):
    time_machine.move_to(timezone.now() + timedelta(seconds=30))
    token = issue_token(role=CUSTOMER, customer_id="c-skew")
    time_machine.move_to(timezone.now() - timedelta(seconds=30))
    response = client_with(token).get("/api/v1/customers/c-skew")
    assert response.status_code == 404  # authenticated; the customer just does not exist


def test_the_debug_page_masks_the_database_url_with_its_password(rf, settings):
    request = rf.get("/", DATABASE_URL="mysql://app:hunter2@db.internal/airticket")
    reporter = get_exception_reporter_filter(request)
    meta = reporter.get_safe_request_meta(request)
    assert "hunter2" not in str(meta["DATABASE_URL"])
    assert meta["DATABASE_URL"] == reporter.cleansed_substitute
    assert "hunter2" not in str(reporter.get_safe_settings())
