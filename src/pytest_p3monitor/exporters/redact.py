"""Keep secrets out of everything p3monitor prints, writes, sends or stores.

Secrets reach p3monitor in URLs (``https://user:password@host``, ``?token=...``, the path of
a Slack incoming webhook) and in environment variables named in the ini file (an endpoint's
auth token). Error messages of HTTP libraries quote URLs, so every text that leaves an
exporter goes through :func:`redact_text` with the secrets it knows about.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from typing import Any
from urllib.parse import parse_qsl, quote, unquote_plus, urlencode, urlsplit, urlunsplit

__all__ = ["MASK", "is_secret_name", "redact_obj", "redact_text", "redact_url", "url_secrets"]

MASK = "***"

#: Words that make a field or query parameter name secret (``access_token``, ``X-Api-Key``,
#: ``db_password``, ``X-Amz-Signature``); compared per word, so ``author`` or ``design`` are not.
_SECRET_WORDS = frozenset(
    {
        "token",
        "secret",
        "password",
        "passwd",
        "pwd",
        "pass",
        "apikey",
        "signature",
        "sig",
        "auth",
        "authorization",
        "credential",
        "credentials",
        "sessionid",
        "cookie",
    }
)
_SECRET_SUFFIXES = (
    "token",
    "secret",
    "password",
    "passwd",
    "apikey",
    "accesskey",
    "privatekey",
    "secretkey",
)

#: Hosts whose URL path itself is the secret (incoming webhooks).
_SECRET_PATH_HOSTS = ("hooks.slack.com", "discord.com", "discordapp.com", "webhook.office.com")

# Patterns, compiled (and cached by ``re``) on first use: every --p3monitor session imports
# this module, few ever redact anything, and compiling the four at import took ~1 ms.
_URL_USERINFO = r"(?P<scheme>[A-Za-z][A-Za-z0-9+.\-]*://)(?P<userinfo>[^/\s@'\"]+)@"
_NAME_VALUE = r"(?P<name>[A-Za-z][A-Za-z0-9_.\-]*)(?P<sep>=|:[ \t]+)(?P<value>[^&\s'\",;}?=]+)"
_AUTH_SCHEME = r"(?i)\b(?P<scheme>Bearer|Basic|Token)\s+[A-Za-z0-9._~+/=\-]{6,}"
_WEBHOOK_PATH = (
    r"(?i)(?P<host>hooks\.slack\.com|discord(?:app)?\.com/api/webhooks|webhook\.office\.com)"
    r"/[^\s'\"<>]+"
)

#: Shorter strings are not treated as secrets to mask everywhere (they would mangle text).
_MIN_SECRET_LEN = 4


@functools.lru_cache(maxsize=4096)
def is_secret_name(name: str) -> bool:
    """Whether a field or query parameter called ``name`` holds a secret."""
    spaced = re.sub(r"([a-z0-9])([A-Z])", r"\1 \2", name).lower()
    words = [w for w in re.split(r"[^a-z0-9]+", spaced) if w]
    joined = "".join(words)
    return any(w in _SECRET_WORDS for w in words) or joined.endswith(_SECRET_SUFFIXES)


def url_secrets(url: str) -> list[str]:
    """The secret parts of ``url``: its password, secret query values, a webhook's path."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return []
    found: list[str] = []
    if parts.password:
        found.append(parts.password)
    if parts.username and parts.password is None and len(parts.username) >= 16:
        found.append(parts.username)  # a token used as the user name (https://TOKEN@host)
    for pair in re.split(r"[&;]", parts.query):
        name, _, raw = pair.partition("=")
        if raw and is_secret_name(unquote_plus(name)):
            found.extend({raw, unquote_plus(raw)})
    host = (parts.hostname or "").lower()
    if any(host.endswith(h) for h in _SECRET_PATH_HOSTS):
        found.extend(seg for seg in parts.path.split("/") if len(seg) >= 8)
    return [s for s in found if len(s) >= _MIN_SECRET_LEN]


