"""The CDC Lambda's entry point: `cdc_lambda.handler.handler`.

Deployed as the Zappa `cdc` stage, whose `events` entry routes the Kinesis stream here; locally
`run_poller` calls the same function with the same event shape. The event source mapping
must have ReportBatchItemFailures on (see `airticket.provisioning`).
"""

import functools
import logging
import os

import django
from django.apps import apps

if not apps.ready:  # Zappa sets Django up before routing events; a bare Lambda runtime does not
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "airticket.settings")
    django.setup()

from aws_lambda_powertools import Tracer  # noqa: E402
from django.conf import settings  # noqa: E402

from airticket import observability  # noqa: E402
from cdc_lambda.batch import process  # noqa: E402  (models need the app registry)

logger = logging.getLogger(__name__)

# X-Ray: Zappa's `xray_tracing` makes Lambda trace each invocation (TracingConfig Active); this
# adds the batch's own subsegment, annotated with its shard so traces can be searched by it,
# with the DynamoDB/SQS calls (botocore) and the read database's statements (PyMySQL, the
# Lambda driver) under it. Powertools turns it off outside Lambda (the local poller, tests).
tracer = Tracer(service=settings.METRICS_SERVICE, patch_modules=("botocore", "pymysql"))


def _batch_context(records: list[dict]) -> dict:
    """The shard and the sequence range a batch covers (one shard per Lambda batch)."""
    if not records:
        return {}
    first, last = records[0], records[-1]
    return {
        "shard": str(first.get("eventID", "")).partition(":")[0] or None,
        "first_sequence": first["kinesis"]["sequenceNumber"],
        "last_sequence": last["kinesis"]["sequenceNumber"],
    }


def _traced(function):
    """Powertools' `capture_lambda_handler` (a subsegment named `## <function>`), with `context`
    still optional: the local poller and the tests call `handler(event)`."""
    traced = tracer.capture_lambda_handler(function, capture_response=False)  # responses are small and not worth a trace

    @functools.wraps(function)
    def call(event: dict, context=None) -> dict:
        return traced(event, context)

    return call


@_traced
def handler(event: dict, context=None) -> dict:
    records = event.get("Records") or []
    batch = _batch_context(records)
    tracer.put_annotation(key="shard", value=batch.get("shard") or "")
    tracer.put_annotation(key="records", value=len(records))
    with observability.bind(**batch):
        return process(event=event)


@_traced
def reconcile(event: dict, context=None) -> dict:
    """The `cdc` stage's scheduled check (Zappa `events`, `expression`): compare DynamoDB with
    the read models and keep the report for the operations page. It does not repair: a
    difference is for a person to look at (`manage.py reconcile --repair`)."""
    from cdc_lambda import rebuild

    report = rebuild.reconcile()
    rebuild.report_save(report=report)
    for line in report.lines():
        logger.log(logging.WARNING if report.differences else logging.INFO, line)
    return {"items": report.items, "differences": report.differences}
