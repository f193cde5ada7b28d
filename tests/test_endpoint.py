"""The HTTP endpoint exporter and the redaction helper, against a real server on loopback."""

from __future__ import annotations

import json
import string
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pytest_p3monitor.exporters.endpoint import (
    ConfigError,
    SendError,
    auth_headers,
    check_url,
    post_json,
    short_reason,
)
from pytest_p3monitor.exporters.redact import (
    MASK,
    is_secret_name,
    redact_obj,
    redact_text,
    redact_url,
    url_secrets,
)

from exporter_servers import RecordingServer, refused_url

REPORT = {"schema": "p3monitor-report/1", "run": {"id": "r-1"}, "health_score": 91.5}


@pytest.fixture
def server() -> Iterator[RecordingServer]:
    srv = RecordingServer()
    try:
        yield srv
    finally:
        srv.stop()


# -- redaction ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://bob:hunter22@example.com/x", "https://bob:***@example.com/x"),
        ("https://example.com/r?token=abc123&page=2", "https://example.com/r?token=***&page=2"),
        ("http://h:8080/p?X-Amz-Signature=ff00&a=b", "http://h:8080/p?X-Amz-Signature=***&a=b"),
        ("https://hooks.slack.com/services/T0/B0/XYZXYZXYZXYZ", "https://hooks.slack.com/***"),
        ("https://ghp_0123456789abcdefghij@github.com/o/r", "https://***@github.com/o/r"),
        ("http://plain.example/path?page=1", "http://plain.example/path?page=1"),
    ],
)
def test_redact_url(url: str, expected: str) -> None:
    assert redact_url(url) == expected


def test_redact_url_hide_path() -> None:
    assert redact_url("https://chat.example/hooks/abcdef123", hide_path=True) == (
        "https://chat.example/***"
    )


@pytest.mark.parametrize(
    ("name", "secret"),
    [
        ("access_token", True),
        ("X-Api-Key", True),
        ("db_password", True),
        ("clientSecret", True),
        ("sig", True),
        ("author", False),
        ("design", False),
        ("page", False),
        ("monkey", False),
        ("key", False),
        ("AWS_SECRET_ACCESS_KEY", True),
        ("private_key", True),
    ],
)
def test_is_secret_name(name: str, secret: bool) -> None:
    assert is_secret_name(name) is secret


def test_redact_text_masks_what_http_libraries_print() -> None:
    text = (
        "HTTPConnectionPool(host='h', port=1): Max retries exceeded with url: "
        "/r?access_token=s3cr3tvalue&a=b https://u:pw12345@h/x Authorization: Bearer abcdefghijk"
    )
    out = redact_text(text)
    for secret in ("s3cr3tvalue", "pw12345", "abcdefghijk"):
        assert secret not in out
    assert "a=b" in out
    assert "host='h'" in out


@pytest.mark.parametrize(
    "text",
    [
        "tests/test_token.py::test_login",
        "tests/test_auth.py::TestPassword::test_reset[case-1]",
        "design=x author=y key=3 page: 2",
        "2026-01-01T00:00:00Z",
    ],
)
def test_redact_text_leaves_ordinary_text_alone(text: str) -> None:
    assert redact_text(text) == text


def test_redact_text_known_secrets_also_url_quoted() -> None:
    out = redact_text("sent to http://x/?q=p%40ss%2Fword and p@ss/word", ["p@ss/word"])
    assert "p@ss/word" not in out
    assert "p%40ss%2Fword" not in out


def test_redact_obj() -> None:
    data = {"password": "x1", "run": {"url": "http://a:bcdef@h/"}, "author": "me", "n": 3}
    assert redact_obj(data) == {
        "password": MASK,
        "run": {"url": f"http://a:{MASK}@h/"},
        "author": "me",
        "n": 3,
    }


_secret = st.text(string.ascii_letters + string.digits + "-_.~!$*+", min_size=10, max_size=40)


