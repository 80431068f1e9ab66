"""Entity tags and `If-Match` for the command API (RFC 9110, sections 8.8.3 and 13.1.1).

An item's tag is its version, quoted (`"3"`). A customer read with its orders is another
representation: its tag is the profile's version plus a digest of the orders' ids and versions
(`"3.5f0c..."`), so it changes whenever any part of the body does.

`If-Match` uses the strong comparison: a weak tag (`W/"3"`) never matches, so a request carrying
only weak tags is 412; `*` matches any current representation (the item must exist, which the
service checks anyway). A bare version (`3`, no quotes) is still accepted, as the API has always
documented "If-Match: <version>".
"""

import re
from dataclasses import dataclass

from rest_framework import status
from rest_framework.response import Response

from airticket.errors import BadRequest, PreconditionFailed

from . import services

_TAG = re.compile(r'\s*(W/)?(?:"([^"]*)"|([^\s,"]+))\s*')
_VERSION = re.compile(r"(\d{1,18})(?:\.([0-9a-f]{16}))?")


@dataclass(frozen=True)
class Precondition:
    """What `If-Match` asks for: a version (None for `*`: any) and, for a customer read with
    its orders, the digest of those orders."""

    version: int | None
    orders_digest: str | None = None


def etag(data: dict) -> str:
    return f'"{data["version"]}"'


def customer_etag(data: dict) -> str:
    """The tag of a customer read with its orders: covers the whole body."""
    return f'"{data["version"]}.{services.orders_digest(orders=data["orders"])}"'


def versioned(data: dict, status_code: int = status.HTTP_200_OK, *, tag: str | None = None) -> Response:
    response = Response(data, status=status_code)
    response["ETag"] = tag or etag(data)
    return response


def if_match(request) -> Precondition | None:
    """The request's `If-Match`, or None without one. 412 when only weak tags are given (they
    never match strongly); 400 when it is not a version, `*` or a list of one version."""
    raw = request.headers.get("If-Match")
    if raw is None:
        return None
    if raw.strip() == "*":
        return Precondition(version=None)
    strong = []
    for part in raw.split(","):
        match = _TAG.fullmatch(part)
        version = _VERSION.fullmatch(match.group(2) or match.group(3) or "") if match else None
        if version is None:
            raise BadRequest('If-Match must be a version ("3") or *', fields={"If-Match": "not a version"})
        if not match.group(1):
            strong.append(Precondition(version=int(version.group(1)), orders_digest=version.group(2)))
    if not strong:
        raise PreconditionFailed("If-Match has only weak tags, which never match (RFC 9110 13.1.1)")
    if len(strong) > 1:
        raise BadRequest("If-Match must name one version", fields={"If-Match": "several versions"})
    return strong[0]


def expected_version(precondition: Precondition | None) -> int | None:
    """The version an order or a flight must have, or None (no If-Match, or `*`). A customer
    tag (with an orders digest) is never an order's or a flight's: it does not match."""
    if precondition is None:
        return None
    if precondition.orders_digest is not None:
        raise PreconditionFailed("If-Match names a customer representation, not this item's")
    return precondition.version
