"""POST the JSON health report to an HTTP endpoint (ini ``p3monitor_endpoint = URL``).

Sending is bounded: the whole exchange, retries and back-off included, ends within
``timeout`` seconds (plus one last read that started before the deadline). Connection
errors, timeouts, 408/425/429 and 5xx answers are retried with exponential back-off; any
other 4xx is final. Failure raises :class:`SendError` whose message is safe to print: the
URL and any known secret are masked.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit, urlunsplit

from .redact import redact_text, redact_url, url_secrets

if TYPE_CHECKING:
    import requests

__all__ = [
    "DEFAULT_RETRIES",
    "DEFAULT_TIMEOUT",
    "ConfigError",
    "SendError",
    "auth_headers",
    "check_url",
    "post_json",
    "short_reason",
    "split_credentials",
]

DEFAULT_TIMEOUT = 10.0
DEFAULT_RETRIES = 2
DEFAULT_BACKOFF = 0.5
_RETRY_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})


class ConfigError(ValueError):
    """A setting of an exporter is unusable (bad URL, auth variable unset)."""


@dataclass
class SendError(Exception):
    """Sending failed; ``message`` is redacted and says what happened."""

    message: str
    attempts: int = 0
    status: int | None = None

    def __str__(self) -> str:
        return self.message


def check_url(url: str, what: str = "URL") -> str:
    """``url`` if it is an absolute http(s) URL with a host, else :class:`ConfigError`."""
    text = url.strip()
    try:
        parts = urlsplit(text)
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError as exc:
        raise ConfigError(f"{what} {redact_url(text)!r} is not a valid URL ({exc})") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(
            f"{what} {redact_url(text, hide_path=True)!r} is not a valid URL; "
            "expected http://host[:port]/path or https://..."
        )
    if any(c.isspace() for c in text):
        raise ConfigError(f"{what} {redact_url(text, hide_path=True)!r} contains white space")
    return text


def auth_headers(
    env_name: str | None,
    header: str | None = None,
    environ: Mapping[str, str] = os.environ,
) -> dict[str, str]:
    """The auth header whose secret is in the environment variable ``env_name``.

    With the default header ``Authorization`` a bare token becomes ``Bearer TOKEN`` (a value
    that already has a scheme, such as ``Basic ...``, is sent as it is); any other header
    name gets the value as it is (``X-Api-Key: TOKEN``).
    """
    if not env_name:
        return {}
    value = environ.get(env_name, "").strip()
    if not value:
        raise ConfigError(f"the environment variable {env_name} (the endpoint's token) is not set")
    name = (header or "Authorization").strip()
    if name.lower() == "authorization" and " " not in value:
        value = f"Bearer {value}"
    return {name: value}


def split_credentials(url: str) -> tuple[str, str | None, str | None]:
    """``(url without user:password, user, password)``."""
    parts = urlsplit(url)
    if parts.username is None:
        return url, None, None
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = host if parts.port is None else f"{host}:{parts.port}"
    bare = urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
    password = unquote(parts.password) if parts.password is not None else None
    return bare, unquote(parts.username), password


def short_reason(exc: BaseException) -> str:
    """The useful part of an HTTP library's error: ``[Errno 111] Connection refused``."""
    text = str(exc)
    found = re.search(r"\[Errno -?\d+\][^\"')(<>]*", text)
    if found:
        return found.group(0).strip()
    for marker in ("Failed to resolve", "Name or service not known", "timed out"):
        if marker in text:
            return marker
    return text if len(text) <= 200 else text[:199] + "…"


def _retry_after(response: requests.Response) -> float | None:
    value = response.headers.get("Retry-After", "")
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


def post_json(
    url: str,
    payload: Any,
    *,
    headers: Mapping[str, str] | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    retries: int = DEFAULT_RETRIES,
    backoff: float = DEFAULT_BACKOFF,
    secrets: Iterable[str] = (),
    what: str = "endpoint",
    hide_path: bool = False,
    session: requests.Session | None = None,
) -> int:
    """POST ``payload`` as JSON; return the 2xx status, or raise :class:`SendError`."""
    import requests

    from .. import __version__

    check_url(url, what)
    known = [*secrets, *url_secrets(url), *(headers or {}).values()]
    shown = redact_url(url, hide_path=hide_path)
    body = json.dumps(payload, default=str, allow_nan=False).encode("utf-8")
    all_headers = {
        "Content-Type": "application/json",
        "User-Agent": f"pytest-p3monitor/{__version__}",
        **(headers or {}),
    }
    # Credentials in the URL become basic auth, unless an Authorization header is given
    # (requests would otherwise let the URL's win over the configured token).
    bare, user, password = split_credentials(url.strip())
    auth = None
    if user is not None and not any(k.lower() == "authorization" for k in all_headers):
        auth = (user, password or "")
    deadline = time.monotonic() + timeout
    owned = session is None
    http = session if session is not None else requests.Session()
    last = "no attempt made"
    status: int | None = None
    attempts = 0
    try:
        for attempt in range(retries + 1):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            attempts += 1
            wait = backoff * (2**attempt)
            try:
                response = http.post(
                    bare,
                    data=body,
                    auth=auth,
                    headers=all_headers,
                    timeout=(min(remaining, 5.0), remaining),
                    allow_redirects=False,
                )
            except requests.Timeout:
                last = f"no answer within {timeout:g} s"
            except requests.RequestException as exc:
                last = f"connection failed ({short_reason(exc)})"
            else:
                status = response.status_code
                response.close()
                if 200 <= status < 300:
                    return status
                last = f"HTTP {status} {response.reason or ''}".rstrip()
                if status not in _RETRY_STATUS:
                    raise SendError(
                        redact_text(f"{what} {shown} answered {last}", known), attempts, status
                    )
                after = _retry_after(response)
                if after is not None:
                    wait = max(wait, after)
            if attempt < retries:
                time.sleep(max(0.0, min(wait, deadline - time.monotonic())))
    finally:
        if owned:
            http.close()
    raise SendError(
        redact_text(f"{what} {shown}: {last} after {attempts} attempt(s)", known), attempts, status
    )
