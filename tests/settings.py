"""Test settings: the environment the suite runs in, then the one real settings module.

AWS goes to an in-process moto server on a free loopback port (started by the
`moto_server` fixture); the database is MariaDB unless DATABASE_URL says otherwise.
"""

import os

from airticket.local.supervisor import free_port  # plain Python: importing it loads no Django settings

if os.environ.get("PYTEST_XDIST_WORKER"):
    # Each xdist worker runs its own moto server; the port the controller chose is inherited.
    os.environ["MOTO_TEST_PORT"] = str(free_port())
os.environ.setdefault("MOTO_TEST_PORT", str(free_port()))
os.environ["AWS_ENDPOINT_URL"] = f"http://127.0.0.1:{os.environ['MOTO_TEST_PORT']}"
os.environ.update(
    {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AIRTICKET_ENV": "test",
        "CDC_LOCAL_POLLER": "false",
        "EMAIL_BACKEND": "django.core.mail.backends.locmem.EmailBackend",
        # No stream runs beside most reconciles here; a test that has one sets its own.
        "RECONCILE_SETTLE_SECONDS": "0",
    }
)
os.environ.setdefault("DATABASE_URL", "mysql://root@127.0.0.1:3306/airticket")

from airticket.settings import *  # noqa: E402,F403
