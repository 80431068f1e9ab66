"""Per-caller throttles of the command API: one rate per token identity (customer or staff) and
one per client address, from `settings.COMMAND_THROTTLE_RATES` (environment, validated there).

A throttled request is answered 429 in the one error shape with `Retry-After` (DRF's Throttled,
through `airticket.errors.exception_handler`).

Counts live in Django's cache (the default: per process). On Lambda that is per warm
container, so these limits bound each caller per container; the API Gateway stage throttle
(`provision_aws --throttling`, API_THROTTLE_RATE and API_THROTTLE_BURST) bounds the whole stage.
"""

from django.conf import settings
from rest_framework.throttling import SimpleRateThrottle
from rest_framework.views import APIView


class _SettingsRateThrottle(SimpleRateThrottle):
    """A SimpleRateThrottle whose rate is looked up per request (DRF binds its rates at import,
    so a changed setting would be ignored); a rate of None lets everything through."""

    def __init__(self):  # DRF's looks the rate up here, before the scope is known
        pass

    def scope_for(self, request) -> str | None:
        raise NotImplementedError

    def allow_request(self, request, view):
        self.scope = self.scope_for(request)
        self.rate = settings.COMMAND_THROTTLE_RATES.get(self.scope) if self.scope else None
        if self.rate is None:
            return True
        self.num_requests, self.duration = self.parse_rate(self.rate)
        return super().allow_request(request, view)


class CallerRateThrottle(_SettingsRateThrottle):
    """Per token identity: a customer id, or a staff identity (its own, usually higher, rate)."""

    def scope_for(self, request) -> str | None:
        user = request.user
        if not getattr(user, "is_authenticated", False):
            return None  # refused anyway; the address throttle has counted it
        return "staff" if user.is_staff else "customer"

    def get_cache_key(self, request, view):
        return self.cache_format % {"scope": self.scope, "ident": request.user.subject}


class AddressRateThrottle(_SettingsRateThrottle):
    """Per client address (REMOTE_ADDR: Zappa sets it from API Gateway's view of the caller;
    REST_FRAMEWORK's NUM_PROXIES=0 keeps a client's own X-Forwarded-For out of it)."""

    def scope_for(self, request) -> str | None:
        return "address"

    def get_cache_key(self, request, view):
        return self.cache_format % {"scope": self.scope, "ident": self.get_ident(request)}


class CommandApi(APIView):
    """Base of every command API view: throttled per token, and per address before the token is
    even checked, so a flood of forged or expired tokens is slowed down too."""

    throttle_classes = [CallerRateThrottle]

    def perform_authentication(self, request):
        address = AddressRateThrottle()
        if not address.allow_request(request, self):
            self.throttled(request, address.wait())
        super().perform_authentication(request)
