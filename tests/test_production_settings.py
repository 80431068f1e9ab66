"""Production settings, loaded as a Lambda stage loads them (the environment of zappa_settings.json,
AIRTICKET_ENV=production) in a fresh interpreter: `check --deploy` is clean, plain HTTP is
redirected, and HTTPS answers carry HSTS, the Content-Security-Policy and secure cookies."""

import json
import subprocess
import sys

import pytest

from tests.zappa_support import HOST, PROJECT, production_env

# `check --deploy` wants at least 50 characters, 5 of them different (security.W009).
PRODUCTION_SECRET = "a-production-secret-key-of-well-over-fifty-characters-Zq8#xv"

REQUESTS = f"""
import json, django
django.setup()
from django.test import Client
client = Client(HTTP_HOST="{HOST}")
plain = client.get("/admin/login/")
login = client.get("/admin/login/", HTTP_X_FORWARDED_PROTO="https")
print(json.dumps({{
    "plain": [plain.status_code, plain.get("Location")],
    "https": login.status_code,
    "hsts": login.get("Strict-Transport-Security"),
    "csp": login.get("Content-Security-Policy"),
    "csrf_cookie_secure": login.cookies["csrftoken"]["secure"],
}}))
"""


def production(stage: str, tmp_path, *args: str) -> subprocess.CompletedProcess:
    env = production_env(stage, SECRET_KEY=PRODUCTION_SECRET, DATABASE_URL=f"sqlite:///{tmp_path / 'unused.sqlite3'}")
    return subprocess.run([sys.executable, *args], cwd=PROJECT, env=env, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("stage", ["command", "query"])
def test_check_deploy_is_clean_with_the_production_settings_of_each_http_stage(stage, tmp_path):
    result = production(stage, tmp_path, "manage.py", "check", "--deploy", "--fail-level", "WARNING")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues (0 silenced)." in result.stdout


def test_production_redirects_plain_http_and_sends_hsts_a_policy_and_secure_cookies_over_https(tmp_path):
    result = production("query", tmp_path, "-c", REQUESTS)
    assert result.returncode == 0, result.stderr
    seen = json.loads(result.stdout.strip().splitlines()[-1])
    assert seen["plain"] == [301, f"https://{HOST}/admin/login/"]
    assert seen["https"] == 200
    assert seen["hsts"] == "max-age=31536000; includeSubDomains; preload"
    assert "default-src 'self'" in seen["csp"] and "script-src 'self';" in seen["csp"] and "frame-ancestors 'none'" in seen["csp"]
    assert seen["csrf_cookie_secure"] is True
