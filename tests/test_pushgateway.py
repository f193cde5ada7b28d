"""Pushes to a REAL Prometheus Pushgateway (scripts/pushgateway.sh), read back over its API."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from pytest_p3monitor.exporters import pushgateway
from pytest_p3monitor.exporters.endpoint import ConfigError, SendError

from exporter_servers import Pushgateway, RecordingServer, refused_url, start_pushgateway

pytestmark = pytest.mark.needs_pushgateway

REPORT: dict[str, Any] = {
    "run": {"id": "r1", "finished_at": 1767323045.0},
    "health_score": 88.5,
    "metrics": {
        "performance": {"test_execution_time_s": 3.5, "total_time_s": 5.25},
        "reliability": {"tests": 3, "passed": 2, "failed": 1, "success_rate": 66.5},
        "resource_usage": {"process": {"rss_bytes_peak": 104857600}, "containers": []},
    },
    "tests": [
        {"nodeid": "t.py::a", "duration_s": 0.2},
        {"nodeid": "t.py::b", "duration_s": 3.3},
        {"nodeid": "t.py::c", "duration_s": 0.004},
    ],
    "alerts": [],
}


@pytest.fixture(scope="module")
def gateway() -> Iterator[Pushgateway]:
    with start_pushgateway() as gw:
        yield gw


def gauge(group: dict[str, Any], name: str, **labels: str) -> float:
    for metric in group[name]["metrics"]:
        extra = {k: v for k, v in metric["labels"].items() if k not in ("job", "instance")}
        if extra == labels:
            return float(metric["value"])
    raise AssertionError(f"no {name}{labels} in {group[name]}")


def test_push_and_read_back(gateway: Pushgateway) -> None:
    shown = pushgateway.push(gateway.url, REPORT, job="unit-push", timeout=5)
    assert shown == gateway.url
    group = gateway.group("unit-push")
    assert group["labels"] == {"job": "unit-push"}
    assert group["last_push_successful"] is True
    assert gauge(group, "p3monitor_tests", outcome="passed") == 2
    assert gauge(group, "p3monitor_tests", outcome="failed") == 1
    assert gauge(group, "p3monitor_success_ratio") == pytest.approx(0.665)
    assert gauge(group, "p3monitor_health_score") == 88.5
    assert gauge(group, "p3monitor_test_execution_seconds") == 3.5
    histogram = group["p3monitor_test_duration_seconds"]
    assert histogram["type"] == "HISTOGRAM"
    (series,) = histogram["metrics"]
    assert series["count"] == "3"
    assert float(series["sum"]) == pytest.approx(3.504)
    assert series["buckets"]["0.005"] == "1"
    assert series["buckets"]["0.25"] == "2"
    assert series["buckets"]["+Inf"] == "3"
    # no per-test labels anywhere
    for name, family in group.items():
        if isinstance(family, dict) and "metrics" in family:
            for metric in family["metrics"]:
                assert set(metric["labels"]) <= {"job", "instance", "outcome", "severity"}, name


def test_a_second_push_replaces_the_group(gateway: Pushgateway) -> None:
    pushgateway.push(gateway.url, REPORT, job="unit-replace", timeout=5)
    later = {**REPORT, "health_score": 42.0}
    pushgateway.push(gateway.url, later, job="unit-replace", timeout=5)
    assert gauge(gateway.group("unit-replace"), "p3monitor_health_score") == 42.0


def test_basic_auth_credentials_are_used_and_hidden(gateway: Pushgateway) -> None:
    host = gateway.url.removeprefix("http://")
    shown = pushgateway.push(f"http://ci:pushpass99@{host}", REPORT, job="unit-auth", timeout=5)
    assert "pushpass99" not in shown
    assert gateway.group("unit-auth")["last_push_successful"] is True


def test_split_credentials() -> None:
    assert pushgateway.split_credentials("http://u%40x:p%3Aw@h:9091/p") == (
        "http://h:9091/p",
        "u@x",
        "p:w",
    )
    assert pushgateway.split_credentials("http://h:9091") == ("http://h:9091", None, None)


def test_gateway_down_is_a_quick_send_error() -> None:
    started = time.monotonic()
    url = refused_url().replace("http://", "http://ci:secretpw123@")
    with pytest.raises(SendError) as info:
        pushgateway.push(url, REPORT, timeout=5)
    assert time.monotonic() - started < 2
    assert "Connection refused" in str(info.value)
    assert "secretpw123" not in str(info.value)


def test_gateway_hanging_is_bounded_by_the_timeout() -> None:
    server = RecordingServer()
    server.mode = "hang"
    try:
        started = time.monotonic()
        with pytest.raises(SendError, match="no answer within 1 s"):
            pushgateway.push(server.url, REPORT, timeout=1)
        assert time.monotonic() - started < 3
    finally:
        server.stop()


@pytest.mark.parametrize("url", ["127.0.0.1:9091", "gopher://h/", "http://h:port/"])
def test_bad_url(url: str) -> None:
    with pytest.raises(ConfigError, match="valid URL"):
        pushgateway.push(url, REPORT)


# -- the plugin -----------------------------------------------------------------------------

SUITE = """
    def test_a():
        pass

    def test_b():
        pass

    def test_c():
        assert 0
