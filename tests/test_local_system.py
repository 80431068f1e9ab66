"""The whole local system as a new user runs it: `manage.py runlocal` in a subprocess (moto
server, bridge, poller, notifier, web), then the lab's scripted demo over HTTP."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from airticket import local

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
    env = local.child_environment(DATABASE_URL=database_url, EMAIL_FILE_PATH=str(tmp_path / "mail"))
    if database_url.startswith("mysql"):
        # A clean start: the database may hold an earlier run's rows.
        subprocess.run([sys.executable, "manage.py", "ensure_database"], env=env, cwd=ROOT, check=True)
        subprocess.run([sys.executable, "manage.py", "flush", "--noinput"], env=env, cwd=ROOT, check=False)
    log = tmp_path / "runlocal.log"
    system = local.spawn(env, log)
    try:
        local.wait_running(system, log)
        api = f"http://127.0.0.1:{env['PORT']}"
        demo = subprocess.run(
            [sys.executable, "manage.py", "ingest", "--api", api, "--timeout", "60", "demo"],
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
    finally:
        code = local.interrupt(system)
    assert code == 0, log.read_text()[-3000:]
    assert "[runlocal] stopped" in log.read_text()
