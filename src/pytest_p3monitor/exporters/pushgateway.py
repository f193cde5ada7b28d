"""Push the session's metrics to a Prometheus Pushgateway (ini ``p3monitor_pushgateway = URL``).

The same fixed metric set as the OpenMetrics file, with test durations as one histogram,
pushed with ``prometheus_client.push_to_gateway`` (PUT: the group is replaced by this run's
figures) and grouped by job. ``https://user:password@host`` uses basic auth; the password
never appears in messages.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from .endpoint import ConfigError, SendError, check_url, short_reason, split_credentials
from .openmetrics import ReportCollector
from .redact import redact_text, redact_url, url_secrets

__all__ = ["DEFAULT_JOB", "DEFAULT_TIMEOUT", "push", "split_credentials"]

DEFAULT_JOB = "pytest"
DEFAULT_TIMEOUT = 5.0


def push(
    url: str,
    report: Mapping[str, Any],
    *,
    job: str = DEFAULT_JOB,
    grouping_key: Mapping[str, str] | None = None,
    timeout: float = DEFAULT_TIMEOUT,
) -> str:
    """Push ``report``'s metrics; return the gateway's URL as it may be shown.

    Raises :class:`ConfigError` for an unusable URL and :class:`SendError` when the push
    fails (gateway down, refused, timed out, answered an error).
    """
    from prometheus_client import CollectorRegistry
    from prometheus_client.exposition import basic_auth_handler, default_handler, push_to_gateway

    check_url(url, "pushgateway")
    if not job.strip():
        raise ConfigError("the Pushgateway job name is empty")
    shown = redact_url(url)
    secrets = url_secrets(url)
    gateway, user, password = split_credentials(url.strip())

    handler: Callable[..., Callable[[], None]]
    if user is not None:

        def handler(
            url: str, method: str, timeout: float | None, headers: Any, data: bytes
        ) -> Callable[[], None]:
            result: Callable[[], None] = basic_auth_handler(
                url, method, timeout, headers, data, user, password or ""
            )
            return result

    else:
        handler = default_handler

    registry = CollectorRegistry(auto_describe=False)
    registry.register(ReportCollector(report, with_histogram=True))
    try:
        push_to_gateway(
            gateway.rstrip("/"),
            job=job,
            registry=registry,
            grouping_key=dict(grouping_key or {}),
            timeout=timeout,
            handler=handler,
        )
    except Exception as exc:  # urllib raises URLError, HTTPError, OSError, TimeoutError ...
        detail = short_reason(exc) or type(exc).__name__
        if isinstance(exc, TimeoutError) or "timed out" in detail:
            detail = f"no answer within {timeout:g} s"
        raise SendError(redact_text(f"pushgateway {shown}: {detail}", secrets)) from None
    return shown
