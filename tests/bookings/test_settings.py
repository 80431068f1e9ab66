"""The settings module, loaded in a fresh interpreter with a given environment."""

import os
import subprocess
import sys

import pytest
from django.conf import settings

PROJECT = settings.BASE_DIR
GOOD_SECRET = "a-real-production-secret-with-more-than-32-characters"
LOAD = "import django; from django.conf import settings; settings.SECRET_KEY; "


def load_settings(*, show: str = "print('DEBUG', settings.DEBUG)", **env) -> subprocess.CompletedProcess:
    clean = {"PATH": os.environ["PATH"], "DJANGO_SETTINGS_MODULE": "airticket.settings", **env}
    return subprocess.run([sys.executable, "-c", LOAD + show], cwd=PROJECT, env=clean, capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize(
    "env,message",
    [
        ({"AIRTICKET_ENV": "production"}, "SECRET_KEY must be set in production"),
        ({"AIRTICKET_ENV": "production", "SECRET_KEY": settings.DEV_SECRET_KEY}, "SECRET_KEY must be set in production"),
        ({"AIRTICKET_ENV": "production", "SECRET_KEY": GOOD_SECRET, "DEBUG": "true"}, "DEBUG must be off in production"),
        ({"AIRTICKET_ENV": "staging"}, "AIRTICKET_ENV='staging': use local, test or production"),
        ({"DEBUG": "maybe"}, "DEBUG='maybe' is not a boolean"),
        ({"SECRET_KEY": "short"}, "SECRET_KEY must be at least 32 characters"),
        ({"TOKEN_SECRET": "short"}, "TOKEN_SECRET must be at least 32 characters"),
        (
            {"AIRTICKET_ENV": "production", "SECRET_KEY": GOOD_SECRET, "TOKEN_SECRET": settings.DEV_SECRET_KEY},
            "TOKEN_SECRET must not be the development secret in production",
        ),
        ({"TOKEN_TTL_SECONDS": "a week"}, "TOKEN_TTL_SECONDS='a week' is not an integer"),
        ({"TOKEN_TTL_SECONDS": "10"}, "TOKEN_TTL_SECONDS=10 must be at least 60"),
        ({"KINESIS_SHARDS": "0"}, "KINESIS_SHARDS=0 must be at least 1"),
        ({"CDC_PARALLELIZATION_FACTOR": "0"}, "CDC_PARALLELIZATION_FACTOR=0 must be at least 1"),
        ({"CDC_PARALLELIZATION_FACTOR": "11"}, "CDC_PARALLELIZATION_FACTOR=11 must be at most 10"),
        ({"CDC_PARALLELIZATION_FACTOR": "three"}, "CDC_PARALLELIZATION_FACTOR='three' is not an integer"),
        ({"CDC_BATCH_SIZE": "20000"}, "CDC_BATCH_SIZE=20000 must be at most 10000"),
        ({"DYNAMODB_TABLE": "bookings; drop"}, "DYNAMODB_TABLE='bookings; drop' is not a valid AWS resource name"),
        ({"DATABASE_URL": "nonsense://x"}, "DATABASE_URL is not a database URL"),
        ({"ADMIN_LOGIN_FAILURE_LIMIT": "0"}, "ADMIN_LOGIN_FAILURE_LIMIT=0 must be at least 1"),
        ({"ADMIN_LOGIN_FAILURE_LIMIT": "five"}, "ADMIN_LOGIN_FAILURE_LIMIT='five' is not an integer"),
        ({"ADMIN_LOGIN_COOLOFF_MINUTES": "0"}, "ADMIN_LOGIN_COOLOFF_MINUTES=0 must be at least 1"),
        ({"COMMAND_THROTTLE_CUSTOMER": "60/fortnight"}, "COMMAND_THROTTLE_CUSTOMER='60/fortnight' is not a rate"),
        ({"COMMAND_THROTTLE_STAFF": "0/minute"}, "COMMAND_THROTTLE_STAFF='0/minute' is not a rate"),
        ({"COMMAND_THROTTLE_ADDRESS": "lots"}, "COMMAND_THROTTLE_ADDRESS='lots' is not a rate"),
        ({"API_THROTTLE_RATE": "50", "API_THROTTLE_BURST": "10"}, "API_THROTTLE_BURST=10 must be at least API_THROTTLE_RATE=50"),
        ({"API_THROTTLE_RATE": "0"}, "API_THROTTLE_RATE=0 must be at least 1"),
    ],
    ids=lambda value: value if isinstance(value, str) else ",".join(f"{k}={v[:12]}" for k, v in value.items()),
)
def test_the_settings_refuse_to_load_with_a_bad_environment(env, message):
    result = load_settings(**env)
    assert result.returncode != 0
    assert f"django.core.exceptions.ImproperlyConfigured: {message}" in result.stderr


def test_production_loads_with_a_real_secret_and_debug_off_by_default():
    result = load_settings(AIRTICKET_ENV="production", SECRET_KEY=GOOD_SECRET)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "DEBUG False"


def test_the_local_defaults_load_with_no_environment_at_all():
    result = load_settings()
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "DEBUG True"


def test_production_throttles_the_command_api_and_locks_admin_logins_by_default():
    shown = "print(settings.COMMAND_THROTTLE_RATES, settings.AXES_FAILURE_LIMIT, settings.AXES_COOLOFF_TIME)"
    result = load_settings(show=shown, AIRTICKET_ENV="production", SECRET_KEY=GOOD_SECRET)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "{'customer': '60/minute', 'staff': '600/minute', 'address': '1200/minute'} 5 0:15:00"


def test_the_throttle_rates_and_the_login_limit_come_from_the_environment():
    shown = "print(settings.COMMAND_THROTTLE_RATES, settings.AXES_FAILURE_LIMIT)"
    result = load_settings(show=shown, COMMAND_THROTTLE_CUSTOMER="10/second", COMMAND_THROTTLE_ADDRESS="off", ADMIN_LOGIN_FAILURE_LIMIT="9")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "{'customer': '10/second', 'staff': None, 'address': None} 9"
