"""The doors in a real browser (Debian's chromium): the admin, the query API's pages and the API
docs render under the Content-Security-Policy with no violation, the operations page's purge
still asks first, and a locked-out login shows the lockout page."""

import json

import pytest
from django.conf import settings

from airticket import aws
from tests.admin_portal.browser import LOGIN, browser, logged_in, snap  # noqa: F401 (browser is a fixture)

pytestmark = pytest.mark.browser
# Every violation the page reports, kept where the test can read it (an init script runs
# before the page's own and is not subject to its policy).
# ReDoc's bundle shows its vendor's logo from its CDN: the policy blocks that image (nothing is
# loaded from another origin), and that one violation is expected.
REDOC_LOGO = "img-src https://cdn.redoc.ly/redoc/logo-mini.svg"
WATCH = "window.__csp = []; document.addEventListener('securitypolicyviolation', e => window.__csp.push(`${e.violatedDirective} ${e.blockedURI}`));"


def visit(page, url: str, ready: str) -> dict:
    """Open `url`, wait for `ready`, and return the response headers."""
    response = page.goto(url)
    page.wait_for_selector(ready)
    return response.headers


def test_the_admin_the_query_pages_and_the_api_docs_render_under_the_policy_with_no_violation(live_server, browser, aws_env):  # noqa: F811
    page = logged_in(browser, live_server, width=1400)
    page.add_init_script(WATCH)
    pages = [
        ("/admin/", "#site-name"),
        ("/admin/admin_portal/booking/", "#changelist"),
        ("/admin/admin_portal/shardcheckpoint/", "#dead-letters"),
        ("/admin/axes/accessattempt/", "#changelist"),
        ("/api/v1/query/customers", ".response-info"),
        # Swagger UI and ReDoc: their scripts ran if they drew the API's title from the schema.
        ("/api/v1/docs", f".swagger-ui .info .title:has-text('{settings.SPECTACULAR_SETTINGS['TITLE']}')"),
        ("/api/v1/redoc", f"h1:has-text('{settings.SPECTACULAR_SETTINGS['TITLE']}')"),
    ]
    for url, ready in pages:
        headers = visit(page, f"{live_server.url}{url}", ready)
        policy = headers["content-security-policy"]
        assert "script-src 'self'" in policy and "unsafe-inline" not in policy.split("script-src")[1].split(";")[0], url
        page.wait_for_timeout(300)  # a late script (Swagger's init) would report here
        assert [v for v in page.evaluate("window.__csp") if v != REDOC_LOGO] == [], url


def test_the_purge_button_still_asks_before_it_purges(live_server, browser, aws_env):  # noqa: F811
    aws.sqs().send_message(QueueUrl=aws.dlq_url(), MessageBody=json.dumps({"reason": "poison", "error": "bad record"}))
    page = logged_in(browser, live_server, width=1400)
    asked = []

    def dismiss(dialog):
        asked.append(dialog.message)
        dialog.dismiss()

    page.on("dialog", dismiss)
    visit(page, f"{live_server.url}/admin/admin_portal/shardcheckpoint/", "#dead-letters")
    page.click("button[value=purge]")
    page.wait_for_timeout(300)
    assert asked == ["Purge every message in the dead-letter queue?"]
    assert page.inner_text("#dlq-depth") == "1"  # dismissed: nothing was posted


def test_a_locked_out_login_shows_the_lockout_page(live_server, browser, settings):  # noqa: F811
    logged_in(browser, live_server, width=1000).close()  # creates the staff user
    page = browser.new_page()
    for attempt in range(settings.AXES_FAILURE_LIMIT + 1):
        page.goto(f"{live_server.url}/admin/login/?next=/admin/")
        page.fill("#id_username", LOGIN[0])
        page.fill("#id_password", LOGIN[1] if attempt == settings.AXES_FAILURE_LIMIT else "wrong")
        page.click("input[type=submit]")
        if attempt < settings.AXES_FAILURE_LIMIT - 1:
            page.wait_for_selector(".errornote")
    page.wait_for_selector(".axes-lockout")
    snap(page, "doors-login-locked")
    assert page.inner_text("h1") == "Login locked"
    assert page.url.startswith(f"{live_server.url}/admin/login/")
