"""The staff portal for the disruption shift, in chromium at 1280 and 1440 px: every list shows
its key columns without a horizontal scroll, the counts on screen are the query API's, the
flight page's actions work end to end through the CDC, and axe-core finds nothing serious.
Screenshots go to test-artifacts/screenshots/."""

from datetime import timedelta

import pytest
from django.core import mail
from django.utils import timezone

from admin_portal import services
from admin_portal.models import Booking
from airticket.auth import STAFF, issue_token
from bookings import services as commands
from cdc_lambda import bridge, poller
from tests.admin_portal.browser import (  # noqa: F401 (browser is a fixture)
    browser,
    logged_in,
    outside_viewport,
    overflow,
    serious_accessibility_violations,
    snap,
)
from tests.admin_portal.factories import BookingFactory, CustomerFactory, WeatherAlertFactory, local_today, make_flight
from tests.conftest import client_with
from tests.factories import make_customer

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
WIDTHS = [1280, 1440]


def disruption_day():
    """A realistic shift: a flight today with live and cancelled bookings (long names, a
    transfer route), a delayed one, notices sent, an active and an expired weather alert."""
    day = local_today("SHA")
    flight = make_flight(number="MU5159", day=day, route=("SHA", "CTU", "LXA"), capacity=180)
    make_flight(number="CZ2801", day=day, route=("CAN", "CTU"), status="DELAYED")
    people = [CustomerFactory(full_name=f"Maximiliana Featherstonehaugh-Worthington {n}") for n in range(6)]
    for n, person in enumerate(people):
        BookingFactory(flight=flight, customer=person, status="CANCELLED" if n < 2 else "ORDERED")
    services.passengers_notify(
        bookings=Booking.objects.filter(flight=flight, status="ORDERED").order_by("order_id"),
        reason="message:gate",
        subject="Gate change for your flight MU5159: now boarding at gate B12 in terminal 2",
        message="Please go to gate B12.",
        sent_by="ops",
    )
    now = timezone.now()
    WeatherAlertFactory(city="Chengdu", headline="Dense fog over Chengdu Shuangliu and Tianfu: visibility below 200 m until noon")
    WeatherAlertFactory(city="Lhasa", valid_from=now - timedelta(days=2), valid_to=now - timedelta(days=1), headline="Snow, now over")
    return flight


# Each list, and the columns an ops person acts on, which must be on screen.
LISTS = {
    "bookings": (
        "/admin/admin_portal/booking/?q=MU5159",
        ["th.column-status_badge", "th.column-flight_status", "th.column-departure", "th.column-flight_link", "th.column-customer_link"],
    ),
    "flights": (
        "/admin/admin_portal/flight/",
        ["th.column-flight", "th.column-status_badge", "th.column-departure", "th.column-passengers"],
    ),
    "weather-alerts": (
        "/admin/admin_portal/weatheralert/",
        ["th.column-state", "th.column-place", "th.column-starts", "th.column-ends", "th.column-affected", "th.column-headline_short"],
    ),
    "notifications": (
        "/admin/admin_portal/notification/",
        ["th.column-sent", "th.column-status_badge", "th.column-recipient", "th.column-subject_short"],
    ),
    "customers": ("/admin/admin_portal/customer/", ["th.column-customer_id", "th.column-full_name", "th.column-email"]),
}


@pytest.mark.parametrize("width", WIDTHS)
def test_every_list_shows_its_key_columns_without_a_horizontal_scroll(live_server, browser, width):  # noqa: F811
    disruption_day()
    page = logged_in(browser, live_server, width=width)
    for name, (url, key_columns) in LISTS.items():
        page.goto(f"{live_server.url}{url}")
        page.wait_for_selector("#result_list")
        snap(page, f"list-{name}-{width}")
        assert overflow(page) == {"page": 0, "list": 0}, name
        every_header = [f"#result_list thead th:nth-child({n + 1})" for n in range(page.locator("#result_list thead th").count())]
        assert outside_viewport(page, key_columns + every_header) == [], name
        # One line per row: no cell wraps.
        heights = page.eval_on_selector_all("#result_list tbody tr", "rows => rows.map(r => r.getBoundingClientRect().height)")
        assert heights and max(heights) < 48, (name, heights)


def test_the_flight_list_opens_on_today_and_alerts_say_whether_they_are_expired(live_server, browser):  # noqa: F811
    flight = disruption_day()
    make_flight(number="MU1001", day=flight.flight_date - timedelta(days=3))
    page = logged_in(browser, live_server, width=1280)

    page.goto(f"{live_server.url}/admin/admin_portal/flight/")
    first = page.locator("#result_list tbody tr").first.inner_text()
    assert "MU1001" not in page.inner_text("#result_list") and f"{flight.flight_date:%d %b}" in first

    page.goto(f"{live_server.url}/admin/admin_portal/weatheralert/")
    states = {
        row.locator(".field-place").inner_text(): row.locator("td.field-state").inner_text()
        for row in page.locator("#result_list tbody tr").all()
    }
    assert states == {"Chengdu": "ACTIVE", "Lhasa": "EXPIRED"}
    # Times carry their zone: local at the place, UTC on hover.
    starts = page.locator("td.field-starts time").first
    assert starts.inner_text().endswith("CST") and starts.get_attribute("title").endswith("UTC")


