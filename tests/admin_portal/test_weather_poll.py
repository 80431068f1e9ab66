"""`poll_weather` against feeds served by a local HTTP server: conditional GET, timeouts,
failures isolated per source, linked ATOM entries, the status on the operations page, and the
query stage's scheduled event."""

import json
import threading
import time
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from io import StringIO
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.core.management import CommandError, call_command
from django.utils import timezone

from admin_portal.models import WeatherAlert, WeatherSource
from airticket.local import supervisor
from airticket.settings import env_weather_sources
from tests.admin_portal.factories import BookingFactory, local_today, make_flight
from tests.zappa_support import invoke, save_settings, stage_config

DATA = Path(__file__).resolve().parents[1] / "data" / "weather"
OPERATIONS = "/admin/admin_portal/shardcheckpoint/"


class FeedServer:
    """Serves `routes` (path -> dict(body, etag, status, delay)) and records every request."""

    def __init__(self):
        self.routes: dict[str, dict] = {}
        self.requests: list[tuple[str, dict]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 - the http.server API
                server.requests.append((self.path, dict(self.headers)))
                route = server.routes.get(self.path.split("?")[0])
                if route is None:
                    self.send_error(404)
                    return
                time.sleep(route.get("delay", 0))
                if route.get("status", 200) != 200:
                    self.send_error(route["status"])
                    return
                etag = route.get("etag")
                if etag and self.headers.get("If-None-Match") == etag:
                    self.send_response(304)
                    self.end_headers()
                    return
                body = route["body"]
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                if etag:
                    self.send_header("ETag", etag)
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def serve(self, path: str, body: bytes, **options) -> str:
        self.routes[path] = {"body": body, **options}
        return self.base + path

    def paths(self) -> list[str]:
        return [path for path, _headers in self.requests]


@pytest.fixture
def feeds():
    server = FeedServer()
    yield server
    server.httpd.shutdown()
    server.httpd.server_close()


def poll(*args: str) -> str:
    out = StringIO()
    call_command("poll_weather", *args, stdout=out)
    return out.getvalue()


def metar_now(report_body: str, minutes_ago: int = 10) -> bytes:
    """An aviationweather.gov JSON answer with one report observed `minutes_ago`."""
    observed = (timezone.now() - timedelta(minutes=minutes_ago)).replace(second=0, microsecond=0)
    raw = f"ZSPD {observed:%d%H%M}Z {report_body}"
    return json.dumps([{"icaoId": "ZSPD", "obsTime": int(observed.timestamp()), "rawOb": raw}]).encode()


@pytest.mark.django_db
def test_a_cap_feed_is_imported_and_then_asked_for_again_only_if_changed(feeds, settings):
    url = feeds.serve("/cap/canada.atom", (DATA / "cap" / "canada_signed.atom").read_bytes(), etag='"v1"')
    settings.WEATHER_SOURCES = [("cap", url)]

    first = poll()
    second = poll()

    assert WeatherAlert.objects.count() == 3
    assert "created 3" in first and "not modified" in second
    [(_, first_headers), (_, second_headers)] = feeds.requests
    assert "If-None-Match" not in first_headers and second_headers["If-None-Match"] == '"v1"'
    source = WeatherSource.objects.get()
    assert (source.alerts_created, source.last_status, source.etag) == (3, "not modified", '"v1"')
    assert source.last_success_at is not None and not source.last_error


@pytest.mark.django_db
def test_the_linked_entries_of_an_atom_index_are_fetched_once_each(feeds, settings):
    typhoon = feeds.serve("/cap/typhoon.xml", (DATA.parents[2] / "admin_portal" / "samples" / "cap_typhoon_shanghai.xml").read_bytes())
    beach = feeds.serve("/cap/beach.xml", (DATA / "cap" / "nws_beach_hazards_event_ending.xml").read_bytes())
    entries = "".join(
        f'<entry><id>urn:entry:{n}</id><updated>2026-11-26T08:00:00Z</updated><title>{n}</title><link href="{href}"/></entry>'
        for n, href in (("typhoon", typhoon), ("beach", beach))
    )
    index = f'<feed xmlns="http://www.w3.org/2005/Atom"><id>urn:feed</id><title>alerts</title>{entries}</feed>'
    url = feeds.serve("/cap/index.atom", index.encode())  # no validators: fetched whole every time
    settings.WEATHER_SOURCES = [("cap", url)]

    poll()
    poll()

    assert feeds.paths().count("/cap/index.atom") == 2
    assert feeds.paths().count("/cap/typhoon.xml") == 1 and feeds.paths().count("/cap/beach.xml") == 1
    assert all(headers["Accept"].startswith("application/cap+xml") for _path, headers in feeds.requests)
    assert set(WeatherAlert.objects.values_list("airport_id", flat=True)) == {"PVG", "SHA", None}  # None: San Francisco, the city
    assert WeatherSource.objects.get().alerts_created == 3


@pytest.mark.django_db
def test_a_failing_source_is_recorded_and_the_other_sources_still_poll(feeds, settings):
    broken = feeds.serve("/cap/broken.atom", b"", status=500)
    garbled = feeds.serve("/cap/garbled.xml", b"<feed><entry>")
    metar = feeds.serve("/metar.json", metar_now("09028G42KT 0600 +TSRA FG BKN010CB 24/23 Q0998"))
    settings.WEATHER_SOURCES = [("cap", broken), ("cap", garbled), ("metar", metar)]

    out = poll()

    statuses = {s.url: s for s in WeatherSource.objects.all()}
    assert statuses[broken].last_status == "failed" and "HTTP 500" in statuses[broken].last_error
    assert statuses[garbled].last_status == "failed" and statuses[garbled].last_error
    assert statuses[metar].last_status.startswith("created 3")
    assert set(WeatherAlert.objects.values_list("kind", flat=True)) == {"THUNDERSTORM", "LOW_VISIBILITY", "HIGH_WIND"}
    assert "HTTP 500" in out


@pytest.mark.django_db
def test_a_source_that_does_not_answer_in_time_is_given_up_on(feeds, settings):
    slow = feeds.serve("/slow.txt", b"ZSPD 010000Z 00000KT CAVOK 20/10 Q1010", delay=2)
    settings.WEATHER_SOURCES = [("metar", slow)]

    with pytest.raises(CommandError, match="every weather source failed"):
        poll("--timeout", "0.3")

    source = WeatherSource.objects.get()
    assert source.last_status == "failed" and "timed out" in source.last_error
    assert source.last_success_at is None


@pytest.mark.django_db
def test_a_metar_source_asks_for_the_airports_the_schedule_flies_to(feeds, settings):
    make_flight(day=local_today("PVG"), route=("PVG", "PEK"))
    make_flight(day=local_today("PVG") + timedelta(days=30), route=("CAN", "NRT"))  # too far ahead
    url = feeds.serve("/api/data/metar", metar_now("09010KT CAVOK 20/10 Q1010"))
    settings.WEATHER_SOURCES = [("metar", url + "?ids={airports}&format=json")]

    poll()

    [(path, _headers)] = feeds.requests
    assert path == "/api/data/metar?ids=ZBAA,ZSPD&format=json"


@pytest.mark.django_db
def test_a_metar_source_with_no_scheduled_airport_asks_nothing(feeds, settings):
    settings.WEATHER_SOURCES = [("metar", feeds.serve("/api/data/metar", b"") + "?ids={airports}")]
    poll()
    assert feeds.requests == []
    assert WeatherSource.objects.get().last_status == "no scheduled airports to ask for"


def test_poll_weather_without_sources_says_how_to_configure_them(settings):
    settings.WEATHER_SOURCES = []
    with pytest.raises(CommandError, match="WEATHER_SOURCES"):
        poll()


@pytest.mark.parametrize("value", ["metar", "rss=https://example.org/feed", "cap=ftp://example.org/feed", "cap=file:///etc/passwd"])
def test_a_bad_weather_sources_setting_stops_the_process(monkeypatch, value):
    monkeypatch.setenv("WEATHER_SOURCES", value)
    with pytest.raises(ImproperlyConfigured, match="WEATHER_SOURCES"):
        env_weather_sources("WEATHER_SOURCES")


def test_weather_sources_are_kind_equals_url_entries(monkeypatch):
    monkeypatch.setenv("WEATHER_SOURCES", "metar=https://a.example/m?ids={airports}&format=json  cap=https://b.example/alerts.atom")
    assert env_weather_sources("WEATHER_SOURCES") == [
        ("metar", "https://a.example/m?ids={airports}&format=json"),
        ("cap", "https://b.example/alerts.atom"),
    ]


def test_make_run_starts_the_weather_poller_only_when_sources_are_configured():
    without = [name for name, _args in supervisor.worker_commands({})]
    with_sources = dict(supervisor.worker_commands({"WEATHER_SOURCES": "cap=https://b.example/alerts.atom"}))

    assert "weather" not in without
    assert with_sources["weather"] == ["poll_weather", "--loop"]


@pytest.mark.django_db
def test_new_alerts_show_their_affected_passengers_on_the_operations_page_and_the_weather_list(feeds, settings, admin_client, aws_env):
    BookingFactory(flight=make_flight(day=local_today("PVG"), route=("PVG", "PEK")))
    BookingFactory(flight=make_flight(day=local_today("PVG"), route=("CAN", "PVG")))
    BookingFactory(flight=make_flight(day=local_today("PVG"), route=("CAN", "PVG")), status="CANCELLED")
    url = feeds.serve("/metar.json", metar_now("09028G42KT 9999 FEW030 24/20 Q1008"))
    settings.WEATHER_SOURCES = [("metar", url)]
    poll()

    page = admin_client.get(OPERATIONS).content.decode()
    weather_list = admin_client.get("/admin/admin_portal/weatheralert/").content.decode()

    sources = page.split('id="weather-sources"')[1].split("</table>")[0]
    new_alerts = page.split('id="weather-new-alerts"')[1].split("</table>")[0]
    assert url in sources and "created 1" in sources
    assert "HIGH_WIND" in new_alerts and ">2</a>" in new_alerts  # two ORDERED, the cancelled one not
    assert "2 passengers" in weather_list


@pytest.mark.django_db
def test_an_alert_that_affects_no_one_is_not_listed_as_new_on_the_operations_page(feeds, settings, admin_client, aws_env):
    settings.WEATHER_SOURCES = [("metar", feeds.serve("/metar.json", metar_now("09028G42KT 9999 FEW030 24/20 Q1008")))]
    poll()

    page = admin_client.get(OPERATIONS).content.decode()

    assert WeatherAlert.objects.count() == 1
    assert "No new alert affects a booked passenger." in page


def test_the_query_stage_polls_the_weather_feeds_on_a_schedule():
    [event] = stage_config("query")["events"]
    assert event == {"function": "admin_portal.weather.scheduled.poll", "expression": "rate(10 minutes)"}


@pytest.mark.django_db(transaction=True)
def test_the_query_stage_s_scheduled_event_runs_the_poll(feeds, aws_env, tmp_path):
    from django.db import connection

    db = connection.settings_dict
    database_url = f"mysql://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}"
    url = feeds.serve("/metar.json", metar_now("09028G42KT 9999 FEW030 24/20 Q1008"))
    save_settings("query", tmp_path)
    event = {
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "time": datetime.now(UTC).isoformat(),
        "resources": ["arn:aws:events:us-east-1:000000000000:rule/airticket-query-admin_portal.weather.scheduled.poll"],
        "detail": {},
    }

    [result] = invoke(tmp_path, [event], database_url=database_url, WEATHER_SOURCES=f"metar={url}")

    assert result["polled"] == 1 and result["sources"][url].startswith("created 1")
    assert WeatherAlert.objects.filter(airport_id="PVG", kind="HIGH_WIND").exists()
