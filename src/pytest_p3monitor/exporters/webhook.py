"""Post crossed rules to a Slack-compatible incoming webhook (ini ``p3monitor_webhook = URL``).

The message is a ``{"text": ...}`` payload in Slack's mrkdwn, which Slack, Mattermost,
Rocket.Chat and Discord's ``/slack`` endpoint all accept. Critical alerts (``fail_on`` rules)
are always sent; warnings only when ``p3monitor_webhook_severity = warning``. A session
without such alerts sends nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from .redact import redact_text

__all__ = ["MAX_LINES", "Severity", "alert_message", "escape_mrkdwn", "parse_severity"]

Severity = Literal["critical", "warning"]
#: Alerts listed in one message at most; the rest are counted.
MAX_LINES = 20


def parse_severity(text: str) -> Severity:
    lowered = text.strip().lower()
    if lowered in ("critical", "error", "fail"):
        return "critical"
    if lowered in ("warning", "warn", "all"):
        return "warning"
    raise ValueError("must be critical or warning")


def escape_mrkdwn(text: str) -> str:
    """Escape the three characters Slack's mrkdwn gives a meaning (``& < >``)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def alert_message(
    report: Mapping[str, Any], *, min_severity: Severity = "critical"
) -> dict[str, Any] | None:
    """The webhook payload for the report's alerts, or None when there is nothing to send."""
    # Imported here: every --p3monitor session parses the severity setting above, only a
    # session with a webhook builds a message.
    from .figures import figures, is_critical

    fig = figures(report)
    alerts = [a for a in fig.alerts if min_severity == "warning" or is_critical(a)]
    if not alerts:
        return None
    alerts.sort(key=lambda a: not is_critical(a))
    critical = sum(1 for a in alerts if is_critical(a))
    where = []
    if fig.branch:
        where.append(f"branch `{escape_mrkdwn(fig.branch)}`")
    if fig.commit:
        where.append(f"commit `{escape_mrkdwn(fig.commit[:12])}`")
    run = report.get("run") if isinstance(report.get("run"), Mapping) else {}
    ci = run.get("ci") if isinstance(run, Mapping) and isinstance(run.get("ci"), Mapping) else {}
    url = ci.get("url") if isinstance(ci, Mapping) else None
    run_text = f"run `{escape_mrkdwn(fig.run_id)}`" if fig.run_id else "a run"
    if isinstance(url, str) and url.startswith(("http://", "https://")):
        run_text = f"<{redact_text(url).replace('|', '%7C')}|{run_text.replace('`', '')}>"
    head = (
        f":rotating_light: *p3monitor*: {len(alerts)} rule(s) crossed "
        f"({critical} critical) in {run_text}"
    )
    if where:
        head += " on " + ", ".join(where)
    lines = [head]
    for alert in alerts[:MAX_LINES]:
        level = "critical" if is_critical(alert) else "warning"
        rule = escape_mrkdwn(str(alert.get("rule") or alert.get("metric") or "rule"))
        message = escape_mrkdwn(" ".join(str(alert.get("message") or "").split()))[:300]
        lines.append(f"• *{level}* `{rule}`" + (f": {message}" if message else ""))
    if len(alerts) > MAX_LINES:
        lines.append(f"… and {len(alerts) - MAX_LINES} more")
    if fig.health_score is not None:
        lines.append(f"Health score {fig.health_score:.1f}/100, {fig.tests} tests")
    return {"text": "\n".join(lines)}