@given(password=_secret, token=_secret)
def test_secrets_in_urls_never_survive(password: str, token: str) -> None:
    url = f"https://user:{password}@ci.example:8443/api/v1?token={token}&page=2"
    for shown in (redact_url(url), redact_text(f"failed: {url} (x)"), redact_text(url, [])):
        assert password not in shown
        assert token not in shown
    assert set(url_secrets(url)) >= {password, token}


@given(st.text(max_size=200))
def test_redact_text_is_idempotent_and_total(text: str) -> None:
    once = redact_text(text)
    assert redact_text(once) == once


# -- URLs and auth --------------------------------------------------------------------------


@pytest.mark.parametrize("url", ["not a url", "ftp://h/x", "http://", "http://h:99999/", "h/x"])
def test_check_url_rejects(url: str) -> None:
    with pytest.raises(ConfigError, match="valid URL"):
        check_url(url, "p3monitor_endpoint")


def test_check_url_message_hides_secrets() -> None:
    with pytest.raises(ConfigError) as info:
        check_url("ftp://u:topsecretpw@h/x", "p3monitor_endpoint")
    assert "topsecretpw" not in str(info.value)


def test_auth_headers() -> None:
    env = {"TOK": "abc123", "BASIC": "Basic dXNlcjpwdw=="}
    assert auth_headers(None, environ=env) == {}
    assert auth_headers("TOK", environ=env) == {"Authorization": "Bearer abc123"}
    assert auth_headers("BASIC", environ=env) == {"Authorization": "Basic dXNlcjpwdw=="}
    assert auth_headers("TOK", "X-Api-Key", environ=env) == {"X-Api-Key": "abc123"}
    with pytest.raises(ConfigError, match="MISSING"):
        auth_headers("MISSING", environ=env)


# -- sending --------------------------------------------------------------------------------


def test_post_json_sends_the_report_with_auth(server: RecordingServer) -> None:
    status = post_json(
        f"{server.url}/ingest",
        REPORT,
        headers={"Authorization": "Bearer tok-123456"},
        timeout=5,
    )
    assert status == 200
    (request,) = server.requests
    assert request.path == "/ingest"
    assert request.json() == REPORT
    assert request.headers["Content-Type"] == "application/json"
    assert request.headers["Authorization"] == "Bearer tok-123456"
    assert request.headers["User-Agent"].startswith("pytest-p3monitor/")


def test_post_json_retries_5xx_then_succeeds(server: RecordingServer) -> None:
    server.fail_first = 2
    assert post_json(server.url, REPORT, timeout=10, retries=2, backoff=0.05) == 200
    assert len(server.requests) == 3


def test_post_json_gives_up_after_retries(server: RecordingServer) -> None:
    server.mode = "fail"
    with pytest.raises(SendError) as info:
        post_json(server.url, REPORT, timeout=10, retries=2, backoff=0.05)
    assert info.value.attempts == 3
    assert info.value.status == 500
    assert "HTTP 500" in str(info.value)
    assert len(server.requests) == 3


def test_post_json_does_not_retry_client_errors(server: RecordingServer) -> None:
    server.mode, server.status = "status", 401
    with pytest.raises(SendError, match="HTTP 401") as info:
        post_json(server.url, REPORT, timeout=10, retries=3, backoff=0.05)
    assert info.value.attempts == 1
    assert len(server.requests) == 1


def test_post_json_refused_is_quick() -> None:
    started = time.monotonic()
    with pytest.raises(SendError, match="connection failed") as info:
        post_json(refused_url(), REPORT, timeout=5, retries=2, backoff=0.05)
    assert info.value.attempts == 3
    assert time.monotonic() - started < 3


def test_post_json_hang_is_bounded_by_the_timeout(server: RecordingServer) -> None:
    server.mode = "hang"
    started = time.monotonic()
    with pytest.raises(SendError, match=r"no answer within 1\.5 s"):
        post_json(server.url, REPORT, timeout=1.5, retries=3, backoff=0.05)
    elapsed = time.monotonic() - started
    assert 1.4 < elapsed < 3.5


