"""The staff portal in a real browser (Debian's chromium through Playwright).

Each step keeps a screenshot under test-artifacts/screenshots/ for people to look at."""

import os
from datetime import date
from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.auth.models import User
from django.core import mail

from admin_portal.models import WeatherAlert
from tests.admin_portal.factories import BookingFactory, CustomerFactory, airport, make_flight

# Playwright's sync API runs an event loop in this thread; Django would refuse the ORM calls
# the test makes next to it.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
sync_api = pytest.importorskip("playwright.sync_api")

pytestmark = pytest.mark.browser
SCREENSHOTS = Path(settings.BASE_DIR) / "test-artifacts" / "screenshots"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
DAY = date(2026, 12, 10)


@pytest.fixture
def browser_page():
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian's chromium is not installed")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        page.set_default_timeout(20_000)
        yield page
        browser.close()


@pytest.fixture
def portal(live_server, browser_page):
    """A browser logged in to the admin as a staff superuser."""
    User.objects.create_superuser("ops", "ops@example.com", "correct-horse-battery")
    page = browser_page
    page.goto(f"{live_server.url}/admin/")
    page.fill("#id_username", "ops")
    page.fill("#id_password", "correct-horse-battery")
    page.click("input[type=submit]")
    page.wait_for_selector("#site-name")
    return page


def snap(page, name: str) -> None:
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


def filter_form(page, title: str):
    box = page.locator(f"details[data-filter-title='{title}']")
    if box.get_attribute("open") is None:
        box.locator("summary").click()
    return box


def test_staff_log_in_and_find_the_passengers_of_a_flight(live_server, portal):
    page = portal
    snap(page, "01-admin-index")
    mine = BookingFactory(flight=make_flight(number="MU5159", day=DAY), customer=CustomerFactory(full_name="Alice Liddell"))
    BookingFactory(flight=make_flight(number="MU5160", day=DAY))

    page.goto(f"{live_server.url}/admin/admin_portal/booking/")
    box = filter_form(page, "passengers of a flight")
    box.locator("input[name=flight_number]").fill("MU5159")
    box.locator("input[name=flight_date]").fill("2026-12-10")
    box.locator("input[type=submit]").click()
    page.wait_for_url("**flight_number=MU5159**")
    snap(page, "02-passengers-of-a-flight")

    rows = page.locator("#result_list tbody tr")
    assert rows.count() == 1
    assert mine.order_id in rows.first.inner_text() and "Alice Liddell" in rows.first.inner_text()


def test_staff_open_the_city_view_and_see_transfer_passengers(live_server, portal):
    page = portal
    transfer = BookingFactory(flight=make_flight(day=DAY, route=("CAN", "PVG", "NRT")))
    BookingFactory(flight=make_flight(day=DAY, route=("CAN", "PEK")))

    page.goto(f"{live_server.url}/admin/admin_portal/booking/")
    box = filter_form(page, "bookings through a city (incl. transfers)")
    box.locator("input[name=city]").fill("Shanghai")
    box.locator("input[name=city_from]").fill("2026-12-10")
    box.locator("input[name=city_to]").fill("2026-12-16")
    box.locator("input[type=submit]").click()
    page.wait_for_url("**city=Shanghai**")
    snap(page, "03-bookings-through-a-city")

    rows = page.locator("#result_list tbody tr")
    assert rows.count() == 1 and transfer.order_id in rows.first.inner_text()


def test_staff_create_a_weather_alert_and_notify_the_affected_passengers(live_server, portal):
    page = portal
    airport("PVG")
    BookingFactory.create_batch(2, flight=make_flight(day=DAY, route=("PVG", "PEK")))

    page.goto(f"{live_server.url}/admin/admin_portal/weatheralert/add/")
    page.fill("#id_airport", "PVG")
    page.select_option("#id_kind", "TYPHOON")
    page.select_option("#id_severity", "EXTREME")
    page.fill("#id_valid_from_0", "2026-12-10")
    page.fill("#id_valid_from_1", "00:00:00")
    page.fill("#id_valid_to_0", "2026-12-11")
    page.fill("#id_valid_to_1", "00:00:00")
    page.fill("#id_headline", "Typhoon In-fa approaching Shanghai")
    snap(page, "04-weather-alert-form")
    page.click("input[name=_save]")
    page.wait_for_selector(".messagelist .success")
    snap(page, "05-weather-alerts")
    assert WeatherAlert.objects.get().city == "Shanghai"

    page.click("#action-toggle")
    page.select_option("select[name=action]", "notify_affected")
    page.click("button[name=index]")
    page.wait_for_selector("input[name=apply]")
    snap(page, "06-notify-affected-form")
    page.click("input[name=apply]")
    page.wait_for_selector(".messagelist .success")
    snap(page, "07-notify-affected-done")

    assert "sent 2, skipped 0" in page.inner_text(".messagelist")
    assert len(mail.outbox) == 2


def test_staff_notify_selected_passengers_from_the_booking_list(live_server, portal):
    page = portal
    BookingFactory.create_batch(3, flight=make_flight(number="MU5159", day=DAY))

    page.goto(f"{live_server.url}/admin/admin_portal/booking/?flight_number=MU5159&flight_date=2026-12-10")
    page.click("#action-toggle")
    page.select_option("select[name=action]", "notify_passengers")
    page.click("button[name=index]")
    page.fill("#id_subject", "Gate change")
    page.fill("#id_message", "MU5159 now boards at gate B12.")
    snap(page, "08-notify-passengers-form")
    page.click("input[name=apply]")
    page.wait_for_selector(".messagelist .success")
    snap(page, "09-notify-passengers-done")

    assert "Sent 3, skipped 0" in page.inner_text(".messagelist")


def test_staff_open_the_operations_page(live_server, portal, aws_env):
    page = portal
    page.goto(f"{live_server.url}/admin/admin_portal/shardcheckpoint/")
    page.wait_for_selector("#dead-letters")
    snap(page, "10-operations")
    assert page.inner_text("#dlq-depth") == "0"
    assert "CDC checkpoints" in page.inner_text("#content-main")
