"""OpenMetrics text for GitLab's metrics report, for scraping, and for the Pushgateway.

A small fixed set of metrics, all prefixed ``p3monitor_``, in base units (seconds, bytes,
ratios 0..1), and no per-test labels (a label per test would make a new time series for every
test ever written). Test durations go into one histogram instead.

The text is produced by ``prometheus_client``'s own exposition code from a custom collector,
so names, escaping and the ``# EOF`` trailer are the library's, not ours.
"""

from __future__ import annotations

import bisect
import os
import tempfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .figures import SessionFigures, figures, is_critical, number

if TYPE_CHECKING:
    from prometheus_client.metrics_core import Metric

    from ..records import RunRow

__all__ = [
    "DURATION_BUCKETS",
    "METRIC_NAMES",
    "ReportCollector",
    "RunsCollector",
    "bucket_counts",
    "render",
    "render_runs",
    "report_from_run_row",
    "write",
]

#: Upper bounds (seconds) of the test-duration histogram; +Inf is added.
DURATION_BUCKETS: tuple[float, ...] = (
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
    120.0,
    300.0,
    600.0,
)

#: Every metric family this module can emit (the histogram's samples add _bucket/_count/_sum).
METRIC_NAMES: tuple[str, ...] = (
    "p3monitor_tests",
    "p3monitor_test_reruns",
    "p3monitor_success_ratio",
    "p3monitor_health_score",
    "p3monitor_test_execution_seconds",
    "p3monitor_session_duration_seconds",
    "p3monitor_flaky_tests",
    "p3monitor_alerts",
    "p3monitor_process_cpu_peak_ratio",
    "p3monitor_process_memory_peak_bytes",
    "p3monitor_container_cpu_peak_ratio",
    "p3monitor_container_memory_peak_bytes",
    "p3monitor_run_timestamp_seconds",
    "p3monitor_test_duration_seconds",
)


def bucket_counts(
    durations: Iterable[float], bounds: Sequence[float] = DURATION_BUCKETS
) -> list[tuple[str, float]]:
    """Cumulative histogram buckets ``[(le, count), ..., ("+Inf", total)]``.

    ``bounds`` must be sorted ascending; a duration equal to a bound falls in that bucket.
    """
    counts = [0] * (len(bounds) + 1)
    for duration in durations:
        counts[bisect.bisect_left(bounds, duration)] += 1
    result: list[tuple[str, float]] = []
    running = 0
    for bound, count in zip([*[_le(b) for b in bounds], "+Inf"], counts, strict=True):
        running += count
        result.append((bound, float(running)))
    return result


def _le(bound: float) -> str:
    # prometheus_client writes le values with repr() of a float: "0.005", "1.0", "300.0"
    return repr(float(bound))


def _families(
    fig: SessionFigures, *, timestamp: float | None, with_histogram: bool
) -> Iterator[Metric]:
    from prometheus_client.metrics_core import GaugeMetricFamily, HistogramMetricFamily

    def gauge(name: str, doc: str, value: float | None, unit: str = "") -> Iterator[Metric]:
        if value is None:
            return
        family = GaugeMetricFamily(name, doc, unit=unit)
        family.add_metric([], value, timestamp=timestamp)
        yield family

    tests = GaugeMetricFamily(
        "p3monitor_tests", "Test items of the session by outcome.", labels=["outcome"]
    )
    for outcome, count in fig.outcomes.items():
        tests.add_metric([outcome], float(count), timestamp=timestamp)
    yield tests
    yield from gauge("p3monitor_test_reruns", "Reruns of failed tests.", float(fig.reruns))
    rate = fig.success_rate
    yield from gauge(
        "p3monitor_success_ratio",
        "Executed tests that did not fail, 0..1.",
        None if rate is None else rate / 100.0,
        "ratio",
    )
    yield from gauge("p3monitor_health_score", "Health score, 0..100.", fig.health_score)
    yield from gauge(
        "p3monitor_test_execution_seconds",
        "Time spent running tests.",
        fig.test_execution_time_s,
        "seconds",
    )
    yield from gauge(
        "p3monitor_session_duration_seconds",
        "Wall time of the whole session.",
        fig.total_time_s,
        "seconds",
    )
    yield from gauge("p3monitor_flaky_tests", "Tests known to be flaky.", float(fig.flaky_count))
    alerts = GaugeMetricFamily(
        "p3monitor_alerts", "Crossed rules by severity.", labels=["severity"]
    )
    critical = sum(1 for a in fig.alerts if is_critical(a))
    alerts.add_metric(["critical"], float(critical), timestamp=timestamp)
    alerts.add_metric(["warning"], float(len(fig.alerts) - critical), timestamp=timestamp)
    yield alerts
    cpu = fig.cpu_percent_peak
    yield from gauge(
        "p3monitor_process_cpu_peak_ratio",
        "Peak CPU of the test processes (1 = one core busy).",
        None if cpu is None else cpu / 100.0,
        "ratio",
    )
    yield from gauge(
        "p3monitor_process_memory_peak_bytes",
        "Peak resident memory of the test processes.",
        fig.rss_bytes_peak,
        "bytes",
    )
    if fig.containers:
        ccpu = GaugeMetricFamily(
            "p3monitor_container_cpu_peak_ratio",
            "Peak CPU of a sampled container (1 = one core busy).",
            labels=["container"],
            unit="ratio",
        )
        cmem = GaugeMetricFamily(
            "p3monitor_container_memory_peak_bytes",
            "Peak memory of a sampled container.",
            labels=["container"],
            unit="bytes",
        )
        for container in fig.containers:
            name = str(container.get("name") or container.get("id") or "unknown")
            value = number(container.get("cpu_percent_peak"))
            if value is not None:
                ccpu.add_metric([name], value / 100.0, timestamp=timestamp)
            value = number(container.get("memory_bytes_peak"))
            if value is not None:
                cmem.add_metric([name], value, timestamp=timestamp)
        yield from (family for family in (ccpu, cmem) if family.samples)
    yield from gauge(
        "p3monitor_run_timestamp_seconds",
        "When the session finished (Unix time).",
        fig.finished_at if fig.finished_at is not None else fig.started_at,
        "seconds",
    )
    if with_histogram:
        durations = [d for _, d in fig.durations]
        histogram = HistogramMetricFamily(
            "p3monitor_test_duration_seconds", "Durations of the test items.", unit="seconds"
        )
        histogram.add_metric([], bucket_counts(durations), sum(durations), timestamp=timestamp)
        yield histogram


