"""Recommendations from one run's figures: workers, slow tests, flaky tests, memory.

Pure. Each recommendation has a ``type``, a ``priority`` (high, medium, low), the advice
itself and its ``expected_impact``, as in the report's ``recommendations``.

The worker count is estimated by scheduling the recorded test durations on N workers with
the longest-processing-time-first rule (each test, longest first, goes to the least loaded
worker; Graham 1969: within 4/3 of the optimum), plus the cost of starting xdist and its
workers (measured on a loaded 2-core machine: ``-n 2`` adds about 1.5-2 s to a one-test
session). xdist's own ``load`` scheduling is close to that when tests are many.
"""

from __future__ import annotations

import functools
import heapq
import math
import operator
from collections.abc import Collection, Iterable, Mapping, Sequence
from typing import Any, Literal, NamedTuple

from .rules import format_value

__all__ = [
    "MIN_SAVING_REL",
    "MIN_SAVING_S",
    "SLOW_TEST_S",
    "XDIST_PER_WORKER_S",
    "XDIST_STARTUP_S",
    "Recommendation",
    "WorkerEstimate",
    "estimate_workers",
    "lpt_makespan",
    "may_advise",
    "recommend_flaky",
    "recommend_memory",
    "recommend_slowest",
    "recommend_workers",
    "recommendations",
]

Priority = Literal["high", "medium", "low"]
_ORDER: dict[str, int] = {"high": 0, "medium": 1, "low": 2}

#: Estimated cost of starting pytest-xdist, and of each of its workers (seconds).
XDIST_STARTUP_S = 1.0
XDIST_PER_WORKER_S = 0.5
#: A worker count is advised when it saves at least this many seconds and this share.
MIN_SAVING_S = 1.0
MIN_SAVING_REL = 0.1
#: Tests at least this long are named as the slowest ones.
SLOW_TEST_S = 1.0


# Named tuples, not dataclasses: a session imports this module at configure time, where
# each dataclass would cost about 0.75 ms to create.


class Recommendation(NamedTuple):
    type: str  # "parallelism", "slow_tests", "flaky_tests", "memory"
    priority: Priority
    recommendation: str
    expected_impact: str
    tests: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "type": self.type,
            "priority": self.priority,
            "recommendation": self.recommendation,
            "expected_impact": self.expected_impact,
        }
        if self.tests:
            data["tests"] = list(self.tests)
        return data


def lpt_makespan(durations: Iterable[float], workers: int) -> float:
    """The wall time of ``durations`` scheduled longest first on ``workers`` workers."""
    return _lpt_longest_first(sorted(durations, reverse=True), workers)


def _lpt_longest_first(ordered: Iterable[float], workers: int) -> float:
    """:func:`lpt_makespan` of durations already sorted longest first.

    Each duration goes to the least loaded worker. One and two workers, the counts most
    machines advise on, are done without the heap (the same sums, added in the same order):
    half the cost for thousands of tests.
    """
    if workers < 1:
        raise ValueError("workers must be >= 1")
    if workers == 1:
        return functools.reduce(operator.add, ordered, 0.0)
    if workers == 2:
        low = high = 0.0  # the heap's two loads, loads[0] and loads[1]
        for duration in ordered:
            load = low + duration
            if load < high:  # as heapreplace orders them
                low = load
            else:
                low, high = high, load
        return max(low, high)
    loads = [0.0] * workers
    for duration in ordered:
        heapq.heapreplace(loads, loads[0] + duration)
    return max(loads)


class WorkerEstimate(NamedTuple):
    workers: int  # 0 = without xdist
    wall_s: float


def estimate_workers(
    durations: Sequence[float],
    max_workers: int,
    *,
    startup_s: float = XDIST_STARTUP_S,
    per_worker_s: float = XDIST_PER_WORKER_S,
) -> list[WorkerEstimate]:
    """Estimated test wall time without xdist and with 1..``max_workers`` workers."""
    ordered = sorted(durations, reverse=True)  # once for every worker count
    counts = range(1, max(1, max_workers) + 1)
    return _estimates(durations, ordered, counts, startup_s, per_worker_s)


