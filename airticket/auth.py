"""Stateless bearer tokens.

A token is a signed, timestamped payload (`django.core.signing`) naming a role and, for
customers, the customer id. The command Lambda verifies it with the shared secret alone:
no database, no session.
"""

import hashlib
import re
import secrets
import time
from dataclasses import dataclass

from django.conf import settings
from django.core import signing
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions, permissions

_SALT = "airticket.token.v1"
STAFF = "staff"
CUSTOMER = "customer"
STAFF_ID = re.compile(r"[A-Za-z0-9_.@-]{1,64}")
# Clocks of the issuer and the verifier may differ a little; a token from further ahead than
# this was not issued by a sane clock (or the secret leaked): refused.
CLOCK_SKEW_SECONDS = 60


@dataclass(frozen=True)
class Principal:
    role: str
    customer_id: str | None = None
    staff_id: str | None = None

    is_authenticated = True
    is_anonymous = False

    @property
    def is_staff(self) -> bool:
        return self.role == STAFF

    @property
    def subject(self) -> str:
        """Who the caller is, for scoping what it owns (its Idempotency-Keys): one customer,
        or one staff identity (two staff members' keys never collide)."""
        return f"{STAFF}:{self.staff_id}" if self.is_staff else f"{CUSTOMER}:{self.customer_id}"

    def may_act_for(self, customer_id: str) -> bool:
        return self.is_staff or self.customer_id == customer_id


def issue_token(*, role: str, customer_id: str | None = None, staff_id: str | None = None) -> str:
    """A token for a customer, or for one staff identity: `staff_id` names the person or
    service; without one the token is an identity of its own (a random id)."""
    if role not in (STAFF, CUSTOMER):
        raise ValueError(f"unknown role {role!r}")
    if role == CUSTOMER and not customer_id:
        raise ValueError("a customer token needs a customer id")
    if role == STAFF:
        staff_id = staff_id or f"token-{secrets.token_hex(8)}"
        if not STAFF_ID.fullmatch(staff_id):
            raise ValueError("a staff id is 1-64 letters, digits, '.', '@', '-' or '_'")
        payload = {"role": role, "cid": None, "sid": staff_id}
    else:
        payload = {"role": role, "cid": customer_id}
    return signing.dumps(payload, key=settings.TOKEN_SECRET, salt=_SALT, compress=True)


def verify_token(token: str) -> Principal:
    try:
        payload = signing.loads(token, key=settings.TOKEN_SECRET, salt=_SALT, max_age=settings.TOKEN_TTL_SECONDS)
    except signing.SignatureExpired:
        raise exceptions.AuthenticationFailed("token expired") from None
    except signing.BadSignature:
        raise exceptions.AuthenticationFailed("invalid token") from None
    # `max_age` only bounds the age from above: a timestamp in the future passes it.
    issued_at = signing.b62_decode(token.rsplit(signing.Signer().sep, 2)[-2])
    if issued_at > time.time() + CLOCK_SKEW_SECONDS:
        raise exceptions.AuthenticationFailed("token issued in the future")
    if not isinstance(payload, dict) or payload.get("role") not in (STAFF, CUSTOMER):
        raise exceptions.AuthenticationFailed("invalid token")
    if payload["role"] == CUSTOMER:
        return Principal(role=CUSTOMER, customer_id=payload.get("cid"))
    # A staff token issued before tokens named their identity is an identity of its own.
    staff_id = payload.get("sid") or f"token-{hashlib.sha256(token.encode()).hexdigest()[:16]}"
    return Principal(role=STAFF, staff_id=staff_id)


class BearerTokenAuthentication(authentication.BaseAuthentication):
    keyword = "Bearer"

    def authenticate(self, request):
        header = authentication.get_authorization_header(request).split()
        if not header or header[0].lower() != self.keyword.lower().encode():
            return None
        if len(header) != 2:
            raise exceptions.AuthenticationFailed("Authorization header must be 'Bearer <token>'")
        try:
            token = header[1].decode("ascii")
        except UnicodeDecodeError:
            raise exceptions.AuthenticationFailed("invalid token") from None
        return verify_token(token), token

    def authenticate_header(self, request):
        return self.keyword


class IsStaff(permissions.BasePermission):
    """Staff token, or a logged-in Django staff user (the admin and the Swagger UI)."""

    message = "staff only"

    def has_permission(self, request, view):
        user = request.user
        return bool(user and user.is_authenticated and getattr(user, "is_staff", False))


class BearerTokenScheme(OpenApiAuthenticationExtension):
    """Documents the bearer token in the OpenAPI schema (drf-spectacular cannot infer it)."""

    target_class = BearerTokenAuthentication
    name = "bearerAuth"

    def get_security_definition(self, auto_schema):
        return {"type": "http", "scheme": "bearer", "description": "`python manage.py issue_token --staff` or `--customer ID`"}
