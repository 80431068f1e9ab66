"""The moved clock of `make test`'s second pass really is moved, here and in child processes."""

import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import pytest

CLOCK = os.environ.get("AIRTICKET_CLOCK")
pytestmark = pytest.mark.skipif(not CLOCK, reason="only in the moved-clock pass (AIRTICKET_CLOCK)")


def moved_to() -> datetime:
    return datetime.fromisoformat(CLOCK.replace("Z", "+00:00"))


def child_now() -> datetime:
    code = "from datetime import UTC, datetime; print(datetime.now(UTC).isoformat())"
    return datetime.fromisoformat(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip())


def test_the_wall_clock_runs_on_from_the_moved_instant():
    # The pass started at the moved instant and runs for minutes, never an hour.
    assert moved_to() <= datetime.now(UTC) < moved_to() + timedelta(hours=1)


def test_a_child_process_reads_the_same_moved_clock_without_starting_it_again():
    parent = datetime.now(UTC)
    assert parent <= child_now() < parent + timedelta(minutes=1)
