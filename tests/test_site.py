"""Every address the startup banner and the admin print opens in a browser: the site root,
the two API roots, the API docs (served from the package, no CDN), and the query API's
browsable pages for a logged-in staff member."""

import pytest
from django.contrib.auth.models import User
from django.http import HttpRequest
from django.test import Client

from airticket.auth import STAFF, issue_token
from tests.conftest import client_with


@pytest.mark.django_db
@pytest.mark.parametrize("url", ["/", "/api/v1/", "/api/v1/query/", "/api/v1/docs", "/api/v1/redoc", "/api/v1/schema"])
def test_the_pages_the_banner_and_the_admin_link_to_answer_200_without_a_login(client, url):
    assert client.get(url).status_code == 200


@pytest.mark.django_db
def test_the_site_root_points_to_the_portal_the_apis_and_their_docs(client):
    page = client.get("/").content.decode()
    for target in ("/admin/", "/admin/admin_portal/flight/", "/api/v1/query/", "/api/v1/", "/api/v1/docs", "/api/v1/redoc", "/healthz"):
        assert f'href="{target}"' in page


@pytest.mark.django_db
@pytest.mark.parametrize("url, script", [("/api/v1/docs", "swagger-ui-bundle.js"), ("/api/v1/redoc", "redoc.standalone.js")])
def test_the_api_docs_load_their_scripts_from_this_site_not_a_cdn(client, url, script):
    page = client.get(url).content.decode()
    assert "/static/drf_spectacular_sidecar/" in page and script in page
    assert "cdn." not in page and "https://" not in page.split("<body")[0]
    assert client.get(page.split('src="')[1].split('"')[0]).status_code == 200


@pytest.mark.django_db
def test_the_api_roots_list_their_endpoints():
    query = Client().get("/api/v1/query/", HTTP_ACCEPT="application/json").json()
    assert query["endpoints"]["passengers"].endswith("/api/v1/query/passengers")
    command = Client().get("/api/v1/", HTTP_ACCEPT="application/json").json()
    assert command["endpoints"]["customers"].endswith("/api/v1/customers")


@pytest.mark.django_db
def test_a_staff_login_browses_the_query_api_while_tokens_still_get_json():
    User.objects.create_superuser("ops", "ops@example.com", "correct-horse-battery")
    browser = Client()
    browser.login(request=HttpRequest(), username="ops", password="correct-horse-battery")  # axes needs the request
    page = browser.get("/api/v1/query/customers", HTTP_ACCEPT="text/html")
    assert page.status_code == 200 and page["Content-Type"].startswith("text/html") and "Customer List Api" in page.content.decode()

    api = client_with(issue_token(role=STAFF)).get("/api/v1/query/customers")
    assert api.status_code == 200 and api["Content-Type"] == "application/json"
    assert Client().get("/api/v1/query/customers", HTTP_ACCEPT="text/html").status_code in (401, 403)
