"""The health report of one stored run (``p3monitor report``), from what the store holds.

Pure: the caller reads the run, its results, the runs before it, the runs of the trends and
the flaky verdicts from the store; :func:`build_stored` assembles them into the object of the
``p3monitor-report/1`` schema (:mod:`.json_report`), with the same key names and every key
present. What the store keeps of a session (the run row, its counts, its results and the
``health_score``, ``health``, ``metrics`` and ``alerts`` of its report) is shown as the session
wrote it; ``tests`` and the slowest tests come from the stored results, ``flaky`` from the
history (the classification of ``p3monitor flaky``), ``trends`` from the runs up to this one.
``recommendations`` are not stored and stay empty.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

from .. import health, trends
from ..flaky import FlakyResult, rank
from ..records import FAILING_OUTCOMES, RunRow, TestRecord
from ..rules import Family
from . import json_report

__all__ = [
    "TREND_DAYS",
    "ResourcePeak",
    "anchor_time",
    "build_stored",
    "day_periods",
    "failed_tests",
    "flaky_entries",
    "has_stored_health",
    "kpi_family",
    "resource_peaks",
    "stored_health",
    "trend_periods",
]

#: Days of the per-day trend (``trend_days``).
TREND_DAYS = 30


def anchor_time(row: RunRow) -> float:
    """The time the report is "as of": when the run finished (else when it started)."""
    return row.run.finished_at if row.run.finished_at is not None else row.run.started_at


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def has_stored_health(row: RunRow) -> bool:
    """Whether the session stored a health score (or its KPIs) with the run."""
    kept = row.metrics.get("health")
    return isinstance(kept, Mapping) and (
        row.metrics.get("health_score") is not None or bool(kept.get("kpis"))
    )


def stored_health(
    row: RunRow,
    history: Sequence[RunRow],
    flaky_count: int,
    cpu_count: int,
) -> tuple[float | None, dict[str, Any], str]:
    """``(health_score, health, source)`` of a run.

    The health the session stored with the run (``source`` ``"stored"``), computed with the
    session's targets and weights. A run stored without one (its session ran without the
    gates) gets it computed here as ``p3monitor health`` computes it, from the runs before it
    and its own flaky tests (``"computed"``).
    """
    kept = row.metrics.get("health")
    if has_stored_health(row) and isinstance(kept, Mapping):
        score = row.metrics.get("health_score")
        return (score if isinstance(score, (int, float)) else None), dict(kept), "stored"
    result = health.run_health(row, history, flaky_count=flaky_count, cpu_count=cpu_count)
    return result.score, result.to_dict(), "computed"


def flaky_entries(
    results: Sequence[FlakyResult], tests: Sequence[TestRecord]
) -> list[dict[str, Any]]:
    """The report's ``flaky``: the flaky tests of the history, highest score first, each with
    its outcome in this run (``session``; null for a test the run did not have)."""
    by_nodeid = {t.nodeid: t for t in tests}
    entries = []
    for result in rank(r for r in results if r.is_flaky):
        data = result.to_dict()
        data["known_flaky"] = True
        record = by_nodeid.get(result.nodeid)
        data["session"] = (
            None if record is None else {"outcome": record.outcome, "reruns": record.reruns}
        )
        entries.append(data)
    return entries


def failed_tests(report: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The entries of ``report["tests"]`` that failed or errored, in the report's order."""
    return [t for t in report.get("tests") or () if t.get("outcome") in FAILING_OUTCOMES]


def _merge(base: dict[str, Any], stored: Mapping[str, Any]) -> dict[str, Any]:
    """``base`` with each of ``stored``'s sections laid over it (section by section: a key
    the store lacks keeps its computed or empty value)."""
    merged = dict(base)
    for key, value in stored.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = {**merged[key], **value}
        elif value is not None or key not in merged:
            merged[key] = value
    return merged


