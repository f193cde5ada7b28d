"""The session's headline figures, read out of a ``p3monitor-report/1`` dict.

Every exporter shows the same few figures (GitHub outputs, OpenMetrics, the Pushgateway, the
webhook text); reading them in one place keeps the exporters consistent and tolerant: a
report's values may be null or missing where nothing was measured, and then the figure is
None, never an exception.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

__all__ = [
    "CRITICAL_SEVERITIES",
    "Location",
    "SessionFigures",
    "figures",
    "is_critical",
    "location_of",
    "number",
]

#: Alert severities that count as critical (a ``fail_on`` rule); anything else is a warning.
CRITICAL_SEVERITIES = frozenset({"critical", "error", "fail", "failure", "high", "fatal"})


def is_critical(alert: Mapping[str, Any]) -> bool:
    return str(alert.get("severity") or "").strip().lower() in CRITICAL_SEVERITIES


def number(value: Any) -> float | None:
    """``value`` as a finite float, or None (null, missing, text, NaN, bool)."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (int, float)):
        result = float(value)
    elif isinstance(value, str):
        try:
            result = float(value.strip().rstrip("%"))
        except ValueError:
            return None
    else:
        return None
    return result if math.isfinite(result) else None


def _int(value: Any) -> int:
    result = number(value)
    return int(result) if result is not None else 0


def _dict(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _list(value: Any) -> Sequence[Any]:
    return value if isinstance(value, (list, tuple)) else ()


def epoch(value: Any) -> float | None:
    """An epoch-seconds float from a number or an ISO 8601 string."""
    result = number(value)
    if result is not None:
        return result
    if isinstance(value, str) and value:
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=timezone.utc)
        return parsed.timestamp()
    return None


@dataclass(frozen=True)
class Location:
    """Where a test is defined: a path relative to the rootdir and a 1-based line (or None)."""

    path: str
    line: int | None = None


def location_of(test: Mapping[str, Any] | str) -> Location:
    """The location of a test entry of the report (or of a bare node id).

    The report's ``line`` is already 1-based (pytest's 0-based ``location`` line + 1), as
    GitHub and editors count.
    """
    if isinstance(test, str):
        return Location(test.split("::", 1)[0])
    nodeid = str(test.get("nodeid") or "")
    path = test.get("file") or nodeid.split("::", 1)[0]
    line = test.get("line")
    valid = isinstance(line, int) and not isinstance(line, bool) and line > 0
    return Location(str(path), line if valid else None)


@dataclass(frozen=True)
class FlakyTest:
    nodeid: str
    score: float | None = None
    evidence: str = ""


@dataclass(frozen=True)
class SessionFigures:
    """Headline figures of one session, None where the report has nothing."""

    run_id: str | None = None
    commit: str | None = None
    branch: str | None = None
    started_at: float | None = None
    finished_at: float | None = None
    tests: int = 0
    passed: int = 0
    failed: int = 0
    errors: int = 0
    skipped: int = 0
    xfailed: int = 0
    xpassed: int = 0
    reruns: int = 0
    success_rate: float | None = None  # percent
    test_execution_time_s: float | None = None
    total_time_s: float | None = None
    health_score: float | None = None
    cpu_percent_peak: float | None = None
    rss_bytes_peak: float | None = None
    memory_percent_peak: float | None = None
    flaky: tuple[FlakyTest, ...] = ()
    alerts: tuple[Mapping[str, Any], ...] = ()
    durations: tuple[tuple[str, float], ...] = ()  # (nodeid, seconds), slowest first
    containers: tuple[Mapping[str, Any], ...] = field(default=())

    @property
    def flaky_count(self) -> int:
        return len(self.flaky)

    @property
    def outcomes(self) -> dict[str, int]:
        return {
            "passed": self.passed,
            "failed": self.failed,
            "error": self.errors,
            "skipped": self.skipped,
            "xfailed": self.xfailed,
            "xpassed": self.xpassed,
        }