"""


def test_plugin_pushes_the_session(pytester: pytest.Pytester, gateway: Pushgateway) -> None:
    pytester.makeini(
        f"""
        [pytest]
        p3monitor_pushgateway = {gateway.url}
        p3monitor_pushgateway_job = suite-under-test
        """
    )
    pytester.makepyfile(SUITE)
    result = pytester.runpytest("--p3monitor", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=2, failed=1)
    result.stdout.fnmatch_lines([f"exported to Pushgateway: {gateway.url} (job suite-under-test)"])
    group = gateway.group("suite-under-test")
    assert gauge(group, "p3monitor_tests", outcome="passed") == 2
    assert gauge(group, "p3monitor_tests", outcome="failed") == 1
    (series,) = group["p3monitor_test_duration_seconds"]["metrics"]
    assert series["count"] == "3"
    assert not [ln for ln in result.outlines if "ExportWarning" in ln]


def test_plugin_env_variable_beats_nothing(
    pytester: pytest.Pytester, gateway: Pushgateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("P3MONITOR_PUSHGATEWAY", gateway.url)
    pytester.makeini("[pytest]\np3monitor_pushgateway_job = from-env\n")
    pytester.makepyfile(SUITE)
    pytester.runpytest("--p3monitor", "-p", "no:cacheprovider").assert_outcomes(passed=2, failed=1)
    assert gauge(gateway.group("from-env"), "p3monitor_tests", outcome="passed") == 2


@pytest.mark.parametrize("green", [True, False])
def test_plugin_gateway_down_is_one_warning(pytester: pytest.Pytester, green: bool) -> None:
    pytester.makeini(f"[pytest]\np3monitor_pushgateway = {refused_url()}\n")
    pytester.makepyfile("def test_a(): pass\n" if green else SUITE)
    started = time.monotonic()
    result = pytester.runpytest("--p3monitor", "-p", "no:cacheprovider")
    assert time.monotonic() - started < 20
    assert result.ret == (pytest.ExitCode.OK if green else pytest.ExitCode.TESTS_FAILED)
    warnings = [ln for ln in result.outlines if "ExportWarning" in ln]
    assert len(warnings) == 1, result.outlines
    assert "metrics not pushed (ini p3monitor_pushgateway)" in warnings[0]
    assert "Connection refused" in warnings[0]


def test_plugin_bad_job_is_a_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\np3monitor_pushgateway_job = a/b\n")
    pytester.makepyfile("def test_a(): pass\n")
    result = pytester.runpytest("--p3monitor", "-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*ini p3monitor_pushgateway_job = 'a/b' is not valid*"])
