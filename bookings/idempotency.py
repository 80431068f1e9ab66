"""`Idempotency-Key` for POST commands.

The first request with a key claims it: a conditional put of an IN_PROGRESS record, scoped to
the caller (a customer, or one staff identity) and owned by this request (`owner`, a random
id). It runs, and its outcome becomes the key's: a retry with the same key and body gets that
response and writes nothing; the same key with another body is 422; a retry while the first is
still running is 409.

- A command that creates something (a customer, a flight, an order) stores its success in the
  same DynamoDB transaction as its own writes (`Claim.record`): either both commit or neither.
  So once it committed, every retry replays its 201 and its ids, even a retry that comes after
  the request died before answering; and a request whose claim was taken over cannot commit.
- Other outcomes (a 4xx answer, or the 200 of a cancel, which is idempotent by itself) are
  stored after the command, only while the record is still this request's claim.
- Retryable answers (5xx, and 409 `busy` / `idempotency_in_progress`, which say "try again")
  are not the key's outcome: the claim is released, again only if still this request's.
- A claim whose request died without answering (a Lambda timeout) is taken over after
  ABANDONED_AFTER_SECONDS by a retry with the same body.
- A record past its `expires_at` is treated as absent: DynamoDB deletes expired items lazily
  (within days), so the TTL alone does not end a key.

Views validate the request (and the caller's right to make it) before calling `run`, so a
rejected request writes nothing and leaves its key free for the corrected retry.

Why not AWS Lambda Powertools' idempotency utility: see "Idempotency-Key" in the README.
"""

import hashlib
import json
import re
import time
import uuid
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass, field

from django.conf import settings
from rest_framework.response import Response

from airticket.errors import BadRequest, Conflict, IdempotencyMismatch, exception_handler

from . import repository as repo
from .http import etag, versioned
from .repository import ConditionFailed
from .services import Recorder

HEADER = "Idempotency-Key"
_KEY = re.compile(r"[\x21-\x7e]{1,255}")
# Longer than any request may run (API Gateway gives up at 29 s, the Lambda at 30 s).
ABANDONED_AFTER_SECONDS = 60
IN_PROGRESS, DONE = "IN_PROGRESS", "DONE"
# Answers that mean "not now, try again": never stored as the key's outcome.
RETRYABLE_CODES = frozenset({"busy", "idempotency_in_progress"})
_MINE = "#state = :progress AND #owner = :owner"
_NAMES = {"#state": "state", "#owner": "owner"}


def _now() -> int:
    return int(time.time())


def _fingerprint(request) -> str:
    body = json.dumps(request.data, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(f"{request.method} {request.path}\n{body}".encode()).hexdigest()


@dataclass
class Claim:
    """This request's hold on its key."""

    record_key: dict
    fingerprint: str
    owner: str
    status_code: int
    recorded: bool = field(default=False)

    def _mine(self) -> dict:
        return repo.values(progress=IN_PROGRESS, owner=self.owner)

    def _done(self, status_code: int, body, tag: str | None) -> dict:
        return {
            "entity": repo.IDEMPOTENCY,
            "fingerprint": self.fingerprint,
            "owner": self.owner,
            "state": DONE,
            "status_code": status_code,
            "body": json.dumps(body, default=str),
            "etag": tag,
            "expires_at": _now() + settings.IDEMPOTENCY_TTL_SECONDS,
        }

    def record(self, result: dict) -> dict:
        """The transaction action that makes `result` (answered with `status_code`) the key's
        outcome, only while the key is still this request's claim. A service adds it to the
        transaction of its own writes."""
        self.recorded = True
        item = self._done(self.status_code, result, etag(result))
        return repo.conditional_put_action(self.record_key, item, condition=_MINE, condition_values=self._mine(), condition_names=_NAMES)

    def store(self, status_code: int, body, tag: str | None = None) -> None:
        """Make an answer the key's outcome after the command, if the key is still ours (a
        request that took over the claim has its own outcome, which stands)."""
        with suppress(ConditionFailed):
            repo.put_replacing(
                self.record_key,
                self._done(status_code, body, tag),
                condition=_MINE,
                condition_values=self._mine(),
                condition_names=_NAMES,
            )

    def release(self) -> None:
        """Free the key for a retry, if it is still ours."""
        with suppress(ConditionFailed):
            repo.delete_if(self.record_key, condition=_MINE, condition_values=self._mine(), condition_names=_NAMES)


def run(request, command: Callable[[Recorder | None], dict], *, status_code: int) -> Response:
    """Run `command` under the request's `Idempotency-Key`, if it has one, and answer its
    result with `status_code` and the result's ETag. `command` receives the claim's `record`
    (None without a key) and hands it to a service that can commit it with its own writes."""
    key = request.headers.get(HEADER)
    if key is None:
        return versioned(command(None), status_code)
    if not _KEY.fullmatch(key):
        raise BadRequest("Idempotency-Key must be 1-255 visible ASCII characters", fields={HEADER: "invalid"})
    claim = Claim(repo.idempotency_key(request.user.subject, key), _fingerprint(request), uuid.uuid4().hex, status_code)
    if not _claim(claim):
        return _replay(claim)
    try:
        result = command(claim.record)
    except Exception as exc:
        status = getattr(exc, "status_code", 500)
        if status >= 500 or getattr(exc, "code", None) in RETRYABLE_CODES:
            claim.release()
        else:
            claim.store(status, _error_body(exc))
        raise
    response = versioned(result, status_code)
    if not claim.recorded:  # the command stored nothing itself (it has no transaction to join)
        claim.store(status_code, result, response["ETag"])
    return response


def _claim(claim: Claim) -> bool:
    """Put this request's IN_PROGRESS record: on a new key, on an expired one, or over a claim
    whose request died without answering (a Lambda timeout, a killed process), which would
    otherwise hold the key until its TTL. False when the key is someone else's."""
    now = _now()
    try:
        repo.put_replacing(
            claim.record_key,
            {
                "entity": repo.IDEMPOTENCY,
                "fingerprint": claim.fingerprint,
                "owner": claim.owner,
                "state": IN_PROGRESS,
                "claimed_at": now,
                "expires_at": now + settings.IDEMPOTENCY_TTL_SECONDS,
            },
            condition=(
                "attribute_not_exists(PK) OR expires_at <= :now OR (#state = :progress AND fingerprint = :fp AND claimed_at < :abandoned)"
            ),
            condition_values=repo.values(now=now, progress=IN_PROGRESS, fp=claim.fingerprint, abandoned=now - ABANDONED_AFTER_SECONDS),
            condition_names={"#state": "state"},
        )
    except ConditionFailed:
        return False
    return True


def _error_body(exc) -> dict:
    response = exception_handler(exc, {})
    return response.data if response is not None else {}


def _in_progress() -> Conflict:
    return Conflict("a request with this Idempotency-Key is in progress", code="idempotency_in_progress")


def _replay(claim: Claim) -> Response:
    record = repo.get(claim.record_key)
    # Gone, or expired, between our put and this read: as good as in progress (retry).
    if record is None or record["expires_at"] <= _now():
        raise _in_progress()
    if record["fingerprint"] != claim.fingerprint:
        raise IdempotencyMismatch("this Idempotency-Key was used with a different request", fields={HEADER: "reused"})
    if record["state"] != DONE:
        raise _in_progress()
    response = Response(json.loads(record["body"]), status=record["status_code"])
    if record.get("etag"):
        response["ETag"] = record["etag"]
    response["Idempotent-Replayed"] = "true"
    return response
