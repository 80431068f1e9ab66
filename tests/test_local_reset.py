"""`make reset` starts the local system from nothing, on purpose, and never under a running one."""

import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from airticket.local import supervisor

ROOT = Path(__file__).resolve().parent.parent


def reset(env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "manage.py", "reset_local"], env=env, cwd=ROOT, capture_output=True, text=True, timeout=180)


@pytest.fixture
def env(tmp_path) -> dict:
    return supervisor.child_environment(DATABASE_URL=f"sqlite:///{tmp_path / 'local.sqlite3'}", LOCAL_STATE_DIR=str(tmp_path / "state"))


def test_reset_forgets_dynamodb_and_empties_the_read_database(env, tmp_path):
    subprocess.run([sys.executable, "manage.py", "migrate", "-v", "0"], env=env, cwd=ROOT, check=True)
    with sqlite3.connect(tmp_path / "local.sqlite3") as db:
        db.execute(
            "INSERT INTO admin_portal_customer (customer_id, full_name, mobile, email, version, deleted, projected_at)"
            " VALUES ('first1', 'First', '', '', 1, 0, '2026-01-01 00:00:00')"
        )
    saved = tmp_path / "state" / "moto"
    saved.mkdir(parents=True)
    (saved / "dynamodb.json").write_text('{"format": 1, "tables": []}')

    done = reset(env)

    assert done.returncode == 0, done.stdout + done.stderr
    assert not saved.exists()
    with sqlite3.connect(tmp_path / "local.sqlite3") as db:
        assert db.execute("SELECT COUNT(*) FROM admin_portal_customer").fetchone() == (0,)
    assert "the next `make run` starts from nothing" in done.stdout


def test_reset_is_refused_while_a_run_uses_the_state_directory(env, tmp_path):
    held = supervisor.RunLock(tmp_path / "state")
    held.acquire(wait_seconds=0, say=print)
    (tmp_path / "state" / "moto").mkdir()

    done = reset(env)

    assert done.returncode != 0
    assert "another run still uses" in done.stdout + done.stderr
    assert (tmp_path / "state" / "moto").exists()
