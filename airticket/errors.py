"""One error shape for the whole API: {"error": {"code", "message", "fields"}}."""

import re

from django.conf import settings
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import RequestDataTooBig
from django.http import Http404, JsonResponse
from django.views import debug, defaults
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler


class DomainError(Exception):
    """A business-rule failure a service raises; views never catch it, the handler maps it."""

    status_code = status.HTTP_409_CONFLICT
    code = "conflict"

    def __init__(self, message: str, *, code: str | None = None, fields: dict | None = None):
        super().__init__(message)
        self.message = message
        if code:
            self.code = code
        self.fields = fields or {}


class NotFound(DomainError):
    status_code = status.HTTP_404_NOT_FOUND
    code = "not_found"


class Conflict(DomainError):
    status_code = status.HTTP_409_CONFLICT
    code = "conflict"


class PreconditionFailed(DomainError):
    status_code = status.HTTP_412_PRECONDITION_FAILED
    code = "stale_version"


class IdempotencyMismatch(DomainError):
    status_code = status.HTTP_422_UNPROCESSABLE_ENTITY
    code = "idempotency_key_reused"


class PayloadTooLarge(DomainError):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    code = "payload_too_large"


class BadRequest(DomainError):
    status_code = status.HTTP_400_BAD_REQUEST
    code = "invalid"


_CODES = {
    exceptions.ParseError: "malformed",
    exceptions.UnsupportedMediaType: "unsupported_media_type",
    exceptions.NotAuthenticated: "not_authenticated",
    exceptions.AuthenticationFailed: "authentication_failed",
    exceptions.PermissionDenied: "permission_denied",
    exceptions.NotFound: "not_found",
    exceptions.MethodNotAllowed: "method_not_allowed",
    exceptions.NotAcceptable: "not_acceptable",
    exceptions.Throttled: "throttled",
}


def error_body(code: str, message: str, fields: dict | None = None) -> dict:
    return {"error": {"code": code, "message": message, "fields": fields or {}}}


def _flatten(detail) -> dict:
    """DRF's nested ValidationError detail -> {"field": "first message", "a.b": ...}."""
    fields: dict[str, str] = {}

    def walk(prefix: str, value):
        if isinstance(value, dict):
            for key, sub in value.items():
                walk(f"{prefix}.{key}" if prefix else str(key), sub)
        elif isinstance(value, list):
            if value and all(not isinstance(v, (dict, list)) for v in value):
                fields[prefix or "non_field_errors"] = " ".join(str(v) for v in value)
            else:
                for index, sub in enumerate(value):
                    walk(f"{prefix}.{index}" if prefix else str(index), sub)
        else:
            fields[prefix or "non_field_errors"] = str(value)

    walk("", detail)
    return fields


def exception_handler(exc, context):
    # Django's own exceptions (`get_object_or_404`, ...) as DRF's, so they get DRF's codes.
    if isinstance(exc, Http404):
        exc = exceptions.NotFound(str(exc) or "not found")
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied(str(exc) or None)
    elif isinstance(exc, RequestDataTooBig):  # else Django's HTML 400 page
        exc = PayloadTooLarge(f"the body is larger than {settings.DATA_UPLOAD_MAX_MEMORY_SIZE} bytes")
    if isinstance(exc, DomainError):
        return Response(error_body(exc.code, exc.message, exc.fields), status=exc.status_code)
    if isinstance(exc, exceptions.ValidationError):
        fields = _flatten(exc.detail)
        names = ", ".join(sorted(fields))
        return Response(error_body("invalid", f"invalid input: {names}", fields), status=400)
    response = drf_exception_handler(exc, context)
    if response is None:
        return None  # a real bug: let Django report it as a 500
    code = next((c for cls, c in _CODES.items() if isinstance(exc, cls)), getattr(exc, "default_code", "error"))
    detail = getattr(exc, "detail", str(exc))
    response.data = error_body(code, str(detail))
    return response


# Django's own 404 and 500 pages are HTML; under /api/ a client gets the one JSON error shape.
def _is_api(request) -> bool:
    return request.path_info.startswith("/api/")


def not_found(request, exception=None):
    if _is_api(request):
        return JsonResponse(error_body("not_found", f"no endpoint at {request.path_info}"), status=404)
    return defaults.page_not_found(request, exception)


def bad_request(request, exception=None):
    """Django's 400 (a SuspiciousOperation, e.g. a body over DATA_UPLOAD_MAX_MEMORY_SIZE)."""
    if not _is_api(request):
        return defaults.bad_request(request, exception)
    if isinstance(exception, RequestDataTooBig):
        return JsonResponse(error_body(PayloadTooLarge.code, "request body exceeds the upload limit"), status=413)
    return JsonResponse(error_body("bad_request", "bad request"), status=400)


def server_error(request):
    if _is_api(request):
        return JsonResponse(error_body("server_error", "internal error"), status=500)
    return defaults.server_error(request)


class ExceptionReporterFilter(debug.SafeExceptionReporterFilter):
    """Django's debug page (DEBUG, local only) masks settings and environment entries named
    like secrets; DATABASE_URL carries the database password in its name-less URL form."""

    hidden_settings = re.compile(debug.SafeExceptionReporterFilter.hidden_settings.pattern + "|DATABASE_URL", flags=re.I)
