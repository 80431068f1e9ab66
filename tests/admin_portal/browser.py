"""Driving the staff portal in Debian's chromium (Playwright): a logged-in page at a given
width, screenshots under test-artifacts/screenshots/, layout checks and axe-core."""

import os
from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.auth.models import User

# Playwright's sync API runs an event loop in this thread; Django would refuse the ORM calls
# the test makes next to it.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
sync_api = pytest.importorskip("playwright.sync_api")

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
LOGIN = ("ops", "correct-horse-battery")


@pytest.fixture
def browser():
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian's chromium is not installed")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


def logged_in(browser, live_server, *, width: int, height: int = 900):
    """A page at `width` x `height`, logged in to the admin as a staff superuser."""
    if not User.objects.filter(username=LOGIN[0]).exists():
        User.objects.create_superuser(LOGIN[0], "ops@example.com", LOGIN[1])
    page = browser.new_page(viewport={"width": width, "height": height})
    page.set_default_timeout(20_000)
    page.goto(f"{live_server.url}/admin/")
    page.fill("#id_username", LOGIN[0])
    page.fill("#id_password", LOGIN[1])
    page.click("input[type=submit]")
    page.wait_for_selector("#site-name")
    return page


def snap(page, name: str) -> None:
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


def overflow(page) -> dict:
    """How far the page and the result list stick out to the right (0 when they fit)."""
    return page.evaluate(
        """() => {
            const results = document.querySelector('#changelist .results');
            return {
                page: document.documentElement.scrollWidth - window.innerWidth,
                list: results ? results.scrollWidth - results.clientWidth : 0,
            };
        }"""
    )


def outside_viewport(page, selectors: list[str]) -> list[str]:
    """The selectors whose first element is missing or not wholly inside the viewport's width."""
    width = page.evaluate("window.innerWidth")
    missing = []
    for selector in selectors:
        box = page.locator(selector).first.bounding_box()
        if box is None or box["x"] < 0 or box["x"] + box["width"] > width:
            missing.append(selector)
    return missing


def serious_accessibility_violations(page) -> list[str]:
    """axe-core's serious and critical violations on the page, one line each."""
    from axe_playwright_python.sync_playwright import Axe

    response = Axe().run(page).response
    return [
        f"{violation['id']} ({violation['impact']}): {violation['help']} at {[node['target'] for node in violation['nodes'][:3]]}"
        for violation in response["violations"]
        if violation["impact"] in ("serious", "critical")
    ]
