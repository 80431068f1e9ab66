"""The staff portal in a real browser (Debian's chromium through Playwright).

Each step keeps a screenshot under test-artifacts/screenshots/ for people to look at."""

from datetime import date

import pytest
from django.core import mail

from admin_portal.models import WeatherAlert
from tests.admin_portal.browser import browser, logged_in, snap  # noqa: F401 (browser is a fixture)
from tests.admin_portal.factories import BookingFactory, CustomerFactory, airport, make_flight

pytestmark = pytest.mark.browser
DAY = date(2026, 12, 10)


@pytest.fixture
def portal(live_server, browser):  # noqa: F811
    """A browser logged in to the admin as a staff superuser."""
    return logged_in(browser, live_server, width=1400)


def order_shown(row) -> str:
    return row.locator("td.field-order span").get_attribute("title")


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
    # Order ids are shown cut short, whole on hover.
    assert order_shown(rows.first) == mine.order_id and "Alice Liddell" in rows.first.inner_text()


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
    assert rows.count() == 1 and order_shown(rows.first) == transfer.order_id


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
