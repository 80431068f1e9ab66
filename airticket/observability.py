"""Logs and metrics every stage shares: what a line is about, and the numbers to alarm on.

- **Context.** `bind(...)` names what the code is working on (a request id, a CDC batch's
  shard and sequence range, a customer or order id) for as long as the block runs; every log
  line written meanwhile carries it, in JSON (`LOG_FORMAT=json`, every Lambda stage) or as
  `key=value` pairs after the message (plain text, the local default).
- **Metrics.** `count(...)` and `record(...)` add to this process's counters (the operations
  page reads them through `snapshot()`) and, with `METRICS_EMF` on, print one CloudWatch
  embedded-metric-format blob to stdout, which CloudWatch Logs turns into metrics in
  `METRICS_NAMESPACE` without an API call on the request path.

Powertools (`aws-lambda-powertools`) formats both: its `LambdaPowertoolsFormatter` is a plain
`logging.Formatter`, so Django's `LOGGING` uses it under Zappa's handler as anywhere else, and
its `EphemeralMetrics` builds and validates the EMF blobs.
"""

import contextvars
import json
import logging
import re
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

from aws_lambda_powertools.logging.formatter import LambdaPowertoolsFormatter
from aws_lambda_powertools.metrics import EphemeralMetrics, MetricUnit
from django.conf import settings

logger = logging.getLogger(__name__)

# What the current request, batch or command is about. Each `bind` installs a new dict (a
# copy), so a value never leaks from one request or batch to the next, nor across threads.
_context: contextvars.ContextVar[dict | None] = contextvars.ContextVar("observability_context", default=None)


def context() -> dict:
    return dict(_context.get() or {})


@contextmanager
def bind(**fields) -> Iterator[dict]:
    """Add `fields` (None values are left out) to every log line written inside the block."""
    current = {**context(), **{k: v for k, v in fields.items() if v is not None}}
    token = _context.set(current)
    try:
        yield current
    finally:
        _context.reset(token)


def bind_more(**fields) -> None:
    """Add fields to the innermost `bind` block (e.g. the ids a view's URL names, known only
    once the URL is resolved, inside the request's block)."""
    bound = _context.get()
    if bound is not None:  # outside any block there is nothing to add to
        bound.update({k: v for k, v in fields.items() if v is not None})


class ContextFilter(logging.Filter):
    """On the handler: puts the bound fields on each record (a field the call gave as `extra`
    wins)."""

    def filter(self, record: logging.LogRecord) -> bool:
        for key, value in (_context.get() or {}).items():
            if not hasattr(record, key):
                setattr(record, key, value)
        return True


_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime", "taskName"}


