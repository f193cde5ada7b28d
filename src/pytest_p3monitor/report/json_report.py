"""The ``p3monitor-report/1`` health report: one JSON object, every key always present.

:func:`build` fills what the foundation measures (run, timings, outcomes); the feature
plugins fill the rest in the ``pytest_p3monitor_measure`` and ``pytest_p3monitor_evaluate``
hooks. Keys not measured stay null or empty. The per-test entries (``tests``) are a view
of the records, made by :func:`entries_of` once the features have added their per-test
figures, and only when something reads them (a JSON file, a report hook).
"""

from __future__ import annotations

import functools
import heapq
import itertools
import json
import math
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from ..fsutil import atomic_write_text
from ..records import RunInfo, TestRecord, execution_time_s, success_rate

SCHEMA = "p3monitor-report/1"
SLOWEST = 10
DEFAULT_WEIGHTS = {
    "reliability": 0.4,
    "performance": 0.3,
    "efficiency": 0.2,
    "user_satisfaction": 0.1,
}


@functools.lru_cache(maxsize=256)
def _iso_second(whole: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole))


def iso(ts: float | None) -> str | None:
    """Epoch seconds as ISO 8601 in UTC with microseconds: ``2026-11-29T02:10:33.588352Z``.

    Called twice per test, so the seconds part is cached: tests share their seconds.
    """
    if ts is None:
        return None
    whole = math.floor(ts)
    micro = round((ts - whole) * 1e6)
    if micro == 1_000_000:
        whole, micro = whole + 1, 0
    return f"{_iso_second(whole)}.{micro:06d}Z"


def run_section(run: RunInfo) -> dict[str, Any]:
    return {
        "id": run.run_id,
        "commit": run.commit,
        "branch": run.branch,
        "ci": {
            "provider": run.ci.provider,
            "run_id": run.ci.run_id,
            "job": run.ci.job,
            "url": run.ci.url,
        },
        "started_at": iso(run.started_at),
        "finished_at": iso(run.finished_at),
        "hostname": run.hostname,
        "python": run.python,
        "pytest": run.pytest,
        "workers": run.workers,
        "exit_status": run.exit_status,
    }


def _entry(t: TestRecord) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "nodeid": t.nodeid,
        "file": t.file,
        "line": t.line,
        "outcome": t.outcome,
        "duration_s": round(t.duration_s, 6),
        "setup_s": round(t.setup_s, 6),
        "call_s": round(t.call_s, 6),
        "teardown_s": round(t.teardown_s, 6),
        "start": iso(t.start),
        "stop": iso(t.stop),
        "reruns": t.reruns,
        "worker": t.worker,
        "message": t.message,
    }
    if t.subtests_failed:
        entry["subtests_failed"] = t.subtests_failed
    for name, value in t.figures.items():
        entry.setdefault(name, value)
    return entry


def entries_of(tests: Sequence[TestRecord]) -> list[dict[str, Any]]:
    """The report's ``tests``: one entry per record, in the order tests first reported."""
    return [_entry(t) for t in tests]


def durations_of(tests: Sequence[TestRecord]) -> list[float]:
    """Each test's ``duration_s``, in order: one list comprehension rather than a property call
    per test (the session's end reads every duration several times)."""
    return [t.setup_s + t.call_s + t.teardown_s for t in tests]


def slowest(
    tests: Sequence[TestRecord], n: int = SLOWEST, durations: Sequence[float] | None = None
) -> list[dict[str, Any]]:
    """The report's ``slowest``: the ``n`` longest tests, longest first.

    ``durations`` are the tests' (:func:`durations_of`), when the caller has them already.
    """
    if durations is None:
        durations = durations_of(tests)
    return [
        {"nodeid": tests[i].nodeid, "duration_s": round(durations[i], 6)}
        for i in longest_first(durations, n)
    ]


def longest_first(durations: Sequence[float], n: int) -> list[int]:
    """Positions of the ``n`` longest ``durations``, longest first, equal ones in their order:
    ``sorted(range(len(durations)), key=durations.__getitem__, reverse=True)[:n]``.

    For thousands of tests, without a sort or a Python call per test: the ``n``-th longest
    duration, by ``heapq.nlargest``, is the cut; the positions at or above it (about ``n``)
    come from a comparison per test in a comprehension and ``itertools.compress``. (Not with
    a nan among the durations: that orders as only a sort of them all does.)
    """
    positions: Iterable[int] = range(len(durations))
    if len(durations) > n > 0 and math.isfinite(sum(durations)):
        cut = heapq.nlargest(n, durations)[-1]
        positions = itertools.compress(positions, [d >= cut for d in durations])
    return sorted(positions, key=durations.__getitem__, reverse=True)[:n]


def build(run: RunInfo, tests: Sequence[TestRecord]) -> dict[str, Any]:
    """The report for a finished session, with every key of the schema."""
    durations = durations_of(tests)
    outcomes = [t.outcome for t in tests]
    passed = outcomes.count("passed")  # a C scan; most sessions need no more than this
    counts = Counter(outcomes) if passed != len(outcomes) else Counter(passed=passed)
    total_time = None if run.finished_at is None else run.finished_at - run.started_at
    rate = success_rate(len(tests), counts["skipped"], counts["failed"], counts["error"])
    return {
        "schema": SCHEMA,
        "timestamp": iso(run.finished_at or run.started_at),
        "run": run_section(run),
        "health_score": None,
        "health": {
            "reliability": None,
            "performance": None,
            "efficiency": None,
            "user_satisfaction": None,
            "weights": dict(DEFAULT_WEIGHTS),
        },
        "metrics": {
            "performance": {
                "total_time_s": None if total_time is None else round(total_time, 6),
                "test_execution_time_s": round(execution_time_s(tests), 6),
                "tests_duration_sum_s": round(sum(durations), 6),
                "phases": {},
                "slowest": slowest(tests, durations=durations),
            },
            "reliability": {
                "tests": len(tests),
                "passed": counts["passed"],
                "failed": counts["failed"],
                "skipped": counts["skipped"],
                "errors": counts["error"],
                "xfailed": counts["xfailed"],
                "xpassed": counts["xpassed"],
                "reruns": sum([t.reruns for t in tests]),
                "success_rate": None if rate is None else round(rate, 4),
                "flaky_in_session": [],
            },
            "resource_usage": {
                "process": {
                    "cpu_percent_peak": None,
                    "cpu_percent_mean": None,
                    "rss_bytes_peak": None,
                    "memory_percent_peak": None,
                },
                "containers": [],
            },
        },
        "tests": [],  # filled by entries_of() when the report is consumed
        "flaky": [],
        "trends": {"last_24h": None, "last_7d": None, "last_30d": None},
        "alerts": [],
        "recommendations": [],
    }


def stored_metrics(report: dict[str, Any]) -> dict[str, Any]:
    """The session-level part of the report kept with the run in the store."""
    return {
        "health_score": report.get("health_score"),
        "health": report.get("health"),
        "metrics": report.get("metrics"),
        "alerts": report.get("alerts"),
    }


def write(report: dict[str, Any], path: Path) -> None:
    """Write the report atomically (temporary file, then rename)."""
    atomic_write_text(path, json.dumps(report, indent=2, default=str) + "\n")
