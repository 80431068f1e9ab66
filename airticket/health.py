"""GET /healthz: 200 only when every part this process depends on answers."""

import time

from django.conf import settings
from django.db import connection
from django.http import JsonResponse

from airticket import aws


def _database() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")


def _aws() -> None:
    aws.dynamodb().describe_table(TableName=settings.DYNAMODB_TABLE)


def _heartbeat(consumer: str) -> None:
    """Locally the bridge and the poller beat in their checkpoints; on AWS, AWS runs them."""
    from admin_portal.models import ShardCheckpoint

    if not settings.CDC_LOCAL_POLLER:
        return
    newest = ShardCheckpoint.objects.filter(consumer=consumer).order_by("-updated_at").values_list("updated_at", flat=True).first()
    if newest is None or time.time() - newest.timestamp() > settings.CDC_HEARTBEAT_SECONDS:
        raise RuntimeError(f"no {consumer} heartbeat")


def _latest_consistency():
    from cdc_lambda.consistency import latest

    return latest() if settings.CDC_LOCAL_POLLER else None


def _consistency() -> None:
    """Locally, the comparison of both sides made at start (`cdc_lambda.consistency`) must not
    have left them apart; a divergence that was repaired is reported, not failed."""
    from admin_portal.models import ConsistencyOutcome

    check = _latest_consistency()
    if check is not None and check.outcome == ConsistencyOutcome.DIVERGED:
        raise RuntimeError(check.summary)


CHECKS = {
    "database": _database,
    "aws": _aws,
    "bridge": lambda: _heartbeat("bridge"),
    "poller": lambda: _heartbeat("poller"),
    "consistency": _consistency,
}


def _consistency_report() -> dict | None:
    try:
        check = _latest_consistency()
    except Exception:  # the database check above reports why
        return None
    if check is None:
        return None
    return {
        "checked_at": check.checked_at.isoformat(),
        "outcome": check.outcome,
        "summary": check.summary,
        "command_side": check.command_side,
        "query_side": check.query_side,
        "examples": check.examples,
    }


def healthz(request):
    results = {}
    for name, check in CHECKS.items():
        try:
            check()
            results[name] = "ok"
        except Exception as exc:  # a health check reports every failure, whatever its type
            results[name] = f"error: {type(exc).__name__}: {exc}"[:600]
    healthy = all(v == "ok" for v in results.values())
    body = {"status": "ok" if healthy else "unavailable", "checks": results}
    if (report := _consistency_report()) is not None:
        body["consistency_at_start"] = report  # said even when repaired: the user should know
    return JsonResponse(body, status=200 if healthy else 503)
