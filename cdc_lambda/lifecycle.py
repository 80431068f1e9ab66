"""What the long-running local consumers share: a stop flag raised by SIGINT/SIGTERM, and
exponential backoff that wakes up early when asked to stop."""

import signal
import threading

BACKOFF_CAP_SECONDS = 30.0


def stop_on_signals(stop: threading.Event | None = None) -> threading.Event:
    """The consumers check the flag between batches, so a batch in flight finishes (or is left
    unacknowledged) and the process exits cleanly instead of dying mid-write."""
    stop = stop or threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    return stop


def backoff_seconds(*, attempt: int, base: float) -> float:
    return min(BACKOFF_CAP_SECONDS, base * 2**attempt)


def pause(*, stop: threading.Event, seconds: float) -> bool:
    """Sleep unless stopped; True when the caller should stop."""
    return stop.wait(seconds) if seconds > 0 else stop.is_set()
