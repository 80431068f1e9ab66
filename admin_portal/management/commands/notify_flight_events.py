"""Notify passengers of cancelled/delayed flights: `admin_portal.services.flight_events_process`."""

import logging
import signal
import time

from django.core.management.base import BaseCommand, CommandError
from django.db import close_old_connections

from admin_portal.services import flight_events_process

log = logging.getLogger(__name__)


class Command(BaseCommand):
    help = "Notify the passengers of pending flight events (cancellations, delays), once each."

    def add_arguments(self, parser):
        parser.add_argument("--loop", action="store_true", help="keep polling until SIGTERM/SIGINT")
        parser.add_argument("--interval", type=float, default=1.0, help="seconds between polls when idle (default 1)")
        parser.add_argument("--limit", type=int, default=100, help="events per query (default 100)")
        parser.add_argument(
            "--worker",
            default="1/1",
            help="I/N: this is notifier I of N running side by side; each starts its passes at its own share of the events (default 1/1)",
        )

    def handle(self, *args, loop: bool, interval: float, limit: int, worker: str, **options):
        index, _, count = worker.partition("/")
        if not (index.isdigit() and count.isdigit() and 1 <= int(index) <= int(count)):
            raise CommandError(f"--worker must be I/N with 1 <= I <= N, not {worker!r}")
        share = {"limit": limit, "worker": int(index) - 1, "workers": int(count)}
        if not loop:
            self.stdout.write(f"processed {flight_events_process(**share)} flight events")
            return
        stopping = []
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stopping.append(True))
        while not stopping:
            # A lost database connection (MySQL restart) is dropped and reopened next round.
            close_old_connections()
            try:
                flight_events_process(**share)  # one pass over every pending event
            except Exception:  # keep the loop alive through transient failures; the log says what
                log.exception("flight event processing failed; retrying")
            time.sleep(interval)
