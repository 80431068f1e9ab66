"""The project's own management commands, through call_command."""

import io
import os

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from django.db import connection

from airticket import aws
from airticket.local import ingest
from bookings import services
from bookings.demo_schedule import DEMO_FLIGHTS, demo_dates


def run(*args) -> str:
    out = io.StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


@pytest.mark.django_db
def test_ensure_staff_user_creates_the_login_once_and_resets_its_password():
    assert "created" in run("ensure_staff_user", "--username", "ops", "--password", "first-password")
    assert "updated" in run("ensure_staff_user", "--username", "ops", "--password", "second-password")
    user = get_user_model().objects.get(username="ops")
    assert user.is_staff and user.is_superuser
    assert user.check_password("second-password")


@pytest.mark.django_db
def test_ensure_database_reports_the_database_ready_or_that_sqlite_needs_nothing():
    expected = "nothing to create" if connection.vendor == "sqlite" else f"database {connection.settings_dict['NAME']}: ready"
    assert expected in run("ensure_database")


def test_load_demo_schedule_creates_the_lab_flights_once(aws_env):
    assert run("load_demo_schedule", "--days", "2") == f"demo schedule: {2 * len(DEMO_FLIGHTS)} flights created, 0 already there\n"
    assert run("load_demo_schedule", "--days", "2") == f"demo schedule: 0 flights created, {2 * len(DEMO_FLIGHTS)} already there\n"
    flight = services.flight_get(flight_number="MU5159", flight_date=demo_dates()[0])
    assert (flight["origin"], flight["destination"], flight["status"]) == ("SHA", "PEK", "SCHEDULED")
    transfer = services.flight_get(flight_number="MU5401", flight_date=demo_dates()[1])
    assert transfer["transfers"] == ["CTU"]


@pytest.mark.parametrize(
    "args, message",
    [
        (["13"], "'13' is not a step"),
        (["demo", "zero"], "'zero' is not a step"),
        (["sead"], "'sead' is not a step \\(1-11, 'demo' or 'seed'\\)"),
        (["--api", "file:///etc/passwd", "3"], r"must be an http\(s\) URL"),
    ],
)
def test_ingest_refuses_what_it_cannot_run(args, message):
    with pytest.raises(CommandError, match=message):
        call_command("ingest", *args, stdout=io.StringIO())


def test_ingest_reports_an_unreachable_system_as_a_command_error():
    with pytest.raises(CommandError, match="Connection refused|connection refused|Errno"):
        call_command("ingest", "--api", "http://127.0.0.1:9", "3", stdout=io.StringIO())


def test_ingest_without_steps_shows_the_labs_menu_and_exits_on_12(monkeypatch):
    monkeypatch.setattr("sys.stdin", io.StringIO("99\n12\n"))
    out, err = io.StringIO(), io.StringIO()
    call_command("ingest", "--api", "http://127.0.0.1:9", stdout=out, stderr=err)
    menu = out.getvalue()
    for line in (" 1. init", " 2. truncate", " 6. register 20 customers", "10. duplicate delivery", "11. error handling", "12. exit"):
        assert line in menu
    assert menu.count("choose: ") == 2
    assert "'99' is not a step" in err.getvalue()


def test_ingest_reads_seed_as_one_step_after_the_demo():
    assert ingest.parse_steps(["demo", "seed"]) == [*ingest.DEMO, "seed"]


def test_ingest_reports_an_unreachable_aws_endpoint_as_a_command_error_naming_it(monkeypatch):
    # --aws-endpoint rewrites the process's AWS_ENDPOINT_URL: monkeypatch puts it back, and the
    # clients made for the dead endpoint are dropped, so later tests reach moto again.
    monkeypatch.setenv("AWS_ENDPOINT_URL", os.environ.get("AWS_ENDPOINT_URL", ""))
    try:
        with pytest.raises(CommandError, match=r"http://127.0.0.1:9: .*--aws-endpoint"):
            call_command("ingest", "--api", "http://127.0.0.1:9", "--aws-endpoint", "http://127.0.0.1:9", "11", stdout=io.StringIO())
    finally:
        monkeypatch.undo()
        aws.reset_clients()


@pytest.fixture
def aws_out_of_reach(monkeypatch):
    """AWS at a port nothing listens on (a shell without `make run`'s environment, or moto down)."""
    from airticket.local.supervisor import free_port

    endpoint = f"http://127.0.0.1:{free_port()}"
    monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
    aws.reset_clients()
    yield endpoint
    monkeypatch.undo()
    aws.reset_clients()


@pytest.mark.django_db
@pytest.mark.parametrize("command", [["reconcile"], ["rebuild_read_model"], ["check_consistency"], ["provision_aws"]])
def test_a_command_that_cannot_reach_aws_says_so_in_one_line_naming_the_endpoint(aws_out_of_reach, command):
    with pytest.raises(CommandError) as refused:
        run(*command)
    message = str(refused.value)
    assert message.startswith(f"{aws_out_of_reach}: Could not connect to the endpoint URL"), message
    assert "AWS_ENDPOINT_URL" in message and "\n" not in message