@pytest.mark.parametrize("width", WIDTHS)
def test_the_counts_on_screen_are_the_query_apis(live_server, browser, width):  # noqa: F811
    flight = disruption_day()
    api = client_with(issue_token(role=STAFF))
    query = {"flight_number": "MU5159", "flight_date": flight.flight_date.isoformat()}
    expected = {
        status: api.get("/api/v1/query/passengers", {**query, "status": status}).json()["count"] for status in ("ORDERED", "CANCELLED")
    }
    affected = api.get("/api/v1/query/passengers", {"weather": "active"}).json()["count"]
    page = logged_in(browser, live_server, width=width)

    page.goto(f"{live_server.url}/admin/admin_portal/flight/")
    page.click("#result_list td.field-flight a >> text=MU5159")
    page.wait_for_selector("#passenger-counts")
    snap(page, f"flight-page-{width}")
    assert {"ORDERED": int(page.inner_text("#count-ordered")), "CANCELLED": int(page.inner_text("#count-cancelled"))} == expected
    assert int(page.inner_text("#count-notified")) == expected["ORDERED"] == 4
    assert page.locator("#passengers tbody tr").count() == sum(expected.values())
    assert outside_viewport(page, ["#passengers th:last-child", "#flight-actions a:last-child"]) == []
    assert overflow(page)["page"] == 0
    assert "version" not in page.inner_text("#content").lower()  # no internals

    page.goto(f"{live_server.url}/admin/admin_portal/weatheralert/?validity=active")
    assert page.inner_text("td.field-affected") == f"{affected} passengers"


def sync() -> None:
    """Everything the command side wrote so far, through the bridge and the CDC poller, then
    the notifier's pass over the flight events (what `make run`'s processes do)."""
    bridge.run(once=True)
    poller.run(once=True, backoff_base=0)
    services.flight_events_process()


def test_the_flight_pages_cancel_delay_and_notify_work_end_to_end_through_the_cdc(live_server, browser, aws_env):  # noqa: F811
    day = (local_today("SHA") + timedelta(days=1)).isoformat()
    commands.flight_create(
        flight_number="MU5159",
        flight_date=day,
        origin="SHA",
        transfers=[],
        destination="PEK",
        departure_time="08:00",
        arrival_time="10:20",
        capacity=180,
    )
    for name in ("alice", "bob", "carol"):
        make_customer(name)
        commands.order_place(customer_id=name, flight_number="MU5159", flight_date=day)
    sync()
    page = logged_in(browser, live_server, width=1280)
    flight_page = f"{live_server.url}/admin/admin_portal/flight/MU5159_23{day}/change/"

    # Delay: the form shows the current times and their zone, and says whom it reaches.
    page.goto(flight_page)
    page.click("#flight-actions >> text=Delay")
    assert "3 passenger(s) holding a booking" in page.inner_text("#reach")
    assert page.input_value("#id_departure_time") == "08:00" and "Asia/Shanghai" in page.inner_text("#content-main form")
    page.fill("#id_departure_time", "09:30")
    page.fill("#id_arrival_time", "11:50")
    page.fill("#id_reason", "late inbound aircraft")
    snap(page, "flight-delay-form")
    page.click("input[type=submit]")
    page.wait_for_selector(".messagelist .success")
    sync()
    page.goto(flight_page)
    assert page.inner_text("#flight-status") == "DELAYED"
    assert "09:30" in page.inner_text("#schedule-now") and "08:00" in page.inner_text("#schedule-booked")
    assert "departure 08:00 → 09:30" in page.inner_text("#events")
    assert "late inbound aircraft" in page.inner_text("#staff-actions")
    assert sorted(m.to[0] for m in mail.outbox) == ["alice@example.com", "bob@example.com", "carol@example.com"]

    # Notify: says how many it reaches, sends once each.
    page.click("#flight-actions >> text=Notify passengers")
    assert "3 passenger(s)" in page.inner_text("#reach")
    page.fill("#id_subject", "Lounge voucher")
    page.fill("#id_message", "Enjoy a meal on us while you wait.")
    page.click("input[type=submit]")
    page.wait_for_selector(".messagelist .success")
    assert "Sent 3, skipped 0" in page.inner_text(".messagelist")

    # Cancel: says how many are told, then the cancellation travels through the CDC.
    page.click("#flight-actions >> text=Cancel flight")
    assert "3 passenger(s) holding a booking are told by email that the flight is cancelled" in page.inner_text("#reach")
    snap(page, "flight-cancel-confirm")
    page.click("input[type=submit]")
    page.wait_for_selector(".messagelist .success")
    sync()
    page.goto(flight_page)
    snap(page, "flight-page-after-cancel")
    assert page.inner_text("#flight-status") == "CANCELLED"
    assert page.locator("#flight-actions >> text=Cancel flight").count() == 0
    notices = page.inner_text("#notices")
    assert "Flight MU5159 on " in notices and "is cancelled" in notices and "Lounge voucher" in notices
    assert len(mail.outbox) == 9  # 3 delay notices, 3 messages, 3 cancellations


def test_no_page_of_the_portal_has_a_serious_accessibility_violation(live_server, browser):  # noqa: F811
    flight = disruption_day()
    anonymous = browser.new_page(viewport={"width": 1280, "height": 900})
    anonymous.goto(f"{live_server.url}/admin/login/")
    found = {"login": serious_accessibility_violations(anonymous)}
    page = logged_in(browser, live_server, width=1280)
    flight_page = f"/admin/admin_portal/flight/{flight.pk.replace('#', '_23')}/change/"
    pages = [
        "/",
        "/admin/",
        *(url for url, _ in LISTS.values()),
        flight_page,
        flight_page.replace("/change/", "/delay/"),
        flight_page.replace("/change/", "/cancel/"),
        flight_page.replace("/change/", "/notify/"),
        "/admin/admin_portal/weatheralert/add/",
    ]
    for url in pages:
        page.goto(f"{live_server.url}{url}")
        found[url] = serious_accessibility_violations(page)
    problems = {url: problems for url, problems in found.items() if problems}
    assert problems == {}, "\n".join(f"{url}: {line}" for url, lines in problems.items() for line in lines)
