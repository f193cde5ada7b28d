"""Alerts to a Slack-compatible incoming webhook, against a real server on loopback."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pytest_p3monitor.exporters.webhook import (
    MAX_LINES,
    alert_message,
    escape_mrkdwn,
    parse_severity,
)

from exporter_servers import RecordingServer


@pytest.fixture
def server() -> Iterator[RecordingServer]:
    srv = RecordingServer()
    try:
        yield srv
    finally:
        srv.stop()


def report(*alerts: dict[str, Any], **run: Any) -> dict[str, Any]:
    return {
        "run": {"id": "run-7", "branch": "main", "commit": "abcdef0123456789", "ci": {}, **run},
        "health_score": 61.25,
        "metrics": {"reliability": {"tests": 12}},
        "alerts": list(alerts),
    }


CRITICAL = {"rule": "success_rate < 95%", "severity": "critical", "message": "success 80% < 95%"}
WARNING = {"rule": "health_score < 85", "severity": "warning", "message": "health 61"}


def test_message_lists_critical_alerts() -> None:
    message = alert_message(report(CRITICAL, WARNING))
    assert message is not None
    lines = message["text"].splitlines()
    assert lines[0] == (
        ":rotating_light: *p3monitor*: 1 rule(s) crossed (1 critical) in run `run-7` "
        "on branch `main`, commit `abcdef012345`"
    )
    assert lines[1] == "• *critical* `success_rate &lt; 95%`: success 80% &lt; 95%"
    assert "health_score" not in message["text"]
    assert lines[-1] == "Health score 61.2/100, 12 tests"


def test_warnings_too_when_asked() -> None:
    message = alert_message(report(WARNING, CRITICAL), min_severity="warning")
    assert message is not None
    lines = message["text"].splitlines()
    assert "2 rule(s) crossed (1 critical)" in lines[0]
    assert lines[1].startswith("• *critical*")  # critical first
    assert lines[2].startswith("• *warning* `health_score &lt; 85`")


def test_nothing_to_send() -> None:
    assert alert_message(report()) is None
    assert alert_message(report(WARNING)) is None
    assert alert_message({}) is None


def test_run_link_from_ci_url() -> None:
    message = alert_message(report(CRITICAL, ci={"url": "https://ci.example/runs/9"}))
    assert message is not None
    assert "<https://ci.example/runs/9|run run-7>" in message["text"]


def test_many_alerts_are_counted() -> None:
    alerts = [{**CRITICAL, "rule": f"r{i}"} for i in range(MAX_LINES + 7)]
    message = alert_message(report(*alerts))
    assert message is not None
    assert message["text"].count("• ") == MAX_LINES
    assert "… and 7 more" in message["text"]


@given(st.text())
def test_escape_mrkdwn_leaves_no_control_characters(text: str) -> None:
    escaped = escape_mrkdwn(text)
    assert "<" not in escaped and ">" not in escaped
    unescaped = escaped.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
    assert unescaped == text


@pytest.mark.parametrize(
    ("text", "expected"), [("critical", "critical"), ("WARNING", "warning"), (" all ", "warning")]
)
def test_parse_severity(text: str, expected: str) -> None:
    assert parse_severity(text) == expected


def test_parse_severity_rejects() -> None:
    with pytest.raises(ValueError, match="critical or warning"):
        parse_severity("info")


# -- the plugin -----------------------------------------------------------------------------

FAILING_GATE = """
    [pytest]
    p3monitor_fail_on = success_rate >= 0%
    p3monitor_warn_on = tests > 0
    p3monitor_webhook = {url}
    p3monitor_export_timeout = {timeout}
    {extra}
"""


def make(pytester: pytest.Pytester, url: str, *, timeout: float = 5, extra: str = "") -> None:
    pytester.makeini(FAILING_GATE.format(url=url, timeout=timeout, extra=extra))
    pytester.makepyfile("def test_a(): pass\n")


def test_plugin_posts_crossed_rules(pytester: pytest.Pytester, server: RecordingServer) -> None:
    make(pytester, f"{server.url}/hooks/T0/B0/abcdefSECRET")
    result = pytester.runpytest("--p3monitor", "-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.TESTS_FAILED  # the gate, not the webhook
    (request,) = server.requests
    assert request.path == "/hooks/T0/B0/abcdefSECRET"
    text = request.json()["text"]
    assert "*critical* `success_rate &gt;= 0%`" in text
    assert "tests &gt; 0" not in text  # a warning: not sent by default
    assert "abcdefSECRET" not in result.stdout.str()
    result.stdout.fnmatch_lines([f"exported to webhook: {server.url}/*** (*"])


def test_plugin_posts_warnings_when_asked(
    pytester: pytest.Pytester, server: RecordingServer
) -> None:
    make(pytester, server.url, extra="p3monitor_webhook_severity = warning")
    pytester.runpytest("--p3monitor", "-p", "no:cacheprovider")
    (request,) = server.requests
    assert "*warning* `tests &gt; 0`" in request.json()["text"]


def test_plugin_sends_nothing_without_alerts(
    pytester: pytest.Pytester, server: RecordingServer
) -> None:
    pytester.makeini(f"[pytest]\np3monitor_webhook = {server.url}\np3monitor_fail_on = tests < 0\n")
    pytester.makepyfile("def test_a(): pass\n")
    result = pytester.runpytest("--p3monitor", "-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.OK
    assert server.requests == []


@pytest.mark.parametrize(
    "url",
    ["htp:/hooks.slack.com/services/T0/B0/SECRETPART99", "https://", "hooks.example/x"],
)
def test_plugin_malformed_url_is_one_warning(pytester: pytest.Pytester, url: str) -> None:
    make(pytester, url)
    result = pytester.runpytest("--p3monitor", "-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.TESTS_FAILED  # the gate alone decides
    warnings = [ln for ln in result.outlines if "ExportWarning" in ln]
    assert len(warnings) == 1, result.outlines
    assert "not a valid URL" in warnings[0]
    assert "SECRETPART99" not in result.stdout.str() + result.stderr.str()
    (kept,) = (pytester.path / ".p3monitor" / "outbox" / "webhook").glob("*.json")
    entry = json.loads(kept.read_text())
    assert "success_rate" in entry["payload"]["message"]["text"]
    assert "SECRETPART99" not in kept.read_text()


def test_plugin_server_failing_is_bounded_and_kept(
    pytester: pytest.Pytester, server: RecordingServer
) -> None:
    server.mode = "hang"
    make(pytester, server.url, timeout=1.5)
    started = time.monotonic()
    result = pytester.runpytest("--p3monitor", "-p", "no:cacheprovider")
    elapsed = time.monotonic() - started
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    assert elapsed < 15
    warnings = [ln for ln in result.outlines if "ExportWarning" in ln]
    assert len(warnings) == 1
    assert "no answer within 1.5 s" in warnings[0]
    assert list((pytester.path / ".p3monitor" / "outbox" / "webhook").glob("*.json"))


def _kept(path: Path) -> list[Path]:
    return sorted((path / ".p3monitor" / "outbox" / "webhook").glob("*.json"))
