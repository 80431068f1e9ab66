"""The CDC Lambda's entry point: `cdc_lambda.handler.handler`.

Deployed as the Zappa `cdc` stage, whose `events` entry routes the Kinesis stream here; locally
`run_poller` calls the same function with the same event shape. The event source mapping
must have ReportBatchItemFailures on (see `airticket.provisioning`).
"""

import os

import django
from django.apps import apps

if not apps.ready:  # Zappa sets Django up before routing events; a bare Lambda runtime does not
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "airticket.settings")
    django.setup()

from cdc_lambda.batch import process  # noqa: E402  (models need the app registry)


def handler(event: dict, context=None) -> dict:
    return process(event=event)