def test_post_json_errors_never_show_secrets(server: RecordingServer) -> None:
    server.mode, server.status = "status", 403
    url = f"http://robot:hunter2hunter2@127.0.0.1:{server.port}/in?api_key=KEY0123456789"
    with pytest.raises(SendError) as info:
        post_json(url, REPORT, headers={"X-Api-Key": "HEADERSECRET42"}, timeout=5)
    message = str(info.value)
    for secret in ("hunter2hunter2", "KEY0123456789", "HEADERSECRET42"):
        assert secret not in message
    assert "HTTP 403" in message
    # the header and the URL's credentials (as basic auth) were sent all the same
    assert server.requests[0].headers["X-Api-Key"] == "HEADERSECRET42"
    assert server.requests[0].headers["Authorization"].startswith("Basic ")


def test_post_json_rejects_bad_url_without_network() -> None:
    with pytest.raises(ConfigError):
        post_json("htp:/nowhere", REPORT)


# -- the plugin -----------------------------------------------------------------------------

TOKEN = "tok_9f8e7d6c5b4a3210"


def make_suite(pytester: pytest.Pytester, url: str, *, timeout: float = 5, extra: str = "") -> None:
    pytester.makeini(
        f"""
        [pytest]
        p3monitor_endpoint = {url}
        p3monitor_endpoint_auth_env = P3_TEST_TOKEN
        p3monitor_export_timeout = {timeout}
        {extra}
        """
    )
    pytester.makepyfile("def test_a(): pass\ndef test_b(): pass\n")


def outbox_files(pytester: pytest.Pytester) -> list[Path]:
    return sorted((pytester.path / ".p3monitor" / "outbox" / "endpoint").glob("*.json"))


def ewarnings(result: pytest.RunResult) -> list[str]:
    return [ln for ln in result.outlines if "ExportWarning" in ln]