def _estimates(
    durations: Sequence[float],
    ordered: Sequence[float],
    counts: Iterable[int],
    startup_s: float,
    per_worker_s: float,
) -> list[WorkerEstimate]:
    """Without xdist, then with each of ``counts`` workers (``ordered``: longest first)."""
    estimates = [WorkerEstimate(0, sum(durations))]
    for n in counts:
        overhead = startup_s + per_worker_s * n
        estimates.append(WorkerEstimate(n, _lpt_longest_first(ordered, n) + overhead))
    return estimates


def _one_worker_is_slower(ordered: Sequence[float], total: float, overhead: float) -> bool:
    """Whether one xdist worker is surely slower than none: the tests one after the other
    (``ordered``, longest first) plus xdist's ``overhead``, against ``total``, their sum in
    the session's order. Then its estimate can neither be the best nor be advised (running
    without xdist is as good, and preferred), and need not be made.

    Two float sums of the same n numbers, none negative, differ by less than
    2n * 2**-53 times their sum; the margin here is twice that.
    """
    return bool(ordered) and ordered[-1] >= 0 and overhead > len(ordered) * 2.0**-50 * total


def _saving_bound(total: float, max_workers: int, startup_s: float, per_worker_s: float) -> float:
    """At most what 1..``max_workers`` workers save on ``total`` seconds of tests run without
    xdist: on n workers the busiest one runs at least the mean, ``total / n``."""
    floor = min(total / n + startup_s + per_worker_s * n for n in range(1, max_workers + 1))
    lowest = min(total, floor)
    return total - lowest + 1e-9 * abs(lowest)  # the margin covers rounding in the sums


def _n_flag(workers: int) -> str:
    return "without -n" if workers == 0 else f"-n {workers}"


def recommend_workers(
    durations: Sequence[float],
    current_workers: int,
    cpu_count: int,
    *,
    tolerance: float = 0.05,
    min_saving_s: float = MIN_SAVING_S,
    min_saving_rel: float = MIN_SAVING_REL,
    startup_s: float = XDIST_STARTUP_S,
    per_worker_s: float = XDIST_PER_WORKER_S,
) -> Recommendation | None:
    """The xdist worker count that would cut the wall time most.

    The fewest workers within ``tolerance`` of the best estimate are advised (extra workers
    that save nothing only cost CPU), at most ``cpu_count``. None when the saving over the
    current setting is under ``min_saving_s`` or ``min_saving_rel``.
    """
    if not durations:
        return None
    max_workers = max(1, min(cpu_count, len(durations)))  # more workers than tests do nothing
    if not current_workers:
        total = sum(durations)
        bound = _saving_bound(total, max_workers, startup_s, per_worker_s)
        if bound < max(min_saving_s, min_saving_rel * total):
            return None  # no worker count can save enough: no need to schedule the tests
    ordered = sorted(durations, reverse=True)
    counts = range(1, max_workers + 1)
    if current_workers != 1 and _one_worker_is_slower(
        ordered, sum(durations), startup_s + per_worker_s
    ):
        counts = range(2, max_workers + 1)  # no need to schedule on one worker
    estimates = _estimates(durations, ordered, counts, startup_s, per_worker_s)
    best_wall = min(e.wall_s for e in estimates)
    good = [e for e in estimates if e.wall_s <= best_wall * (1 + tolerance)]
    choice = min(good, key=lambda e: (e.workers if e.workers else 1, e.workers))
    current = next(
        (e for e in estimates if e.workers == current_workers),
        WorkerEstimate(
            current_workers,
            lpt_makespan(durations, current_workers) + startup_s + per_worker_s * current_workers
            if current_workers
            else sum(durations),
        ),
    )
    saving = current.wall_s - choice.wall_s
    if choice.workers == current_workers or saving < max(
        min_saving_s, min_saving_rel * current.wall_s
    ):
        return None
    share = saving / current.wall_s if current.wall_s > 0 else 0.0
    priority: Priority = "high" if share >= 0.3 else "medium" if share >= 0.15 else "low"
    if choice.workers == 0:
        advice = "run the tests without pytest-xdist"
    else:
        advice = f"run the tests with pytest-xdist {_n_flag(choice.workers)}"
    return Recommendation(
        "parallelism",
        priority,
        f"{advice} (now {_n_flag(current_workers)}; {cpu_count} CPUs)",
        f"test wall time about {format_value(choice.wall_s, 'time')} instead of "
        f"{format_value(current.wall_s, 'time')} (-{share:.0%}), estimated by scheduling "
        f"the {len(durations)} recorded test durations longest first",
    )


