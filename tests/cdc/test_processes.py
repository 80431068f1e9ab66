"""The bridge and the poller as the processes they are locally: killed with SIGKILL mid-batch,
stopped with SIGTERM. They need a database another process can reach, so MySQL/MariaDB only."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection, connections

from admin_portal.models import Customer, ShardCheckpoint
from cdc_lambda import bridge, poller
from tests.factories import make_customer

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]
ROOT = Path(settings.BASE_DIR)


@pytest.fixture(autouse=True)
def shared_database():
    if connection.vendor != "mysql":
        pytest.skip("a child process cannot reach the test run's in-memory SQLite database")


def manage(*args: str, batch_size: int = 5, **environment: str) -> subprocess.Popen:
    db = connection.settings_dict
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "airticket.settings",
        "DATABASE_URL": f"mysql://{db['USER']}:{db['PASSWORD']}@{db['HOST']}:{db['PORT'] or 3306}/{db['NAME']}",
        "CDC_BATCH_SIZE": str(batch_size),
        "CDC_POLL_INTERVAL_MS": "20",
        **environment,
    }
    return subprocess.Popen(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def wait_for(condition, *, what: str, seconds: float = 60) -> None:
    """Waits for another process; the deadline only stops a hung test, it asserts no speed."""
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.05)


def poller_progress() -> int:
    return sum(ShardCheckpoint.objects.filter(consumer="poller").values_list("records", flat=True))


def blocked_writes() -> int:
    """Sessions of other processes stuck for a while in a write to the customers table."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE db = DATABASE() AND id <> CONNECTION_ID() AND time >= 1 AND info LIKE %s",
            ["INSERT INTO `admin_portal_customer`%"],
        )
        return cursor.fetchone()[0]


def hold_row(customer_id: str):
    """Another session inserts the row and keeps its transaction open: the poller's batch that
    writes this customer blocks in the middle of its transaction."""
    blocker = connections.create_connection("default")
    blocker.set_autocommit(False)
    with blocker.cursor() as cursor:
        cursor.execute(
            "INSERT INTO admin_portal_customer (customer_id, version, deleted, full_name, mobile, email, projected_at) VALUES (%s, 0, 0, '', '', '', NOW())",
            [customer_id],
        )
    return blocker


def kill_when_blocked(child: subprocess.Popen, blocker, *, also=lambda: True) -> None:
    """SIGKILL the poller once a batch of it is blocked on the held row (and `also` holds);
    then let the row go."""
    try:
        wait_for(lambda: blocked_writes() > 0, what="the poller to block mid-batch")
        wait_for(also, what="the rest of the poller to go on")
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
    finally:
        blocker.rollback()
        blocker.close()
    assert child.returncode == -signal.SIGKILL


def test_a_poller_killed_mid_batch_resumes_from_its_checkpoint_losing_and_repeating_nothing(aws_env):
    customers = [f"c{n:02}" for n in range(40)]
    for customer_id in customers:
        make_customer(customer_id)
    assert bridge.run(once=True) == 40
    blocker = hold_row(customers[-1])
    kill_when_blocked(manage("run_poller"), blocker)
    before = poller_progress()
    assert 0 < before < 40
    assert Customer.objects.count() == before  # the batch in flight was never committed

    resumed = poller.run(once=True, batch_size=5, backoff_base=0)
    assert resumed.acknowledged == 40 - before  # from the checkpoint: nothing read twice
    assert poller_progress() == 40
    assert sorted(Customer.objects.values_list("pk", "version")) == [(customer_id, 1) for customer_id in customers]


@pytest.mark.parametrize("command", ["run_poller", "run_bridge"])
def test_a_consumer_stops_cleanly_on_sigterm(aws_env, command):
    make_customer("zoe")
    child = manage(command)
    consumer = "poller" if command == "run_poller" else "bridge"
    wait_for(lambda: ShardCheckpoint.objects.filter(consumer=consumer).exists(), what=f"{command} to start")
    child.send_signal(signal.SIGTERM)
    out, err = child.communicate(timeout=60)
    assert child.returncode == 0, err
    assert ("acknowledged" if consumer == "poller" else "bridged") in out