@pytest.fixture
def token(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("P3_TEST_TOKEN", TOKEN)
    return TOKEN


def test_plugin_posts_the_report(
    pytester: pytest.Pytester, server: RecordingServer, token: str
) -> None:
    make_suite(pytester, f"{server.url}/api/reports")
    result = pytester.runpytest("--p3monitor", "--p3monitor-json", "report.json")
    assert result.ret == pytest.ExitCode.OK
    (request,) = server.requests
    assert request.path == "/api/reports"
    assert request.headers["Authorization"] == f"Bearer {token}"
    sent = request.json()
    written = json.loads((pytester.path / "report.json").read_text())
    assert sent["schema"] == "p3monitor-report/1"
    assert sent["run"]["id"] == written["run"]["id"]
    assert [t["nodeid"] for t in sent["tests"]] == [t["nodeid"] for t in written["tests"]]
    assert not ewarnings(result)
    assert outbox_files(pytester) == []
    result.stdout.fnmatch_lines([f"exported to endpoint: {server.url}/api/reports (HTTP 200)"])


def test_plugin_custom_auth_header(
    pytester: pytest.Pytester, server: RecordingServer, token: str
) -> None:
    make_suite(pytester, server.url, extra="p3monitor_endpoint_auth_header = X-Api-Key")
    pytester.runpytest("--p3monitor")
    (request,) = server.requests
    assert request.headers["X-Api-Key"] == token
    assert "Authorization" not in request.headers


@pytest.mark.parametrize("green", [True, False])
def test_plugin_endpoint_500_keeps_the_report(
    pytester: pytest.Pytester, server: RecordingServer, token: str, green: bool
) -> None:
    server.mode = "fail"
    make_suite(pytester, server.url, extra="p3monitor_endpoint_retries = 1")
    if not green:
        pytester.makepyfile(test_red="def test_red(): assert 0")
    result = pytester.runpytest("--p3monitor")
    assert result.ret == (pytest.ExitCode.OK if green else pytest.ExitCode.TESTS_FAILED)
    assert len(server.requests) == 2  # one retry
    (warning,) = ewarnings(result)
    assert "report not sent to the endpoint (ini p3monitor_endpoint)" in warning
    assert "HTTP 500" in warning
    assert "p3monitor export --flush" in warning
    (kept,) = outbox_files(pytester)
    entry = json.loads(kept.read_text())
    assert entry["kind"] == "endpoint"
    assert entry["payload"]["schema"] == "p3monitor-report/1"
    assert entry["payload"]["run"]["id"] == kept.stem


def test_plugin_endpoint_refused(pytester: pytest.Pytester, token: str) -> None:
    make_suite(pytester, refused_url())
    started = time.monotonic()
    result = pytester.runpytest("--p3monitor")
    assert time.monotonic() - started < 15
    assert result.ret == pytest.ExitCode.OK
    (warning,) = ewarnings(result)
    assert "Connection refused" in warning
    assert len(outbox_files(pytester)) == 1


def test_plugin_endpoint_hanging_is_bounded(
    pytester: pytest.Pytester, server: RecordingServer, token: str
) -> None:
    server.mode = "hang"
    make_suite(pytester, server.url, timeout=2)
    started = time.monotonic()
    result = pytester.runpytest("--p3monitor")
    elapsed = time.monotonic() - started
    assert result.ret == pytest.ExitCode.OK
    (warning,) = ewarnings(result)
    assert "no answer within 2 s" in warning
    assert len(outbox_files(pytester)) == 1
    assert elapsed < 15


def test_plugin_auth_variable_unset(
    pytester: pytest.Pytester, server: RecordingServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("P3_TEST_TOKEN", raising=False)
    make_suite(pytester, server.url)
    result = pytester.runpytest("--p3monitor")
    assert result.ret == pytest.ExitCode.OK
    assert server.requests == []
    (warning,) = ewarnings(result)
    assert "P3_TEST_TOKEN" in warning and "is not set" in warning
    assert len(outbox_files(pytester)) == 1


def test_plugin_bad_retries_is_a_usage_error(pytester: pytest.Pytester) -> None:
    make_suite(pytester, "http://127.0.0.1:1/", extra="p3monitor_endpoint_retries = -1")
    result = pytester.runpytest("--p3monitor")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*ini p3monitor_endpoint_retries = '-1' is not valid*"])


def test_secrets_never_reach_output_reports_or_store(
    pytester: pytest.Pytester, server: RecordingServer, token: str
) -> None:
    server.mode, server.status = "status", 403
    password = "urlpassw0rd77"
    url = f"http://robot:{password}@127.0.0.1:{server.port}/in?api_key=QUERYKEY12345"
    make_suite(pytester, url)
    result = pytester.runpytest(
        "--p3monitor", "--p3monitor-json", "report.json", "--p3monitor-openmetrics", "om.txt"
    )
    assert result.ret == pytest.ExitCode.OK
    assert server.requests[0].headers["Authorization"].startswith("Bearer ")
    texts = [result.stdout.str(), result.stderr.str()]
    texts += [
        p.read_bytes().decode("utf-8", "replace")
        for p in pytester.path.rglob("*")
        if p.is_file() and not p.name.endswith(".ini")
    ]
    for secret in (token, password, "QUERYKEY12345"):
        assert not any(secret in text for text in texts), secret
    assert len(outbox_files(pytester)) == 1


@pytest.mark.parametrize(
    ("error", "reason"),
    [
        (
            "HTTPConnectionPool(host='127.0.0.1', port=1): Max retries exceeded (Caused by "
            "NewConnectionError('<urllib3.connection.HTTPConnection object>: Failed to "
            "establish a new connection: [Errno 111] Connection refused'))",
            "[Errno 111] Connection refused",
        ),
        ("<urlopen error [Errno 111] Connection refused>", "[Errno 111] Connection refused"),
    ],
)
def test_short_reason(error: str, reason: str) -> None:
    assert short_reason(OSError(error)) == reason