def _flaky(report: Mapping[str, Any]) -> tuple[FlakyTest, ...]:
    seen: dict[str, FlakyTest] = {}
    for entry in _list(report.get("flaky")):
        if isinstance(entry, str):
            seen.setdefault(entry, FlakyTest(entry))
            continue
        entry = _dict(entry)
        nodeid = entry.get("nodeid")
        status = entry.get("status")
        flaky = status in (None, "flaky") or entry.get("known_flaky") is True
        if not nodeid or not flaky:
            continue
        evidence = entry.get("evidence")
        if isinstance(evidence, Mapping):
            evidence = ", ".join(f"{k} {v}" for k, v in evidence.items())
        elif isinstance(evidence, (list, tuple)):
            evidence = "; ".join(str(e) for e in evidence)
        if not evidence:
            runs, failures = entry.get("runs"), entry.get("failures")
            evidence = f"{failures} failures in {runs} runs" if runs is not None else ""
        seen.setdefault(
            str(nodeid), FlakyTest(str(nodeid), number(entry.get("score")), str(evidence))
        )
    reliability = _dict(_dict(report.get("metrics")).get("reliability"))
    for entry in _list(reliability.get("flaky_in_session")):
        nodeid = entry if isinstance(entry, str) else _dict(entry).get("nodeid")
        if nodeid:
            seen.setdefault(
                str(nodeid), FlakyTest(str(nodeid), None, "failed, then passed on rerun")
            )
    return tuple(seen.values())


def _durations(report: Mapping[str, Any]) -> tuple[tuple[str, float], ...]:
    pairs: list[tuple[str, float]] = []
    for entry in _list(report.get("tests")):
        entry = _dict(entry)
        duration = number(entry.get("duration_s"))
        if entry.get("nodeid") and duration is not None:
            pairs.append((str(entry["nodeid"]), duration))
    if not pairs:
        performance = _dict(_dict(report.get("metrics")).get("performance"))
        for entry in _list(performance.get("slowest")):
            entry = _dict(entry)
            duration = number(entry.get("duration_s"))
            if entry.get("nodeid") and duration is not None:
                pairs.append((str(entry["nodeid"]), duration))
    pairs.sort(key=lambda pair: (-pair[1], pair[0]))
    return tuple(pairs)


def figures(report: Mapping[str, Any]) -> SessionFigures:
    """Read the headline figures of a report dict (any missing part gives None / 0)."""
    run = _dict(report.get("run"))
    metrics = _dict(report.get("metrics"))
    performance = _dict(metrics.get("performance"))
    reliability = _dict(metrics.get("reliability"))
    resources = _dict(metrics.get("resource_usage"))
    process = _dict(resources.get("process"))
    health = report.get("health_score")
    return SessionFigures(
        run_id=str(run["id"]) if run.get("id") is not None else None,
        commit=str(run["commit"]) if run.get("commit") else None,
        branch=str(run["branch"]) if run.get("branch") else None,
        started_at=epoch(run.get("started_at")),
        finished_at=epoch(run.get("finished_at")),
        tests=_int(reliability.get("tests")),
        passed=_int(reliability.get("passed")),
        failed=_int(reliability.get("failed")),
        errors=_int(reliability.get("errors")),
        skipped=_int(reliability.get("skipped")),
        xfailed=_int(reliability.get("xfailed")),
        xpassed=_int(reliability.get("xpassed")),
        reruns=_int(reliability.get("reruns")),
        success_rate=number(reliability.get("success_rate")),
        test_execution_time_s=number(performance.get("test_execution_time_s")),
        total_time_s=number(performance.get("total_time_s")),
        health_score=number(health),
        cpu_percent_peak=number(process.get("cpu_percent_peak")),
        rss_bytes_peak=number(process.get("rss_bytes_peak")),
        memory_percent_peak=number(process.get("memory_percent_peak")),
        flaky=_flaky(report),
        alerts=tuple(_dict(a) for a in _list(report.get("alerts")) if isinstance(a, Mapping)),
        durations=_durations(report),
        containers=tuple(
            _dict(c) for c in _list(resources.get("containers")) if isinstance(c, Mapping)
        ),
    )
