"""The one lock pattern the local system uses twice (the run lock, moto's state directory)."""

import fcntl
import time
from collections.abc import Callable
from typing import IO


def hold_exclusively(file: IO, *, wait_seconds: float, refused: str, on_wait: Callable[[], None] | None = None) -> None:
    """Take an exclusive lock on `file`, waiting up to `wait_seconds` for its holder (typically a
    previous run that is still stopping, or saving its snapshot); then `SystemExit(refused)`.
    `on_wait` is called once, when the wait begins. The lock lasts as long as the file is open."""
    deadline = time.monotonic() + wait_seconds
    told = False
    while True:
        try:
            fcntl.flock(file, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if time.monotonic() > deadline:
                raise SystemExit(refused) from None
            if on_wait is not None and not told:
                on_wait()
                told = True
            time.sleep(0.2)