def build_stored(
    row: RunRow,
    tests: Sequence[TestRecord],
    *,
    history: Sequence[RunRow] = (),
    trend_rows: Sequence[RunRow] = (),
    flaky: Sequence[FlakyResult] = (),
    flaky_count: int | None = None,
    cpu_count: int = 1,
    trend_days: int = TREND_DAYS,
) -> dict[str, Any]:
    """The ``p3monitor-report/1`` object of a stored run.

    ``tests``: the run's results (``Store.run_tests``). ``history``: the runs before it,
    newest first (only read when the run has no stored health). ``trend_rows``: the runs of
    the 30 days up to it (``Store.trend_runs``; later runs are left out). ``flaky``: the
    verdicts of the history (``flaky.classify_all``); ``flaky_count`` how many of the run's
    own tests are flaky (default: those of ``flaky`` among its tests). Besides the schema's
    keys: ``health_source`` (``stored`` / ``computed``) and ``trend_days``, one entry per
    day with runs among the last ``trend_days`` days (as ``p3monitor trends`` gives them).
    """
    report = json_report.build(row.run, tests)
    stored_metrics = _mapping(row.metrics.get("metrics"))
    report["metrics"] = _merge(report["metrics"], stored_metrics)
    reliability = report["metrics"]["reliability"]
    # the run row's counts are the store's own; the section may come from an older session
    for key in ("tests", "passed", "failed", "skipped", "errors", "xfailed", "xpassed", "reruns"):
        reliability[key] = getattr(row, key)
    rate = row.success_rate
    reliability["success_rate"] = None if rate is None else round(rate, 4)
    if flaky_count is None:  # the run's own flaky tests: flaky_rate is a share of its tests
        own_tests = {t.nodeid for t in tests}
        flaky_count = sum(1 for r in flaky if r.is_flaky and r.nodeid in own_tests)
    score, health_data, source = stored_health(row, history, flaky_count, cpu_count)
    report["health_score"] = score
    report["health"] = _merge(report["health"], health_data)
    report["health_source"] = source
    report["tests"] = json_report.entries_of(tests)
    report["flaky"] = flaky_entries(flaky, tests)
    now = anchor_time(row)
    own = [r for r in trend_rows if r.run_seq <= row.run_seq]
    if not any(r.run_seq == row.run_seq for r in own):
        own.append(row)
    report["trends"] = trends.summaries(own, now)
    report["trend_days"] = [d.to_dict() for d in trends.daily(own, now, days=trend_days)]
    alerts = row.metrics.get("alerts")
    report["alerts"] = (
        [a for a in alerts if isinstance(a, Mapping)] if isinstance(alerts, list) else []
    )
    report["recommendations"] = []
    return report


# -- views shared by the renderers (text, Markdown, HTML) ------------------------------------


class ResourcePeak(NamedTuple):
    """One line of the resource peaks: the test processes, their cgroup, or a container."""

    source: str
    cpu_percent_peak: float | None
    cpu_percent_mean: float | None
    memory_bytes_peak: float | None
    memory_percent_peak: float | None


def _number(value: Any) -> float | None:
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None


def resource_peaks(report: Mapping[str, Any]) -> list[ResourcePeak]:
    """The measured resource peaks of a report: process tree, cgroup, each container."""
    usage = _mapping(_mapping(report.get("metrics")).get("resource_usage"))
    found: list[ResourcePeak] = []
    sources: list[tuple[str, Mapping[str, Any], str]] = [
        ("test processes", _mapping(usage.get("process")), "rss_bytes_peak"),
        ("cgroup", _mapping(usage.get("cgroup")), "memory_bytes_peak"),
    ]
    containers = usage.get("containers")
    for container in containers if isinstance(containers, list) else ():
        data = _mapping(container)
        name = data.get("name") or str(data.get("id") or "")[:12] or "?"
        sources.append((f"container {name}", data, "memory_bytes_peak"))
    for source, data, memory_key in sources:
        peak = ResourcePeak(
            source,
            _number(data.get("cpu_percent_peak")),
            _number(data.get("cpu_percent_mean")),
            _number(data.get(memory_key)),
            _number(data.get("memory_percent_peak")),
        )
        if any(v is not None for v in peak[1:]):
            found.append(peak)
    return found


def trend_periods(report: Mapping[str, Any]) -> list[trends.Period]:
    """The report's ``trends`` windows that have runs, as :class:`~..trends.Period` values."""
    windows = _mapping(report.get("trends"))
    return [
        _period(windows[name]) for name in trends.WINDOWS if isinstance(windows.get(name), Mapping)
    ]


def day_periods(report: Mapping[str, Any]) -> list[trends.Period]:
    """The report's ``trend_days`` as :class:`~..trends.Period` values, oldest first."""
    days = report.get("trend_days")
    return [_period(d) for d in days if isinstance(d, Mapping)] if isinstance(days, list) else []


def _period(data: Mapping[str, Any]) -> trends.Period:
    values: list[Any] = [data.get(name) for name in trends.Period._fields]
    return trends.Period(*values)


def kpi_family(name: str) -> Family:
    """How a KPI's value is shown (``format_value``); a KPI unknown here as a plain number."""
    spec = health.KPIS.get(name)
    return spec.family if spec is not None else "count"