class PlainFormatter(logging.Formatter):
    """The local default: a readable line, then the context and extras as key=value."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        extras = {k: v for k, v in vars(record).items() if k not in _STANDARD}
        return line + "".join(f" {k}={v}" for k, v in extras.items())


def json_formatter() -> logging.Formatter:
    """One JSON object per line: level, location, message, timestamp, service, stage, then the
    context and extras as top-level keys (what CloudWatch Logs Insights filters on)."""
    return LambdaPowertoolsFormatter(service=settings.METRICS_SERVICE, stage=settings.METRICS_STAGE, utc=True, use_rfc3339=True)


# --- metrics -------------------------------------------------------------------------------

COUNT, MILLISECONDS, SECONDS = MetricUnit.Count, MetricUnit.Milliseconds, MetricUnit.Seconds

_counters: Counter = Counter()
_counters_lock = threading.Lock()


def _key(name: str, dimensions: Mapping[str, str]) -> str:
    return name + "".join(f" {k}={v}" for k, v in sorted(dimensions.items()))


def record(
    values: Mapping[str, float], *, unit: MetricUnit = COUNT, units: Mapping[str, MetricUnit] | None = None, **dimensions: str
) -> None:
    """Several metrics with the same dimensions, in one EMF blob. Counts add up in the
    counters; other units (durations, ages) keep their latest value there."""
    units = units or {}
    added = {_key(name, dimensions): (value, units.get(name, unit) == COUNT) for name, value in values.items()}
    with _counters_lock:
        for key, (value, adds) in added.items():
            _counters[key] = _counters[key] + value if adds else value
    if settings.METRICS_STORE:
        _store(added)
    if settings.METRICS_EMF:
        _emit(values, unit=unit, units=units, dimensions=dimensions)


def _store(added: Mapping[str, tuple[float, bool]]) -> None:
    """Into the shared counters (MetricCounter). A metric must never fail what it measures: a
    database error is logged and the numbers of that call are lost to the page."""
    from django.db import DatabaseError, IntegrityError, transaction
    from django.db.models import F

    from admin_portal.models import MetricCounter

    try:
        for full_key, (value, adds) in added.items():
            key = full_key[:255]  # a weather source's URL can be long
            new_value = F("value") + value if adds else value
            if MetricCounter.objects.filter(key=key).update(value=new_value):
                continue
            try:
                with transaction.atomic():
                    MetricCounter.objects.create(key=key, value=value)
            except IntegrityError:  # another process created it first
                MetricCounter.objects.filter(key=key).update(value=new_value)
    except DatabaseError as exc:
        logger.warning("metric counters not stored: %s: %s", type(exc).__name__, exc)


def count(name: str, value: float = 1, **dimensions: str) -> None:
    record({name: value}, **dimensions)


def _emit(values: Mapping[str, float], *, unit: MetricUnit, units: Mapping[str, MetricUnit], dimensions: Mapping[str, str]) -> None:
    metrics = EphemeralMetrics(namespace=settings.METRICS_NAMESPACE, service=settings.METRICS_SERVICE)
    for name, value in dimensions.items():
        metrics.add_dimension(name=name, value=str(value))
    for name, value in values.items():
        metrics.add_metric(name=name, unit=units.get(name, unit), value=value)
    # stdout, as Powertools' own flush does: on Lambda it is the function's log stream, where
    # CloudWatch finds the blob by its `_aws` key.
    sys.stdout.write(json.dumps(metrics.serialize_metric_set(), separators=(",", ":")) + "\n")
    sys.stdout.flush()


def snapshot() -> dict[str, float]:
    """The counters, `name dimension=value ...` -> number: every process's with METRICS_STORE
    (locally), else this process's since it started."""
    if settings.METRICS_STORE:
        from admin_portal.models import MetricCounter

        return dict(MetricCounter.objects.order_by("key").values_list("key", "value"))
    with _counters_lock:
        return dict(sorted(_counters.items()))


def reset() -> None:
    """Start counting from zero (tests)."""
    with _counters_lock:
        _counters.clear()
    if settings.METRICS_STORE:
        from admin_portal.models import MetricCounter

        MetricCounter.objects.all().delete()


# --- requests ------------------------------------------------------------------------------

REQUEST_ID_HEADER = "X-Request-Id"
# A caller's id is kept when it is short and plain (it may come from a load balancer or the
# client's own trace); anything else is replaced, so a header cannot forge log lines.
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{8,128}")
_COMMAND_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_ID_KWARGS = ("customer_id", "order_id", "flight_number", "flight_date")


def _request_id(request) -> str:
    given = request.headers.get(REQUEST_ID_HEADER, "")
    return given if _REQUEST_ID.fullmatch(given) else uuid.uuid4().hex


def is_command(request) -> bool:
    """A write to the command API (the query API and the admin are not commands)."""
    path = request.path_info
    return request.method in _COMMAND_METHODS and path.startswith("/api/v1/") and not path.startswith("/api/v1/query/")


def _refusal_reason(response) -> str:
    """The error code of the API's JSON error shape, else the status."""
    try:
        return str(json.loads(response.content)["error"]["code"])
    except (ValueError, KeyError, TypeError, AttributeError):
        return str(response.status_code)


class RequestContextMiddleware:
    """First in the chain: gives each request an id (returned as `X-Request-Id`), binds it and
    the ids in the URL to every log line, writes one access line, and counts commands."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        started = time.monotonic()
        with bind(request_id=_request_id(request)) as bound:
            request.request_id = bound["request_id"]
            response = self.get_response(request)
            response[REQUEST_ID_HEADER] = request.request_id
            self._account(request, response, duration_ms=round((time.monotonic() - started) * 1000, 1))
        return response

    def process_view(self, request, view_func, view_args, view_kwargs):
        bind_more(**{k: str(view_kwargs[k]) for k in _ID_KWARGS if k in view_kwargs})

    @staticmethod
    def _account(request, response, *, duration_ms: float) -> None:
        status = response.status_code
        fields = {"method": request.method, "path": request.path_info, "status": status, "duration_ms": duration_ms}
        if is_command(request):
            if status < 400:
                count("CommandAccepted")
            else:
                fields["reason"] = _refusal_reason(response)
                count("CommandRefused", reason=fields["reason"])
        level = logging.ERROR if status >= 500 else logging.INFO
        logger.log(level, "%s %s %s", request.method, request.path_info, status, extra=fields)
