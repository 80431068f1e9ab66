"""The admin login door: django-axes locks a username (or an address) out after
AXES_FAILURE_LIMIT wrong passwords, the right password included, until the cool-off passes or
a staff member lifts the lock."""

from datetime import timedelta

import pytest
from axes.exceptions import AxesBackendRequestParameterRequired
from axes.models import AccessAttempt, AccessFailureLog
from django.contrib.auth.models import User
from django.core.management import call_command
from django.http import HttpRequest
from django.test import Client
from django.utils import timezone

LOGIN = "/admin/login/?next=/admin/"
USERNAME, PASSWORD = "ops", "correct-horse-battery"

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff_user():
    return User.objects.create_superuser(USERNAME, "ops@example.com", PASSWORD)


def log_in(client: Client, password: str, *, username: str = USERNAME, address: str = "198.51.100.7"):
    return client.post(LOGIN, {"username": username, "password": password}, REMOTE_ADDR=address)


def logged_in(client: Client) -> bool:
    return "_auth_user_id" in client.session


def lock_out(client: Client, limit: int) -> None:
    for attempt in range(1, limit + 1):
        response = log_in(client, f"wrong-{attempt}")
        # The form comes back until the limit; the try that reaches it gets the lockout page.
        assert response.status_code == (429 if attempt == limit else 200), attempt


def test_the_right_password_is_refused_after_the_failure_limit_until_the_cool_off_passes(staff_user, settings, time_machine):
    time_machine.move_to(timezone.now(), tick=False)
    client = Client()
    lock_out(client, settings.AXES_FAILURE_LIMIT)

    refused = log_in(client, PASSWORD)
    assert refused.status_code == 429
    page = refused.content.decode()
    assert "Login locked" in page and f"({settings.AXES_FAILURE_LIMIT} in a row)" in page and "axes_reset_username" in page
    assert not logged_in(client)

    # A try during the lockout starts the wait again (AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT).
    time_machine.shift(settings.AXES_COOLOFF_TIME - timedelta(seconds=1))
    assert log_in(client, PASSWORD).status_code == 429
    time_machine.shift(settings.AXES_COOLOFF_TIME + timedelta(seconds=1))
    welcomed = log_in(client, PASSWORD)
    assert (welcomed.status_code, welcomed["Location"]) == (302, "/admin/")
    assert logged_in(client)


def test_a_username_locked_out_from_one_address_stays_locked_from_another(staff_user, settings):
    lock_out(Client(), settings.AXES_FAILURE_LIMIT)
    elsewhere = Client()
    assert log_in(elsewhere, PASSWORD, address="203.0.113.99").status_code == 429
    assert not logged_in(elsewhere)


def test_an_address_guessing_many_usernames_is_locked_out_for_every_username(staff_user, settings):
    client = Client()
    for attempt in range(settings.AXES_FAILURE_LIMIT):
        log_in(client, "guess", username=f"user{attempt}")
    assert log_in(client, PASSWORD).status_code == 429


def test_fewer_failures_than_the_limit_do_not_lock_and_a_success_clears_them(staff_user, settings):
    client = Client()
    for attempt in range(settings.AXES_FAILURE_LIMIT - 1):
        log_in(client, f"wrong-{attempt}")
    assert log_in(client, PASSWORD).status_code == 302
    assert not AccessAttempt.objects.exists()  # AXES_RESET_ON_SUCCESS: the count starts again


def test_the_reset_command_lifts_a_lockout(staff_user, settings):
    client = Client()
    lock_out(client, settings.AXES_FAILURE_LIMIT)
    call_command("axes_reset_username", USERNAME)
    assert log_in(client, PASSWORD).status_code == 302


def test_staff_see_the_lockout_in_the_admin_and_lift_it_by_deleting_the_attempt(staff_user, settings):
    lock_out(Client(), settings.AXES_FAILURE_LIMIT)
    colleague = Client()
    User.objects.create_superuser("lead", "lead@example.com", "another-long-passphrase")
    assert log_in(colleague, "another-long-passphrase", username="lead", address="192.0.2.1").status_code == 302

    attempts = colleague.get("/admin/axes/accessattempt/").content.decode()
    assert USERNAME in attempts and "198.51.100.7" in attempts
    failures = colleague.get("/admin/axes/accessfailurelog/").content.decode()
    assert failures.count("198.51.100.7") >= settings.AXES_FAILURE_LIMIT
    assert AccessFailureLog.objects.filter(username=USERNAME).count() == settings.AXES_FAILURE_LIMIT

    [attempt] = AccessAttempt.objects.filter(username=USERNAME)
    deleted = colleague.post(f"/admin/axes/accessattempt/{attempt.pk}/delete/", {"post": "yes"})
    assert deleted.status_code == 302
    assert log_in(Client(), PASSWORD).status_code == 302


def test_a_login_from_code_must_name_its_request_so_the_lockout_applies(staff_user, settings):
    # Axes refuses an `authenticate` without a request (it could not count it): code and tests
    # log in with one, as the admin's login view does.
    with pytest.raises(AxesBackendRequestParameterRequired):
        Client().login(username=USERNAME, password=PASSWORD)
    assert Client().login(request=HttpRequest(), username=USERNAME, password=PASSWORD)
