"""Fetch the configured weather feeds (settings.WEATHER_SOURCES) and import what changed:
`admin_portal.services.weather_sources_poll`. On AWS the query stage runs the same service on
a schedule (`admin_portal.weather.scheduled.poll`)."""

import logging
import signal
import threading

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import close_old_connections

from admin_portal import services

log = logging.getLogger(__name__)


class Command(BaseCommand):
    help = "Poll the weather feeds in WEATHER_SOURCES (conditional GET) and import new METAR and CAP alerts."

    def add_arguments(self, parser):
        parser.add_argument("--loop", action="store_true", help="poll every --interval seconds until SIGTERM/SIGINT")
        parser.add_argument("--interval", type=float, default=None, help="seconds between polls (default WEATHER_POLL_INTERVAL)")
        parser.add_argument("--timeout", type=float, default=None, help="seconds per HTTP request (default WEATHER_POLL_TIMEOUT)")

    def poll_once(self, timeout: float | None) -> list:
        sources = services.weather_sources_poll(timeout=timeout)
        for source in sources:
            line = f"{source.kind} {source.url}: {source.last_status}"
            if source.last_status == "failed" or (source.last_error_at and source.last_error_at == source.last_polled_at):
                line += f" ({source.last_error})"
            self.stdout.write(line)
        return sources

    def handle(self, *args, loop: bool, interval: float | None, timeout: float | None, **options):
        if not settings.WEATHER_SOURCES:
            raise CommandError("no weather sources: set WEATHER_SOURCES (see the README's weather section)")
        if not loop:
            sources = self.poll_once(timeout)
            if all(source.last_status == "failed" for source in sources):
                raise CommandError("every weather source failed")
            return
        stop = threading.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
        while not stop.is_set():
            close_old_connections()  # a lost database connection is reopened next round
            try:
                self.poll_once(timeout)
            except Exception:  # keep polling through a database outage; the log says what
                log.exception("weather poll failed; retrying")
            stop.wait(interval or settings.WEATHER_POLL_INTERVAL)
