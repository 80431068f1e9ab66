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


CHECKS = {"database": _database, "aws": _aws, "bridge": lambda: _heartbeat("bridge"), "poller": lambda: _heartbeat("poller")}


def healthz(request):
    results = {}
    for name, check in CHECKS.items():
        try:
            check()
            results[name] = "ok"
        except Exception as exc:  # a health check reports every failure, whatever its type
            results[name] = f"error: {type(exc).__name__}: {exc}"[:300]
    healthy = all(v == "ok" for v in results.values())
    return JsonResponse({"status": "ok" if healthy else "unavailable", "checks": results}, status=200 if healthy else 503)
