"""The whole local system as a new user runs it: `manage.py runlocal` in a subprocess (moto
server, bridge, poller, notifier, web), then the lab's scripted demo over HTTP."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from airticket.local import supervisor

ROOT = Path(__file__).resolve().parent.parent

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("local_system")]


def figures(output: str, phrase: str) -> list[int]:
    return [int(n) for n in re.findall(rf"{phrase} (\d+)", output)]


@pytest.fixture(params=["sqlite", "mariadb"])
def database_url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'local.sqlite3'}"
    # Named after the suite's database, so two checkouts testing at once use two databases.
    return f"{os.environ['DATABASE_URL'].rstrip('/')}_e2e"


def test_the_lab_demo_reproduces_its_figures_on_the_running_system(database_url, tmp_path):
    # Its own DynamoDB state: the checkout's var/local belongs to the developer's `make run`
    # (and to its run lock), and the other parameter's run must not be restored into this one.
    env = supervisor.child_environment(
        DATABASE_URL=database_url, EMAIL_FILE_PATH=str(tmp_path / "mail"), LOCAL_STATE_DIR=str(tmp_path / "state")
    )
    if database_url.startswith("mysql"):
        # A clean start: the database may hold an earlier run's rows.
        subprocess.run([sys.executable, "manage.py", "ensure_database"], env=env, cwd=ROOT, check=True)
        subprocess.run([sys.executable, "manage.py", "flush", "--noinput"], env=env, cwd=ROOT, check=False)
    log = tmp_path / "runlocal.log"
    system = supervisor.spawn(env, log)
    try:
        supervisor.wait_running(system, log)
        api = f"http://127.0.0.1:{env['PORT']}"
        banner = log.read_text()
        # The banner's commands, as printed, name an interpreter that exists in this checkout.
        demo_line = next(line for line in banner.splitlines() if line.strip().startswith("Demo"))
        assert (ROOT / demo_line.split()[1]).exists() and "ingest --api" in demo_line, demo_line
        # Every page it points to (the first address of a line; the others are examples of
        # requests) answers 200, as a browser opens it (following the admin's login redirect).
        pages = [found.group() for line in banner.splitlines() if (found := re.search(rf"{api}/\S*", line))]
        assert len(pages) >= 6, banner
        assert {url: requests.get(url, timeout=10).status_code for url in pages} == dict.fromkeys(pages, 200)
        demo = subprocess.run(
            [sys.executable, "manage.py", "ingest", "--api", api, "--timeout", "180", "demo", "--keep"],
            env=env,
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=300,
        )
        output = demo.stdout + demo.stderr
        assert demo.returncode == 0, output
        # The lab's figures: 0 after truncate, 20 customers, 0 after the second truncate, 1 after the duplicate.
        assert figures(output, "Total customer number is") == [0, 20, 0, 1], output
        # 8 on MU5159, 4 after the cancellations; through Shanghai: MU5159 4, MU2324 4, CZ3243 2, MU5401 4.
        assert figures(output, r"Flight MU5159 on \S+: Customer number is") == [8, 4], output
        assert figures(output, r"City Shanghai on \S+: Customer number is") == [14], output
        before, after = figures(output, "DLQ depth before:")[0], figures(output, "DLQ depth after:")[0]
        assert after == before + 1, output
        # --keep: the demo ends by truncating, then a realistic day is seeded for the admin.
        assert figures(output, r"Flight MU5159 on \S+:") == [4], output
        weather = subprocess.run(
            [sys.executable, "manage.py", "demo_weather"], env=env, cwd=ROOT, capture_output=True, text=True, timeout=60, check=True
        ).stdout
        assert figures(weather, r"Typhoon approaching Shanghai \(EXTREME\), .*? UTC:") == [14], weather
    finally:
        code = supervisor.interrupt(system)
    assert code == 0, log.read_text()[-3000:]
    assert "[runlocal] stopped" in log.read_text()
