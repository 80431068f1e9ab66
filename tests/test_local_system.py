"""The whole local system as a new user runs it: `manage.py runlocal` in a subprocess (moto
server, bridge, poller, notifier, web), then the lab's scripted demo over HTTP."""

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# What the test process itself runs with must not leak into the system under test.
TEST_ONLY = {
    "AWS_ENDPOINT_URL",
    "DJANGO_SETTINGS_MODULE",
    "CDC_LOCAL_POLLER",
    "EMAIL_BACKEND",
    "AIRTICKET_ENV",
    "MOTO_TEST_PORT",
    "DATABASE_URL",
}

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("local_system")]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def system_env(database_url: str, tmp_path: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in TEST_ONLY}
    env.update(
        PORT=str(free_port()),
        MOTO_PORT=str(free_port()),
        DATABASE_URL=database_url,
        EMAIL_FILE_PATH=str(tmp_path / "mail"),
        PYTHONUNBUFFERED="1",
    )
    return env


def wait_for_banner(process: subprocess.Popen, log: Path, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if "The air-ticket system is running." in log.read_text():
            return
        if process.poll() is not None:
            pytest.fail(f"runlocal exited with {process.returncode}:\n{log.read_text()[-3000:]}")
        time.sleep(0.5)
    pytest.fail(f"runlocal did not come up:\n{log.read_text()[-3000:]}")


def figures(output: str, phrase: str) -> list[int]:
    return [int(n) for n in re.findall(rf"{phrase} (\d+)", output)]


@pytest.fixture(params=["sqlite", "mariadb"])
def database_url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'local.sqlite3'}"
    return "mysql://root@127.0.0.1:3306/airticket_e2e"


def test_the_lab_demo_reproduces_its_figures_on_the_running_system(database_url, tmp_path):
    env = system_env(database_url, tmp_path)
    if database_url.startswith("mysql"):
        subprocess.run([sys.executable, "manage.py", "ensure_database"], env=env, cwd=ROOT, check=True)
        subprocess.run([sys.executable, "manage.py", "flush", "--noinput"], env=env, cwd=ROOT, check=False)
    log = tmp_path / "runlocal.log"
    with log.open("w") as sink:
        system = subprocess.Popen([sys.executable, "manage.py", "runlocal"], env=env, cwd=ROOT, stdout=sink, stderr=subprocess.STDOUT)
    try:
        wait_for_banner(system, log)
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
        system.send_signal(signal.SIGINT)
        try:
            system.wait(timeout=30)
        except subprocess.TimeoutExpired:
            system.kill()
            pytest.fail(f"runlocal did not stop on SIGINT:\n{log.read_text()[-3000:]}")
    assert system.returncode == 0, log.read_text()[-3000:]
    assert "[runlocal] stopped" in log.read_text()