def recommend_slowest(
    durations: Mapping[str, float],
    *,
    top: int = 5,
    min_duration_s: float = SLOW_TEST_S,
    min_share: float = 0.2,
) -> Recommendation | None:
    """The slowest tests and their share of the total test time, when it is worth it."""
    total = sum(durations.values())
    if total <= 0:
        return None
    if math.isfinite(total) and max(durations.values()) < min_duration_s:
        return None  # no test takes min_duration_s (most sessions): one scan in C tells
    # the ``top`` slowest of the tests that take at least min_duration_s
    candidates = [(nodeid, d) for nodeid, d in durations.items() if d >= min_duration_s]
    if not candidates:
        return None
    slow = sorted(candidates, key=lambda item: (-item[1], item[0]))[:top]
    slow_sum = sum(d for _, d in slow)
    share = slow_sum / total
    if share < min_share:
        return None
    priority: Priority = "high" if share >= 0.5 else "medium" if share >= 0.3 else "low"
    named = ", ".join(f"{nodeid} ({format_value(d, 'time')})" for nodeid, d in slow)
    noun = "slowest test takes" if len(slow) == 1 else f"{len(slow)} slowest tests take"
    them = "it" if len(slow) == 1 else "them"
    return Recommendation(
        "slow_tests",
        priority,
        f"speed up or split the slowest {'test' if len(slow) == 1 else 'tests'}: {named}",
        f"the {noun} {share:.0%} of the test time ({format_value(slow_sum, 'time')} of "
        f"{format_value(total, 'time')}); halving {them} saves about "
        f"{format_value(slow_sum / 2, 'time')} per run",
        tuple(nodeid for nodeid, _ in slow),
    )


def recommend_flaky(
    flaky: Iterable[Mapping[str, Any]],
    *,
    top: int = 5,
    high_score: float = 0.3,
    quarantined: bool = False,
) -> list[Recommendation]:
    """Flaky tests (entries with ``nodeid``, ``status`` "flaky", ``score``, ``runs``,
    ``failures``) to fix, or to quarantine meanwhile (unless ``quarantined``: the session
    quarantines them already); the highest scores first."""
    entries = [e for e in flaky if e.get("status", "flaky") == "flaky" and e.get("nodeid")]
    entries.sort(key=lambda e: -float(e.get("score") or 0.0))
    out: list[Recommendation] = []
    for entry in entries[:top]:
        score = float(entry.get("score") or 0.0)
        runs = entry.get("runs")
        failures = entry.get("failures")
        reruns = entry.get("rerun_passes")
        reruns = reruns if isinstance(reruns, int) else 0
        if isinstance(runs, int) and isinstance(failures, int) and runs > 0:
            hit = failures + reruns
            impact = (
                f"removes the spurious failures or reruns of {hit} of its last {runs} runs "
                f"({hit / runs:.0%})"
            )
        else:
            impact = "removes spurious failures and reruns"
        priority: Priority = "high" if score >= high_score else "medium"
        meanwhile = (
            "it is quarantined until then"
            if quarantined
            else "until then quarantine it (ini p3monitor_quarantine = true)"
        )
        out.append(
            Recommendation(
                "flaky_tests",
                priority,
                f"fix the flaky test {entry['nodeid']} (flakiness score {score:.2f}); {meanwhile}",
                impact,
                (str(entry["nodeid"]),),
            )
        )
    if len(entries) > top:
        rest = entries[top:]
        out.append(
            Recommendation(
                "flaky_tests",
                "low",
                f"{len(rest)} more flaky tests: see `p3monitor flaky`",
                "fewer spurious failures",
                tuple(str(e["nodeid"]) for e in rest),
            )
        )
    return out


