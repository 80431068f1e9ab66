"""The HTTP boundary of `poll_weather`: one conditional GET with a timeout.

The standard library's client, so the Lambda package needs nothing more. Only http(s) URLs
(settings refuse others), and a body is read up to `MAX_BYTES` so a runaway feed cannot
exhaust the function's memory."""

import urllib.error
import urllib.request
from dataclasses import dataclass

MAX_BYTES = 20 * 1024 * 1024
USER_AGENT = "airticket-weather/1.0 (+ops@airticket.example)"
# api.weather.gov answers an alert's link with JSON-LD unless CAP is asked for.
ACCEPT_CAP = "application/cap+xml, application/atom+xml;q=0.9, application/xml;q=0.8, */*;q=0.5"


class FetchError(Exception):
    """The source did not answer usefully: network error, timeout, HTTP error, too large."""


@dataclass
class Fetched:
    not_modified: bool
    body: bytes = b""
    etag: str = ""
    last_modified: str = ""


def fetch(url: str, *, etag: str = "", last_modified: str = "", timeout: float, accept: str = "*/*") -> Fetched:
    """GET `url`, sending the validators of the last answer; a 304 comes back as not_modified."""
    headers = {"User-Agent": USER_AGENT, "Accept-Encoding": "identity", "Accept": accept}
    if etag:
        headers["If-None-Match"] = etag
    if last_modified:
        headers["If-Modified-Since"] = last_modified
    request = urllib.request.Request(url, headers=headers)  # noqa: S310 - http(s) only, checked in settings
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            body = response.read(MAX_BYTES + 1)
            if len(body) > MAX_BYTES:
                raise FetchError(f"larger than {MAX_BYTES} bytes")
            return Fetched(
                not_modified=False,
                body=body,
                etag=response.headers.get("ETag", ""),
                last_modified=response.headers.get("Last-Modified", ""),
            )
    except urllib.error.HTTPError as exc:
        if exc.code == 304:
            return Fetched(not_modified=True, etag=etag, last_modified=last_modified)
        raise FetchError(f"HTTP {exc.code} {exc.reason}") from None
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise FetchError(f"{type(reason).__name__}: {reason}"[:300]) from None
