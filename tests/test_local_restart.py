"""The local system survives its own restart, as a user restarts it: `manage.py runlocal` in a
subprocess writes, is stopped with Ctrl-C (SIGINT), started, written to, killed with SIGKILL
(the supervisor, and moto right after it, so not even moto's snapshot at stop helps: only its
journal does), started and written to again. After each start every change is visible in the
query API, and both sides agree."""

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from airticket.auth import STAFF, issue_token
from airticket.local import supervisor
from bookings.demo_schedule import demo_dates

ROOT = Path(__file__).resolve().parent.parent

# Three starts of the whole system: more than the suite's default per-test timeout on a busy machine.
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("local_restart"), pytest.mark.timeout(900)]


@pytest.fixture(params=["sqlite", "mariadb"])
def database_url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'local.sqlite3'}"
    # Named after the suite's database, so two checkouts testing at once use two databases.
    return f"{os.environ['DATABASE_URL'].rstrip('/')}_restart"


class System:
    """One local system: its environment (ports and state kept across restarts) and its runs."""

    def __init__(self, env: dict, tmp_path: Path):
        self.env, self.tmp_path, self.runs = env, tmp_path, 0
        self.base = f"http://127.0.0.1:{env['PORT']}"
        self.process: subprocess.Popen | None = None
        self.staff = issue_token(role=STAFF)  # the system signs with the same (inherited) secret
        self.customers: dict[str, str] = {}  # customer id -> full name, as last written
        self.orders: dict[str, str] = {}  # order id -> customer id (ORDERED bookings)
        self.day = demo_dates()[7]  # mid-schedule: a demo day whatever the zone or the clock

    @property
    def log(self) -> Path:
        return self.tmp_path / f"runlocal-{self.runs}.log"

    def start(self) -> None:
        self.runs += 1
        self.process = supervisor.spawn(self.env, self.log)
        supervisor.wait_running(self.process, self.log)

    def call(self, method: str, path: str, body: dict | None = None) -> tuple[int, dict]:
        request = urllib.request.Request(
            f"{self.base}{path}",
            method=method,
            data=json.dumps(body).encode() if body is not None else None,
            headers={"Authorization": f"Bearer {self.staff}", "Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 - loopback only
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read() or b"{}")

    def write(self, tag: str) -> None:
        """A customer registered and renamed, and a booking on a demo flight."""
        customer_id = f"{tag}-c"
        assert self.call("POST", "/api/v1/customers", {"customer_id": customer_id, "full_name": f"{tag} first"})[0] == 201
        status, _ = self.call("PATCH", f"/api/v1/customers/{customer_id}", {"full_name": f"{tag} renamed"})
        assert status == 200
        self.customers[customer_id] = f"{tag} renamed"
        status, order = self.call("POST", f"/api/v1/customers/{customer_id}/orders", {"flight_number": "MU5159", "flight_date": self.day})
        assert status == 201, order
        self.orders[order["order_id"]] = customer_id

    def visible(self) -> bool:
        """Every change written so far is in the query API, and the command side agrees."""
        for customer_id, full_name in self.customers.items():
            status, page = self.call("GET", f"/api/v1/query/customers?search={customer_id}")
            if status != 200 or [(c["customer_id"], c["full_name"]) for c in page["results"]] != [(customer_id, full_name)]:
                return False
            status, profile = self.call("GET", f"/api/v1/customers/{customer_id}")
            assert (status, profile.get("full_name")) == (200, full_name), profile
        status, page = self.call("GET", f"/api/v1/query/passengers?flight_number=MU5159&flight_date={self.day}&page_size=500")
        return status == 200 and {row["order_id"] for row in page["results"]} == set(self.orders)

    def wait_visible(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while not self.visible():
            assert time.monotonic() < deadline, f"not every change reached the query API:\n{self.log.read_text()[-3000:]}"
            time.sleep(0.5)

    def compared_at_start(self) -> dict:
        """What the comparison of both sides at this start found (an outcome other than AGREED
        means the sides differed and were brought in line, or /healthz would not be 200)."""
        status, health = self.call("GET", "/healthz")
        assert status == 200, health
        return health["consistency_at_start"]

    def interrupt(self) -> None:
        assert supervisor.interrupt(self.process) == 0, self.log.read_text()[-3000:]
        assert "moto: DynamoDB saved to" in self.log.read_text()

    def kill(self) -> None:
        """kill -9 of the supervisor, then of moto (before it can save a snapshot on the SIGTERM
        its parent's death sends it)."""
        moto_pid = int(re.search(r"started moto \(pid (\d+)\)", self.log.read_text()).group(1))
        self.process.send_signal(signal.SIGKILL)
        os.kill(moto_pid, signal.SIGKILL)
        self.process.wait()


def test_the_local_system_keeps_every_change_across_a_ctrl_c_and_a_kill_9(database_url, tmp_path):
    env = supervisor.child_environment(
        DATABASE_URL=database_url, EMAIL_FILE_PATH=str(tmp_path / "mail"), LOCAL_STATE_DIR=str(tmp_path / "state")
    )
    if database_url.startswith("mysql"):
        # A clean start: the database may hold an earlier run's rows.
        subprocess.run([sys.executable, "manage.py", "ensure_database"], env=env, cwd=ROOT, check=True)
        subprocess.run([sys.executable, "manage.py", "flush", "--noinput"], env=env, cwd=ROOT, check=False)
    system = System(env, tmp_path)
    try:
        system.start()  # inside: a start that times out must not leave the system running
        assert system.compared_at_start()["outcome"] == "AGREED"  # the demo schedule in flight is no divergence
        system.write("one")
        system.wait_visible()
        system.interrupt()

        system.start()
        system.wait_visible()
        assert system.compared_at_start()["outcome"] == "AGREED"
        assert "reset to TRIM_HORIZON" in system.log.read_text()  # the old checkpoints meet the new streams
        system.write("two")
        system.wait_visible()
        system.write("three")  # not waited for: it may be anywhere between DynamoDB and the read model
        system.kill()

        system.start()
        system.wait_visible()
        # "three" may have been in DynamoDB only: then it went through the stream again at start.
        assert system.compared_at_start()["outcome"] in ("AGREED", "REPAIRED")
        system.write("four")
        system.wait_visible()
    finally:
        if system.process is not None and system.process.poll() is None:
            system.interrupt()
    assert "[runlocal] stopped" in system.log.read_text()