def recommend_memory(
    process_percent: float | None,
    containers: Iterable[Mapping[str, Any]] = (),
    *,
    near: float = 80.0,
    critical: float = 95.0,
) -> list[Recommendation]:
    """Memory close to its limit, for the test processes and for each container."""
    out: list[Recommendation] = []
    subjects: list[tuple[str, float]] = []
    if process_percent is not None:
        subjects.append(("the test processes", float(process_percent)))
    for container in containers:
        peak = container.get("memory_percent_peak")
        if isinstance(peak, (int, float)):
            name = container.get("name") or container.get("id") or "?"
            subjects.append((f"container {name}", float(peak)))
    for subject, peak in subjects:
        if peak < near:
            continue
        priority: Priority = "high" if peak >= critical else "medium"
        out.append(
            Recommendation(
                "memory",
                priority,
                f"{subject} peaked at {peak:.0f}% of their memory limit: raise the limit or "
                "find the tests that use the most (test_rss in the report)",
                "avoids out-of-memory kills and swapping that slow or break the run",
            )
        )
    return out


def recommendations(
    *,
    durations: Mapping[str, float],
    current_workers: int,
    cpu_count: int,
    flaky: Iterable[Mapping[str, Any]] = (),
    quarantined: bool = False,
    memory_percent: float | None = None,
    containers: Iterable[Mapping[str, Any]] = (),
) -> list[Recommendation]:
    """All recommendations for one run, highest priority first."""
    out: list[Recommendation] = []
    workers = recommend_workers(list(durations.values()), current_workers, cpu_count)
    if workers is not None:
        out.append(workers)
    slowest = recommend_slowest(durations)
    if slowest is not None:
        out.append(slowest)
    out.extend(recommend_flaky(flaky, quarantined=quarantined))
    out.extend(recommend_memory(memory_percent, containers))
    out.sort(key=lambda r: _ORDER[r.priority])
    return out


def may_advise(
    durations: Collection[float], current_workers: int, cpu_count: int, *, error: float = 0.0
) -> bool:
    """Whether :func:`recommendations` can advise on workers or slow tests for durations that
    each lie within ``error`` of ``durations`` (e.g. before rounding).

    False means no such advice whatever the exact values: a caller can skip preparing
    thousands of durations (most sessions of fast tests need no look at them).
    """
    if not durations:
        return False
    total = sum(durations)
    if current_workers or not math.isfinite(total):
        return True  # the current setting's own estimate needs the schedule
    # The saving bound grows with the total and so does the threshold: the exact total lies
    # within ``slack`` of this one, the bound is at most its value at the top of that range
    # and the threshold at least its value at the bottom.
    slack = error * len(durations)
    max_workers = max(1, min(cpu_count, len(durations)))
    bound = _saving_bound(total + slack, max_workers, XDIST_STARTUP_S, XDIST_PER_WORKER_S)
    if bound >= max(MIN_SAVING_S, MIN_SAVING_REL * (total - slack)):
        return True  # a worker count may save enough
    return max(durations) + error >= SLOW_TEST_S  # recommend_slowest may name a test
