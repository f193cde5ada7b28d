"""OpenMetrics text: the fixed metric set, base units, no per-test labels, the file option."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client.openmetrics.parser import text_string_to_metric_families

from pytest_p3monitor.exporters import openmetrics
from pytest_p3monitor.records import CIInfo, RunInfo, RunRow

REPORT: dict[str, Any] = {
    "run": {"id": "r1", "finished_at": "2026-01-02T03:04:05Z", "started_at": 1767322980.0},
    "health_score": 88.5,
    "metrics": {
        "performance": {"test_execution_time_s": 3.5, "total_time_s": 5.25},
        "reliability": {"tests": 3, "passed": 2, "failed": 1, "success_rate": 66.5, "reruns": 2},
        "resource_usage": {
            "process": {"cpu_percent_peak": 150.0, "rss_bytes_peak": 104857600},
            "containers": [{"name": "db", "memory_bytes_peak": 5e7, "cpu_percent_peak": 3.0}],
        },
    },
    "tests": [
        {"nodeid": "t.py::a", "duration_s": 0.2},
        {"nodeid": "t.py::b", "duration_s": 3.3},
        {"nodeid": "t.py::c[x]", "duration_s": 0.004},
    ],
    "flaky": [{"nodeid": "t.py::a", "status": "flaky"}],
    "alerts": [{"severity": "critical"}, {"severity": "warning"}, {"severity": "warning"}],
}


def parse(text: bytes) -> dict[str, Any]:
    families = {f.name: f for f in text_string_to_metric_families(text.decode())}
    return families


def value(families: dict[str, Any], name: str, **labels: str) -> float:
    family_name = name
    for suffix in ("_bucket", "_count", "_sum"):
        if name.endswith(suffix) and name[: -len(suffix)] in families:
            family_name = name[: -len(suffix)]
    for sample in families[family_name].samples:
        if sample.name == name and sample.labels == labels:
            return float(sample.value)
    raise AssertionError(f"no sample {name}{labels}")


def test_render_fixed_set_in_base_units() -> None:
    text = openmetrics.render(REPORT)
    assert text.endswith(b"# EOF\n")
    families = parse(text)
    assert set(families) <= set(openmetrics.METRIC_NAMES)
    assert all(name.startswith("p3monitor_") for name in families)
    assert value(families, "p3monitor_tests", outcome="passed") == 2
    assert value(families, "p3monitor_tests", outcome="failed") == 1
    assert value(families, "p3monitor_success_ratio") == pytest.approx(0.665)
    assert value(families, "p3monitor_health_score") == 88.5
    assert value(families, "p3monitor_test_execution_seconds") == 3.5
    assert value(families, "p3monitor_session_duration_seconds") == 5.25
    assert value(families, "p3monitor_test_reruns") == 2
    assert value(families, "p3monitor_flaky_tests") == 1
    assert value(families, "p3monitor_alerts", severity="critical") == 1
    assert value(families, "p3monitor_alerts", severity="warning") == 2
    assert value(families, "p3monitor_process_cpu_peak_ratio") == 1.5
    assert value(families, "p3monitor_process_memory_peak_bytes") == 104857600
    assert value(families, "p3monitor_container_memory_peak_bytes", container="db") == 5e7
    assert value(families, "p3monitor_run_timestamp_seconds") == 1767323045.0
    assert families["p3monitor_test_execution_seconds"].unit == "seconds"
    assert families["p3monitor_process_memory_peak_bytes"].unit == "bytes"
    assert value(families, "p3monitor_test_duration_seconds_count") == 3
    assert value(families, "p3monitor_test_duration_seconds_sum") == pytest.approx(3.504)
    assert value(families, "p3monitor_test_duration_seconds_bucket", le="0.005") == 1
    assert value(families, "p3monitor_test_duration_seconds_bucket", le="0.25") == 2
    assert value(families, "p3monitor_test_duration_seconds_bucket", le="+Inf") == 3


def test_no_per_test_labels() -> None:
    text = openmetrics.render(REPORT).decode()
    assert "t.py" not in text
    labels = {k for f in parse(text.encode()).values() for s in f.samples for k in s.labels}
    assert labels <= {"outcome", "severity", "container", "le"}


def test_render_of_an_empty_report_is_valid() -> None:
    families = parse(openmetrics.render({}))
    assert value(families, "p3monitor_tests", outcome="passed") == 0
    assert "p3monitor_health_score" not in families  # not measured: not invented


@given(st.lists(st.floats(min_value=0, max_value=1e4, allow_nan=False), max_size=200))
def test_bucket_counts_are_cumulative(durations: list[float]) -> None:
    buckets = openmetrics.bucket_counts(durations)
    counts = [count for _, count in buckets]
    assert counts == sorted(counts)
    assert buckets[-1] == ("+Inf", float(len(durations)))
    for (le, count), bound in zip(buckets, openmetrics.DURATION_BUCKETS, strict=False):
        assert float(le) == bound
        assert count == sum(1 for d in durations if d <= bound)


@given(
    st.lists(
        st.floats(min_value=0, max_value=1e5, allow_nan=False, allow_infinity=False), max_size=50
    )
)
def test_render_round_trips_through_the_parser(durations: list[float]) -> None:
    report = {"tests": [{"nodeid": f"t::{i}", "duration_s": d} for i, d in enumerate(durations)]}
    families = parse(openmetrics.render(report))
    assert value(families, "p3monitor_test_duration_seconds_count") == len(durations)
    assert math.isclose(
        value(families, "p3monitor_test_duration_seconds_sum"), sum(durations), rel_tol=1e-9
    )


def _row(seq: int, failed: int) -> RunRow:
    run = RunInfo(
        run_id=f"run{seq}",
        started_at=1_700_000_000.0 + 100 * seq,
        finished_at=1_700_000_050.0 + 100 * seq,
        ci=CIInfo(provider="github-actions"),
    )
    return RunRow(
        run_seq=seq,
        run=run,
        tests=10,
        passed=10 - failed,
        failed=failed,
        errors=0,
        skipped=0,
        xfailed=0,
        xpassed=0,
        reruns=0,
        test_execution_time_s=2.0 + seq,
        metrics={"health_score": 80.0 + seq},
    )


def test_render_runs_timestamps_each_run_oldest_first() -> None:
    rows = [_row(3, 0), _row(1, 2), _row(2, 1)]  # in any order
    families = parse(openmetrics.render_runs(rows))
    samples = families["p3monitor_success_ratio"].samples
    assert [float(s.timestamp) for s in samples] == [
        1_700_000_150.0,
        1_700_000_250.0,
        1_700_000_350.0,
    ]
    assert [s.value for s in samples] == [0.8, 0.9, 1.0]
    health = [s.value for s in families["p3monitor_health_score"].samples]
    assert health == [81.0, 82.0, 83.0]
    assert "p3monitor_test_duration_seconds" not in families


def test_write_is_atomic_and_readable(tmp_path: Path) -> None:
    target = tmp_path / "deep" / "metrics.txt"
    assert openmetrics.write(target, REPORT) == target
    assert target.read_bytes() == openmetrics.render(REPORT)
    assert target.stat().st_mode & 0o044 == 0o044
    assert [p.name for p in target.parent.iterdir()] == ["metrics.txt"]


# -- the option -----------------------------------------------------------------------------


def test_option_writes_the_file(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_a(): pass\ndef test_b(): assert 0\n")
    result = pytester.runpytest("--p3monitor", "--p3monitor-openmetrics", "out/metrics.txt")
    result.assert_outcomes(passed=1, failed=1)
    families = parse((pytester.path / "out" / "metrics.txt").read_bytes())
    assert value(families, "p3monitor_tests", outcome="failed") == 1
    assert value(families, "p3monitor_success_ratio") == 0.5
    result.stdout.fnmatch_lines(["exported to OpenMetrics: *metrics.txt"])


def test_ini_path_is_relative_to_the_ini_file(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\np3monitor_openmetrics = reports/om.txt\n")
    pytester.makepyfile("def test_a(): pass\n")
    sub = pytester.mkdir("sub")
    result = pytester.runpytest("--p3monitor", str(pytester.path), f"--rootdir={pytester.path}")
    result.assert_outcomes(passed=1)
    assert (pytester.path / "reports" / "om.txt").is_file()
    assert not (sub / "reports").exists()


def test_unwritable_path_is_one_warning(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_a(): pass\n")
    blocker = pytester.path / "file"
    blocker.write_text("not a folder")
    result = pytester.runpytest("--p3monitor", "--p3monitor-openmetrics", "file/metrics.txt")
    result.assert_outcomes(passed=1)
    assert result.ret == pytest.ExitCode.OK
    warnings = [ln for ln in result.outlines if "ExportWarning" in ln]
    assert len(warnings) == 1
    assert "could not write the OpenMetrics file" in warnings[0]
