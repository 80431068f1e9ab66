"""The query stage's scheduled event (zappa_settings.json, `events`): poll the weather feeds.

Zappa calls `poll(event, context)`; a source's failure is recorded on its status row and
never raises, so one bad feed does not make Lambda retry the others."""

import logging

from django.conf import settings

log = logging.getLogger(__name__)


def poll(event=None, context=None) -> dict:
    from admin_portal import services  # Django is set up by Zappa's handler before this runs

    if not settings.WEATHER_SOURCES:
        return {"polled": 0}
    sources = services.weather_sources_poll()
    summary = {source.url: source.last_status for source in sources}
    log.info("weather poll: %s", summary)
    return {"polled": len(sources), "sources": summary}
