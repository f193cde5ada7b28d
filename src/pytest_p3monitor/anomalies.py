"""Anomalies: this run against its own recent history, with robust statistics.

Pure. A figure is anomalous when it lies beyond the median of its recent values by more
than the noise of those values (``k`` times the MAD scaled to a standard deviation, as in
the modified z-score of Iglewicz and Hoaglin), *and* by more than a minimum absolute change
and a minimum relative change, so that a 3 ms test going to 9 ms never alarms and a test
whose history is all identical (MAD 0) needs a real jump.

Three kinds: a test whose duration jumped against its own recent passing runs, a session
slower than its recent median, a success rate below its recent level.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Literal, NamedTuple

from .records import HistoryRow, RunRow
from .rules import format_value

__all__ = [
    "MAD_SCALE",
    "MIN_JUMP_S",
    "MIN_RUNS",
    "Anomaly",
    "Baseline",
    "DurationJumps",
    "baseline",
    "duration_jumps",
    "mad",
    "median",
    "slow_session",
    "success_rate_drop",
]

#: MAD times this estimates the standard deviation of normally distributed values.
MAD_SCALE = 1.4826
#: A test's duration must grow by at least this many seconds to be a jump (default).
MIN_JUMP_S = 0.5
#: Passing runs of a test (or runs of a session) needed before anything is judged (default).
MIN_RUNS = 5

AnomalyKind = Literal["duration_jump", "slow_session", "success_rate_drop"]


def median(values: Iterable[float]) -> float:
    """The median, as ``statistics.median`` computes it (the mean of the middle two for an
    even count); without importing ``statistics`` (and ``fractions``) into every session."""
    ordered = sorted(values)
    n = len(ordered)
    if not n:
        raise ValueError("median() of no values")
    mid = n // 2
    return ordered[mid] if n % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def mad(values: Sequence[float]) -> float:
    """Median absolute deviation from the median."""
    if not values:
        raise ValueError("mad() of no values")
    med = median(values)
    return median([abs(v - med) for v in values])


# Named tuples, not dataclasses: a session imports this module at configure time, where
# each dataclass would cost about 0.75 ms to create.


class Baseline(NamedTuple):
    """The recent level of a figure and the limit beyond which a value is anomalous."""

    median: float
    mad: float
    limit: float
    samples: int


def baseline(
    values: Sequence[float],
    *,
    upper: bool = True,
    k: float = 3.5,
    min_abs: float = 0.0,
    min_rel: float = 0.0,
) -> Baseline:
    """The median of ``values`` and the limit ``median ± max(k·1.4826·MAD, min_abs,
    min_rel·|median|)`` (+ for ``upper``, - otherwise)."""
    med = median(values)
    spread = mad(values)
    margin = max(k * MAD_SCALE * spread, min_abs, min_rel * abs(med))
    return Baseline(med, spread, med + margin if upper else med - margin, len(values))


class Anomaly(NamedTuple):
    kind: AnomalyKind
    subject: str  # a node id, or "session"
    value: float
    baseline: float  # the recent median
    limit: float  # the value beyond which it counted
    message: str
    tests: tuple[str, ...] = ()

    def to_alert(self) -> dict[str, Any]:
        """An entry for the report's ``alerts`` (severity warning)."""
        metric = {
            "duration_jump": "test_duration",
            "slow_session": "test_execution_time",
            "success_rate_drop": "success_rate",
        }[self.kind]
        return {
            "rule": f"anomaly: {self.kind}",
            "severity": "warning",
            "status": "crossed",
            "metric": metric,
            "value": self.value,
            "threshold": self.limit,
            "baseline": self.baseline,
            "message": self.message,
            "tests": list(self.tests),
        }


class DurationJumps(NamedTuple):
    """What :func:`duration_jumps` found.

    ``regression`` is the ``duration_regression`` metric: for every test with enough
    history, the percent by which it ran slower than its baseline median when that is a
    jump, else 0. Tests with too little history are absent.
    """

    anomalies: tuple[Anomaly, ...]
    regression: dict[str, float]


def duration_jumps(
    current: Mapping[str, float],
    histories: Iterable[tuple[str, Sequence[HistoryRow]]],
    *,
    exclude_run: str | None = None,
    recent: int = 20,
    min_runs: int = MIN_RUNS,
    k: float = 3.5,
    min_abs: float = MIN_JUMP_S,
    min_rel: float = 0.2,
) -> DurationJumps:
    """Tests whose duration in this run (``current``: nodeid -> seconds, passing tests only)
    jumped against the last ``recent`` passing runs of the same test.

    ``histories`` yields ``(nodeid, rows oldest first)``; rows of ``exclude_run`` (this run,
    if it was stored already) are ignored. At least ``min_runs`` passing runs are needed.
    """
    anomalies: list[Anomaly] = []
    regression: dict[str, float] = {}
    for nodeid, rows in histories:
        if nodeid not in current:
            continue
        durations = [
            r.duration_s for r in rows if r.outcome == "passed" and r.run_id != exclude_run
        ][-recent:]
        if len(durations) < min_runs:
            continue
        now = current[nodeid]
        base = baseline(durations, k=k, min_abs=min_abs, min_rel=min_rel)
        if now > base.limit:
            pct = 100.0 * (now - base.median) / max(base.median, 0.001)
            regression[nodeid] = pct
            anomalies.append(
                Anomaly(
                    "duration_jump",
                    nodeid,
                    now,
                    base.median,
                    base.limit,
                    f"{nodeid} took {format_value(now, 'time')}, its recent median is "
                    f"{format_value(base.median, 'time')} over {base.samples} passing runs "
                    f"(+{pct:.0f}%)",
                    (nodeid,),
                )
            )
        else:
            regression[nodeid] = 0.0
    anomalies.sort(key=lambda a: a.value - a.baseline, reverse=True)
    return DurationJumps(tuple(anomalies), regression)


def slow_session(
    execution_time_s: float,
    runs: Sequence[RunRow],
    *,
    exclude_run: str | None = None,
    min_runs: int = MIN_RUNS,
    k: float = 3.5,
    min_abs: float = 5.0,
    min_rel: float = 0.2,
) -> Anomaly | None:
    """This session's test execution time against the recent runs' median."""
    times = [r.test_execution_time_s for r in runs if r.run.run_id != exclude_run and r.tests > 0]
    if len(times) < min_runs:
        return None
    base = baseline(times, k=k, min_abs=min_abs, min_rel=min_rel)
    if execution_time_s <= base.limit:
        return None
    return Anomaly(
        "slow_session",
        "session",
        execution_time_s,
        base.median,
        base.limit,
        f"test execution took {format_value(execution_time_s, 'time')}, the recent median is "
        f"{format_value(base.median, 'time')} over {base.samples} runs",
    )


def success_rate_drop(
    success_rate: float,
    runs: Sequence[RunRow],
    *,
    exclude_run: str | None = None,
    min_runs: int = MIN_RUNS,
    k: float = 3.5,
    min_abs: float = 5.0,
) -> Anomaly | None:
    """This session's success rate (percent) against the recent runs' level."""
    rates = [r.success_rate for r in runs if r.run.run_id != exclude_run]
    values = [rate for rate in rates if rate is not None]
    if len(values) < min_runs:
        return None
    base = baseline(values, upper=False, k=k, min_abs=min_abs)
    if success_rate >= base.limit:
        return None
    return Anomaly(
        "success_rate_drop",
        "session",
        success_rate,
        base.median,
        base.limit,
        f"success rate {format_value(success_rate, 'percent')} is below its recent level "
        f"({format_value(base.median, 'percent')} median over {base.samples} runs)",
    )