def redact_url(url: str, *, hide_path: bool = False) -> str:
    """``url`` safe to print: password and secret query values masked.

    With ``hide_path`` (incoming webhooks, whose path is the key) only the scheme and the
    host are kept. A string that is not a URL is returned through :func:`redact_text`.
    """
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return redact_text(url)
    if not parts.scheme or not parts.netloc:
        return redact_text(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = host if port is None else f"{host}:{port}"
    if parts.username is not None:
        if parts.password is not None:
            netloc = f"{quote(parts.username, safe='')}:{MASK}@{netloc}"
        elif len(parts.username) >= 16:
            netloc = f"{MASK}@{netloc}"
        else:
            netloc = f"{quote(parts.username, safe='')}@{netloc}"
    lowered = host.lower()
    if hide_path or any(lowered.endswith(h) for h in _SECRET_PATH_HOSTS):
        path = "/" + MASK if parts.path.strip("/") else parts.path
        return urlunsplit((parts.scheme, netloc, path, "", ""))
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        query = urlencode(
            [(name, MASK if is_secret_name(name) else value) for name, value in pairs], safe="*"
        )
    return urlunsplit((parts.scheme, netloc, parts.path, query, ""))


def _prepare(secrets: Iterable[str]) -> tuple[tuple[str, str], ...]:
    """Known secrets, longest first, each with its URL-quoted form."""
    unique = sorted({x for x in secrets if x and len(x) >= _MIN_SECRET_LEN}, key=len, reverse=True)
    return tuple((x, quote(x, safe="")) for x in unique)


def _userinfo(match: re.Match[str]) -> str:
    user, sep, _password = match.group("userinfo").partition(":")
    if sep:
        return f"{match.group('scheme')}{user}:{MASK}@"
    if len(user) >= 16:
        return f"{match.group('scheme')}{MASK}@"
    return match.group(0)


def _name_value(match: re.Match[str]) -> str:
    if match.group("value") == MASK or not is_secret_name(match.group("name")):
        return match.group(0)
    return f"{match.group('name')}{match.group('sep')}{MASK}"


def _redact(text: str, prepared: tuple[tuple[str, str], ...]) -> str:
    for secret, quoted in prepared:
        if secret in text:
            text = text.replace(secret, MASK)
        if quoted != secret and quoted in text:
            text = text.replace(quoted, MASK)
    # Cheap tests first: most strings (node ids, outcomes) need none of the patterns.
    if "@" in text:
        text = re.sub(_URL_USERINFO, _userinfo, text)
    lowered = text.lower()
    if "hook" in lowered or "discord" in lowered:
        text = re.sub(_WEBHOOK_PATH, lambda m: f"{m.group('host')}/{MASK}", text)
    if "bearer" in lowered or "basic" in lowered or "token" in lowered:
        text = re.sub(_AUTH_SCHEME, lambda m: f"{m.group('scheme')} {MASK}", text)
    if "=" in text or ": " in text or ":\t" in text:
        text = re.sub(_NAME_VALUE, _name_value, text)
    return text


def redact_text(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` with the given secrets and anything that looks like a credential masked."""
    return _redact(text, _prepare(secrets))


def redact_obj(obj: Any, secrets: Iterable[str] = ()) -> Any:
    """A copy of a JSON-like value with every string redacted and secret-named fields masked."""
    return _redact_obj(obj, _prepare(secrets))


def _redact_obj(obj: Any, prepared: tuple[tuple[str, str], ...]) -> Any:
    if isinstance(obj, str):
        return _redact(obj, prepared)
    if isinstance(obj, dict):
        out: dict[Any, Any] = {}
        for key, value in obj.items():
            if isinstance(key, str) and isinstance(value, str) and value and is_secret_name(key):
                out[key] = MASK
            else:
                out[key] = _redact_obj(value, prepared)
        return out
    if isinstance(obj, (list, tuple)):
        return [_redact_obj(item, prepared) for item in obj]
    return obj
