"""`Idempotency-Key` for POST commands.

The first request with a key claims it (a conditional put of an IN_PROGRESS record scoped to
the caller), runs, and stores its status and body. A retry with the same key and the same
body gets that stored response and writes nothing; the same key with another body is 422; a
retry while the first is still running is 409. A request that crashed (5xx) releases its
claim so the client can retry. Records expire through DynamoDB TTL.

Views validate the request (and the caller's right to make it) before calling `run`, so a
rejected request writes nothing and leaves its key free for the corrected retry.
"""

import hashlib
import json
import re
import time
from collections.abc import Callable

from django.conf import settings
from rest_framework.response import Response

from airticket.errors import BadRequest, Conflict, IdempotencyMismatch, exception_handler

from . import repository as repo
from .repository import ConditionFailed

HEADER = "Idempotency-Key"
_KEY = re.compile(r"[\x21-\x7e]{1,255}")
# Longer than any request may run (API Gateway gives up at 29 s, the Lambda at 30 s).
ABANDONED_AFTER_SECONDS = 60


def _fingerprint(request) -> str:
    body = json.dumps(request.data, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(f"{request.method} {request.path}\n{body}".encode()).hexdigest()


def run(request, command: Callable[[], Response]) -> Response:
    key = request.headers.get(HEADER)
    if key is None:
        return command()
    if not _KEY.fullmatch(key):
        raise BadRequest("Idempotency-Key must be 1-255 visible ASCII characters", fields={HEADER: "invalid"})
    record_key = repo.idempotency_key(request.user.subject, key)
    fingerprint = _fingerprint(request)
    now = int(time.time())
    try:
        # A new key, or a claim whose request died without answering (a Lambda timeout, a
        # killed process): without the second case the key would be stuck until its TTL.
        repo.put_replacing(
            record_key,
            {
                "entity": repo.IDEMPOTENCY,
                "fingerprint": fingerprint,
                "state": "IN_PROGRESS",
                "claimed_at": now,
                "expires_at": now + settings.IDEMPOTENCY_TTL_SECONDS,
            },
            condition="attribute_not_exists(PK) OR (#state = :progress AND fingerprint = :fp AND claimed_at < :abandoned)",
            condition_values=repo.values(progress="IN_PROGRESS", fp=fingerprint, abandoned=now - ABANDONED_AFTER_SECONDS),
            condition_names={"#state": "state"},
        )
    except ConditionFailed:
        return _replay(record_key, fingerprint)
    try:
        response = command()
    except Exception as exc:
        status = getattr(exc, "status_code", 500)
        if status >= 500:
            repo.delete(record_key)
        else:
            _store(record_key, fingerprint, status, _error_body(exc))
        raise
    _store(record_key, fingerprint, response.status_code, response.data, response.get("ETag"))
    return response


def _error_body(exc) -> dict:
    response = exception_handler(exc, {})
    return response.data if response is not None else {}


def _store(record_key: dict, fingerprint: str, status: int, body, etag: str | None = None) -> None:
    repo.put_replacing(
        record_key,
        {
            "entity": repo.IDEMPOTENCY,
            "fingerprint": fingerprint,
            "state": "DONE",
            "status_code": status,
            "body": json.dumps(body, default=str),
            "etag": etag,
            "expires_at": int(time.time()) + settings.IDEMPOTENCY_TTL_SECONDS,
        },
        condition="fingerprint = :fp AND #state = :progress",
        condition_values=repo.values(fp=fingerprint, progress="IN_PROGRESS"),
        condition_names={"#state": "state"},
    )


def _replay(record_key: dict, fingerprint: str) -> Response:
    record = repo.get(record_key)
    if record is None:  # expired or released between our put and get: treat as in progress
        raise Conflict("a request with this Idempotency-Key is in progress", code="idempotency_in_progress")
    if record["fingerprint"] != fingerprint:
        raise IdempotencyMismatch("this Idempotency-Key was used with a different request", fields={HEADER: "reused"})
    if record["state"] != "DONE":
        raise Conflict("a request with this Idempotency-Key is in progress", code="idempotency_in_progress")
    response = Response(json.loads(record["body"]), status=record["status_code"])
    if record.get("etag"):
        response["ETag"] = record["etag"]
    response["Idempotent-Replayed"] = "true"
    return response
