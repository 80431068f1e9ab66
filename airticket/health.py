"""GET /healthz: 200 only when every part this process depends on answers (cheap: a load
balancer may ask every few seconds). GET /readyz: the same dependencies timed one by one, with
the CDC lag and the DLQ depth, for staff and monitoring (a staff token)."""

import time
from datetime import timedelta

from django.conf import settings
from django.db import connection
from django.http import JsonResponse
from django.utils import timezone
from drf_spectacular.utils import extend_schema
from rest_framework.response import Response
from rest_framework.views import APIView

from airticket import aws
from airticket.auth import IsStaff


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


# --- /readyz ---------------------------------------------------------------------------------

# How far back CloudWatch is asked for the projection lag on AWS: a few of its 1-minute points.
LAG_WINDOW = timedelta(minutes=5)


def _kinesis() -> None:
    aws.kinesis().describe_stream_summary(StreamName=settings.KINESIS_STREAM)


def _dlq_depth() -> dict:
    waiting, in_flight = aws.dlq_counts()
    return {"depth": waiting, "in_flight": in_flight}


def _timed(check) -> dict:
    started = time.monotonic()
    try:
        value = check()
    except Exception as exc:  # a readiness report names every failure, whatever its type
        return {"status": f"error: {type(exc).__name__}: {exc}"[:600], "latency_ms": _ms_since(started)}
    result = {"status": "ok", "latency_ms": _ms_since(started)}
    return {**result, **value} if isinstance(value, dict) else result


def _ms_since(started: float) -> float:
    return round((time.monotonic() - started) * 1000, 1)


def _local_lag() -> dict:
    """Locally the poller's checkpoints tell: 0 when it has read everything, else the time
    since the last record it applied while more wait."""
    from admin_portal.operations import checkpoint_lags

    lags = [lag for lag in checkpoint_lags() if lag.checkpoint.consumer == "poller"]
    behind = [lag.age_seconds or 0.0 for lag in lags if lag.pending]
    return {"lag_seconds": round(max(behind, default=0.0), 3), "source": "poller checkpoints", "shards": len(lags)}


def _cloudwatch_lag() -> dict:
    """On AWS the CDC Lambda publishes ProjectionLag (EMF, `airticket.observability`): the
    newest of its recent maxima; None when no batch ran in the window (nothing to apply)."""
    now = timezone.now()
    points = aws.cloudwatch().get_metric_statistics(
        Namespace=settings.METRICS_NAMESPACE,
        MetricName="ProjectionLag",
        Dimensions=[{"Name": "service", "Value": settings.METRICS_SERVICE}],
        StartTime=now - LAG_WINDOW,
        EndTime=now + timedelta(minutes=1),  # the current minute's point is whole (moto drops it otherwise)
        Period=60,
        Statistics=["Maximum"],
    )["Datapoints"]
    newest = max(points, key=lambda p: p["Timestamp"], default=None)
    return {"lag_seconds": None if newest is None else newest["Maximum"], "source": "cloudwatch ProjectionLag"}


READY_CHECKS = {
    "database": _database,
    "dynamodb": _aws,
    "kinesis": _kinesis,
    "dlq": _dlq_depth,
}


class ReadyView(APIView):
    """GET /readyz: each dependency with its latency, the CDC lag and the DLQ depth; 503 when a
    dependency fails. A full DLQ or a lag is reported, not failed: the alarms judge those."""

    permission_classes = [IsStaff]

    @extend_schema(exclude=True)  # an operations endpoint, like /healthz, not part of the API
    def get(self, request):
        dependencies = {name: _timed(check) for name, check in READY_CHECKS.items()}
        cdc = _timed(_local_lag if settings.CDC_LOCAL_POLLER else _cloudwatch_lag)
        ready = all(d["status"] == "ok" for d in dependencies.values())
        body = {"status": "ok" if ready else "unavailable", "dependencies": dependencies, "cdc": cdc}
        return Response(body, status=200 if ready else 503)
