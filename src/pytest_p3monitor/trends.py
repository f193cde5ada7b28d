"""Trends over the stored runs: per day, and the last 24 h / 7 d / 30 d.

Pure: takes :class:`~pytest_p3monitor.records.RunRow` values (from ``Store.recent_runs``)
and a "now"; days are UTC calendar days.
"""

from __future__ import annotations

import datetime as _dt
import math
from collections.abc import Iterable, Sequence
from typing import Any, NamedTuple

from .records import RunRow, stored_peaks

__all__ = [
    "WINDOWS",
    "Period",
    "daily",
    "percentile",
    "run_peaks",
    "summaries",
    "summarize",
]

#: The report's ``trends`` windows: name -> seconds back from now.
WINDOWS: dict[str, float] = {
    "last_24h": 24 * 3600.0,
    "last_7d": 7 * 24 * 3600.0,
    "last_30d": 30 * 24 * 3600.0,
}


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0..100) with linear interpolation between ranks."""
    if not values:
        raise ValueError("percentile() of no values")
    if not 0 <= q <= 100:
        raise ValueError("q must be within 0..100")
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100.0
    low = math.floor(pos)
    high = min(low + 1, len(ordered) - 1)
    frac = pos - low
    return ordered[low] + (ordered[high] - ordered[low]) * frac


def _number(value: Any) -> float | None:
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None


def run_peaks(row: RunRow) -> tuple[float | None, float | None]:
    """(peak memory % of the limit, peak RSS bytes) of the test processes, if sampled."""
    memory, rss = stored_peaks(row.metrics)
    return _number(memory), _number(rss)


class Period(NamedTuple):
    """Figures of the runs in one period (a day or a window).

    A named tuple, not a dataclass: a session imports this module at configure time, where a
    dataclass would cost about 0.75 ms to create.
    """

    period: str  # "2026-11-29" or "last_7d"
    runs: int
    tests: int  # test results in the period
    success_rate: float | None  # percent of executed test results that passed
    ci_success_rate: float | None  # percent of runs without a failed or error test
    mean_execution_time_s: float | None
    p95_execution_time_s: float | None
    peak_memory_percent: float | None
    peak_rss_bytes: float | None

    def to_dict(self) -> dict[str, Any]:
        data = self._asdict()
        for key, value in data.items():
            if isinstance(value, float):
                data[key] = round(value, 4)
        return data


def summarize(name: str, rows: Sequence[RunRow]) -> Period:
    """The figures of ``rows`` as one period called ``name``."""
    executed = sum(r.tests - r.skipped for r in rows)
    bad = sum(r.failed + r.errors for r in rows)
    # A run without tests has no execution time (as the report and `health` show it), not 0 s.
    times = [r.test_execution_time_s for r in rows if r.tests]
    peaks = [run_peaks(r) for r in rows]
    mem = [m for m, _ in peaks if m is not None]
    rss = [b for _, b in peaks if b is not None]
    return Period(
        period=name,
        runs=len(rows),
        tests=sum(r.tests for r in rows),
        success_rate=100.0 * (executed - bad) / executed if executed > 0 else None,
        ci_success_rate=(
            100.0 * sum(1 for r in rows if r.failed + r.errors == 0) / len(rows) if rows else None
        ),
        mean_execution_time_s=sum(times) / len(times) if times else None,
        p95_execution_time_s=percentile(times, 95) if times else None,
        peak_memory_percent=max(mem) if mem else None,
        peak_rss_bytes=max(rss) if rss else None,
    )


def _day(ts: float) -> str:
    return _dt.datetime.fromtimestamp(ts, _dt.timezone.utc).date().isoformat()


def daily(rows: Iterable[RunRow], now: float, days: int = 30) -> list[Period]:
    """One period per UTC day that has runs, among the last ``days`` days, oldest first."""
    if days < 1:
        raise ValueError("days must be >= 1")
    first = (_dt.datetime.fromtimestamp(now, _dt.timezone.utc).date()) - _dt.timedelta(
        days=days - 1
    )
    by_day: dict[str, list[RunRow]] = {}
    for row in rows:
        day = _day(row.run.started_at)
        if first.isoformat() <= day and row.run.started_at <= now:
            by_day.setdefault(day, []).append(row)
    return [summarize(day, by_day[day]) for day in sorted(by_day)]


def summaries(rows: Iterable[RunRow], now: float) -> dict[str, dict[str, Any] | None]:
    """The report's ``trends``: ``last_24h``, ``last_7d``, ``last_30d`` (None when empty)."""
    materialized = [r for r in rows if r.run.started_at <= now]
    out: dict[str, dict[str, Any] | None] = {}
    for name, seconds in WINDOWS.items():
        inside = [r for r in materialized if r.run.started_at > now - seconds]
        out[name] = summarize(name, inside).to_dict() if inside else None
    return out
