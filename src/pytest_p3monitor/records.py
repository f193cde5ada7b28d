"""The records that flow one way: hooks -> records -> store and report.

Everything here is plain data. Analysis modules (flaky, rules, health) take these
records and the store's history rows and return new values; they never touch pytest.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple

Outcome = Literal["passed", "failed", "error", "skipped", "xfailed", "xpassed"]
OUTCOMES: tuple[Outcome, ...] = ("passed", "failed", "error", "skipped", "xfailed", "xpassed")

#: Outcomes that count as a failure of the test in history analysis.
FAILING_OUTCOMES: frozenset[str] = frozenset({"failed", "error"})
#: Outcomes that count as a success of the test in history analysis.
PASSING_OUTCOMES: frozenset[str] = frozenset({"passed", "xfailed"})


class CIInfo(NamedTuple):
    """Where a run happened, as the CI system tells it (all None outside CI)."""

    provider: str | None = None
    run_id: str | None = None
    job: str | None = None
    url: str | None = None


#: A run outside CI (immutable, so one value serves every run).
NO_CI = CIInfo()


@dataclass
class RunInfo:
    """One pytest session."""

    run_id: str
    started_at: float  # epoch seconds
    commit: str | None = None
    branch: str | None = None
    ci: CIInfo = NO_CI
    hostname: str = ""
    python: str = ""
    pytest: str = ""
    workers: int = 0  # xdist workers; 0 for a session without xdist
    finished_at: float | None = None
    exit_status: int | None = None

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["ci"] = self.ci._asdict()
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunInfo:
        values = dict(data)
        values["ci"] = CIInfo(**(values.get("ci") or {}))
        return cls(**values)


@dataclass(slots=True)
class TestRecord:
    """One test item in one run. Reruns and subtests are counted here, never duplicated.

    Slotted: a session keeps one per test until it ends.
    """

    __test__ = False  # not a test class, despite the name

    nodeid: str
    outcome: Outcome = "passed"
    file: str | None = None
    line: int | None = None
    setup_s: float = 0.0
    call_s: float = 0.0
    teardown_s: float = 0.0
    start: float | None = None  # epoch seconds, first phase of the first attempt
    stop: float | None = None  # epoch seconds, last phase of the last attempt
    reruns: int = 0
    worker: str | None = None
    message: str | None = None  # short failure message
    subtests_failed: int = 0
    #: the test's own figures (resources, ...): name -> number
    figures: dict[str, float] = field(default_factory=dict)

    @property
    def duration_s(self) -> float:
        return self.setup_s + self.call_s + self.teardown_s

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["duration_s"] = self.duration_s
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TestRecord:
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


class HistoryRow(NamedTuple):
    """One past result of one test, as the store returns it for analysis.

    Rows of one test come ordered oldest first. ``run_seq`` orders runs across the store.
    A named tuple, not a dataclass: the store builds millions of them for `p3monitor flaky`.
    """

    run_seq: int
    run_id: str
    started_at: float
    commit: str | None
    branch: str | None
    outcome: str
    reruns: int
    duration_s: float
    message: str | None = None


#: Where a run's metrics (:attr:`RunRow.metrics`, as the report's ``metrics`` key holds them)
#: keep the test processes' figures, and the two peaks the trends read there: memory as a
#: percentage of the limit, and RSS bytes.
PROCESS_PATH = ("metrics", "resource_usage", "process")
PEAK_KEYS = ("memory_percent_peak", "rss_bytes_peak")


def process_peaks(process: Any) -> tuple[Any, Any]:
    """The values at :data:`PEAK_KEYS` in ``process`` (the mapping at :data:`PROCESS_PATH`
    in a run's metrics), as stored; None where missing."""
    if not isinstance(process, Mapping):
        return None, None
    memory, rss = PEAK_KEYS
    return process.get(memory), process.get(rss)


def stored_peaks(metrics: Any) -> tuple[Any, Any]:
    """:func:`process_peaks` of a run's whole metrics."""
    for key in PROCESS_PATH:
        if not isinstance(metrics, Mapping):
            return None, None
        metrics = metrics.get(key)
    return process_peaks(metrics)


class RunRow(NamedTuple):
    """One past run with its counts, as the store returns it.

    Named tuples here (and for :class:`CIInfo`, :class:`HistoryRow`): immutable records that
    cost a tenth of a frozen dataclass to define, which every ``--p3monitor`` session pays.
    """

    run_seq: int
    run: RunInfo
    tests: int
    passed: int
    failed: int
    errors: int
    skipped: int
    xfailed: int
    xpassed: int
    reruns: int
    test_execution_time_s: float
    #: session-level figures stored with the run (resource peaks, phases, health score ...)
    metrics: dict[str, Any]

    @property
    def success_rate(self) -> float | None:
        """Percent of executed tests (not skipped) that did not fail; None when none ran."""
        return success_rate(self.tests, self.skipped, self.failed, self.errors)


def execution_time_s(tests: Sequence[TestRecord]) -> float:
    """Wall time spent running tests: first start to last stop (parallel workers overlap).

    Falls back to the sum of the tests' durations where start/stop are unknown.
    """
    starts = [t.start for t in tests if t.start is not None]
    stops = [t.stop for t in tests if t.stop is not None]
    if starts and stops:
        return max(0.0, max(stops) - min(starts))
    return sum(t.duration_s for t in tests)


def success_rate(tests: int, skipped: int, failed: int, errors: int) -> float | None:
    """Percent of executed (not skipped) tests that did not fail; None when none ran."""
    executed = tests - skipped
    if executed <= 0:
        return None
    return 100.0 * (executed - failed - errors) / executed