class ReportCollector:
    """A prometheus_client collector for one session's report."""

    def __init__(self, report: Mapping[str, Any], *, with_histogram: bool = True) -> None:
        self._figures = figures(report)
        self._with_histogram = with_histogram

    def collect(self) -> Iterator[Metric]:
        return _families(self._figures, timestamp=None, with_histogram=self._with_histogram)


def report_from_run_row(row: RunRow) -> dict[str, Any]:
    """A report-shaped dict from a stored run, enough for :func:`figures`."""
    stored: Mapping[str, Any] = row.metrics if isinstance(row.metrics, Mapping) else {}
    # the store keeps {"health_score", "health", "metrics": {performance, ...}, "alerts"}
    inner = stored.get("metrics")
    metrics: dict[str, Any] = dict(inner) if isinstance(inner, Mapping) else dict(stored)
    reliability = dict(metrics.get("reliability") or {})
    reliability.update(
        tests=row.tests,
        passed=row.passed,
        failed=row.failed,
        errors=row.errors,
        skipped=row.skipped,
        xfailed=row.xfailed,
        xpassed=row.xpassed,
        reruns=row.reruns,
        success_rate=row.success_rate,
    )
    performance = dict(metrics.get("performance") or {})
    performance["test_execution_time_s"] = row.test_execution_time_s
    run = row.run
    return {
        "run": {
            "id": run.run_id,
            "commit": run.commit,
            "branch": run.branch,
            "started_at": run.started_at,
            "finished_at": run.finished_at,
            "ci": {"provider": run.ci.provider, "run_id": run.ci.run_id},
        },
        "health_score": stored.get("health_score"),
        "metrics": {
            "performance": performance,
            "reliability": reliability,
            "resource_usage": metrics.get("resource_usage") or {},
        },
        "flaky": stored.get("flaky") or [],
        "alerts": stored.get("alerts") or [],
        "tests": [],
    }


class RunsCollector:
    """Stored runs as timestamped samples, oldest first (for backfilling a TSDB).

    Each family holds one sample per run, stamped with the run's finish time.
    """

    def __init__(self, rows: Iterable[RunRow]) -> None:
        self._figures = sorted(
            (figures(report_from_run_row(row)) for row in rows),
            key=lambda f: f.finished_at or f.started_at or 0.0,
        )

    def collect(self) -> Iterator[Metric]:
        merged: dict[str, Metric] = {}
        for fig in self._figures:
            stamp = fig.finished_at if fig.finished_at is not None else fig.started_at
            for family in _families(fig, timestamp=stamp, with_histogram=False):
                if family.name in merged:
                    merged[family.name].samples.extend(family.samples)
                else:
                    merged[family.name] = family
        for family in merged.values():
            # OpenMetrics wants the points of one series together, oldest first.
            family.samples.sort(key=lambda s: (sorted(s.labels.items()), s.timestamp or 0.0))
            yield family


def render(report: Mapping[str, Any], *, with_histogram: bool = True) -> bytes:
    """The OpenMetrics text of one session's report."""
    from prometheus_client import CollectorRegistry
    from prometheus_client.openmetrics.exposition import generate_latest

    registry = CollectorRegistry(auto_describe=False)
    registry.register(ReportCollector(report, with_histogram=with_histogram))
    text = generate_latest(registry)  # type: ignore[no-untyped-call]
    return bytes(text)


def render_runs(rows: Iterable[RunRow]) -> bytes:
    """The OpenMetrics text of stored runs, one timestamped sample per run and metric."""
    from prometheus_client import CollectorRegistry
    from prometheus_client.openmetrics.exposition import generate_latest

    registry = CollectorRegistry(auto_describe=False)
    registry.register(RunsCollector(rows))
    text = generate_latest(registry)  # type: ignore[no-untyped-call]
    return bytes(text)


def write(path: str | os.PathLike[str], report: Mapping[str, Any]) -> Path:
    """Write the report's OpenMetrics text to ``path`` atomically (temp file + rename)."""
    target = Path(path)
    data = render(report)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.chmod(tmp, 0o644)  # mkstemp makes it private; the file is meant to be read
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target
