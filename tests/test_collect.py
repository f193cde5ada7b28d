"""Folding reports into records: one record per item, whatever the reports."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from pytest_p3monitor import collect
from pytest_p3monitor.collect import (
    FIGURES_ATTR,
    MESSAGE_MAX,
    RecordBuilder,
    add_figures,
    short_message,
)


@dataclass
class Crash:
    message: str


@dataclass
class LongRepr:
    reprcrash: Crash

    def __str__(self) -> str:
        return "traceback...\n" + self.reprcrash.message


@dataclass
class Rep:
    when: str
    outcome: str
    nodeid: str = "t.py::test_x"
    duration: float = 0.1
    start: float = 100.0
    stop: float = 100.1
    longrepr: Any = None
    location: tuple[str, int, str] = ("t.py", 9, "test_x")
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.outcome in ("failed", "rerun") and self.longrepr is None:
            self.longrepr = LongRepr(Crash(f"{self.when} broke"))
        for k, v in self.extra.items():
            setattr(self, k, v)


def fold(*reports: Rep) -> RecordBuilder:
    b = RecordBuilder()
    for r in reports:
        b.add(r)
    return b


def test_passed_test() -> None:
    b = fold(Rep("setup", "passed"), Rep("call", "passed"), Rep("teardown", "passed"))
    (r,) = b.records.values()
    assert (r.outcome, r.file, r.line, r.reruns, r.message) == ("passed", "t.py", 10, 0, None)
    assert abs(r.duration_s - 0.3) < 1e-9


def test_outcome_table() -> None:
    xfail = {"wasxfail": "reason"}
    cases = {
        "error": [Rep("setup", "failed"), Rep("teardown", "passed")],
        "skipped": [Rep("setup", "skipped"), Rep("teardown", "passed")],
        "xfailed": [Rep("setup", "passed"), Rep("call", "skipped", extra=xfail)],
        "xpassed": [Rep("setup", "passed"), Rep("call", "passed", extra=xfail)],
        "failed": [Rep("setup", "passed"), Rep("call", "failed"), Rep("teardown", "failed")],
    }
    for expected, reports in cases.items():
        assert fold(*reports).records["t.py::test_x"].outcome == expected, expected
    teardown_error = fold(Rep("setup", "passed"), Rep("call", "passed"), Rep("teardown", "failed"))
    rec = teardown_error.records["t.py::test_x"]
    assert (rec.outcome, rec.message) == ("error", "teardown broke")


def test_worker_and_figures_travel_on_reports() -> None:
    b = fold(
        Rep("setup", "passed", extra={"worker_id": "gw1"}),
        Rep("call", "passed"),
        Rep("teardown", "passed", extra={"p3monitor": {"cpu_s": 0.5}}),
    )
    rec = b.records["t.py::test_x"]
    assert rec.worker == "gw1"
    assert rec.figures == {"cpu_s": 0.5}


def test_meter_measures_each_attempt_at_its_teardown_report() -> None:
    laps = iter(
        [
            {"cpu_time_s": 0.5, "rss_peak_bytes": 300, "write_bytes": 10},
            {"cpu_time_s": 0.25, "rss_peak_bytes": 200, "write_bytes": 4},
        ]
    )
    b = RecordBuilder()
    b.meter = lambda: next(laps)
    reports = [
        Rep("setup", "passed"),
        Rep("call", "rerun"),  # pytest-rerunfailures: the first attempt failed
        Rep("teardown", "passed"),
        Rep("setup", "passed"),
        Rep("call", "passed"),
        Rep("teardown", "passed"),
    ]
    for r in reports:
        b.add(r)
    (rec,) = b.records.values()
    # both attempts: times and bytes add up, the peak is the larger one
    assert rec.figures == {"cpu_time_s": 0.75, "rss_peak_bytes": 300, "write_bytes": 14}
    # each teardown report carries its own attempt's figures (xdist, the JUnit properties)
    assert getattr(reports[2], FIGURES_ATTR) == {
        "cpu_time_s": 0.5,
        "rss_peak_bytes": 300,
        "write_bytes": 10,
    }
    assert not hasattr(reports[1], FIGURES_ATTR)


@given(
    st.lists(
        st.dictionaries(
            st.sampled_from(["cpu_time_s", "rss_peak_bytes", "read_bytes"]),
            st.integers(min_value=0, max_value=10**9),
        )
    )
)
def test_add_figures_sums_and_keeps_peaks(attempts: list[dict[str, int]]) -> None:
    total: dict[str, float] = {}
    for figures in attempts:
        add_figures(total, figures)
    for name in ("cpu_time_s", "read_bytes"):
        values = [f[name] for f in attempts if name in f]
        assert total.get(name) == (sum(values) if values else None)
    peaks = [f["rss_peak_bytes"] for f in attempts if "rss_peak_bytes" in f]
    assert total.get("rss_peak_bytes") == (max(peaks) if peaks else None)


def test_message_is_one_short_line() -> None:
    long = Rep("call", "failed", longrepr=LongRepr(Crash("x" * 1000 + "\n  more")))
    msg = short_message(long)
    assert msg is not None and len(msg) == MESSAGE_MAX and "\n" not in msg
    assert short_message(Rep("call", "failed", longrepr="line one\n\nlast line\n")) == "last line"
    assert short_message(Rep("setup", "skipped", longrepr=("f.py", 3, "Skipped: why"))) == (
        "Skipped: why"
    )


attempt = st.sampled_from(["pass", "fail-call", "fail-setup"])


@given(
    attempts=st.lists(attempt, min_size=1, max_size=6),
    subtests=st.lists(st.booleans(), max_size=4),
)
def test_any_attempts_make_one_record_with_reruns_counted(
    attempts: list[str], subtests: list[bool]
) -> None:
    """pytest-rerunfailures: each attempt but the last is reported as 'rerun'."""
    reports: list[Rep] = []
    for i, kind in enumerate(attempts):
        last = i == len(attempts) - 1
        if kind == "fail-setup":
            reports.append(Rep("setup", "failed" if last else "rerun"))
        else:
            reports.append(Rep("setup", "passed"))
            if last:
                for ok in subtests:
                    reports.append(Rep("call", "passed" if ok else "failed", extra={"context": 1}))
            failed = kind == "fail-call" or (last and not all(subtests))
            reports.append(Rep("call", ("failed" if last else "rerun") if failed else "passed"))
        reports.append(Rep("teardown", "passed"))
    b = fold(*reports)
    assert list(b.records) == ["t.py::test_x"]
    rec = b.records["t.py::test_x"]
    reruns = sum(r.outcome == "rerun" for r in reports)
    assert rec.reruns == reruns
    final = attempts[-1]
    if final == "fail-setup":
        assert rec.outcome == "error"
    elif final == "fail-call" or not all(subtests):
        assert rec.outcome == "failed"
    else:
        assert rec.outcome == "passed"
    assert rec.subtests_failed == (0 if final == "fail-setup" else subtests.count(False))


@given(
    tests=st.lists(
        st.lists(st.sampled_from(["passed", "failed", "skipped", "rerun"]), min_size=1, max_size=4),
        min_size=1,
        max_size=5,
    ),
    batch=st.integers(min_value=1, max_value=7),
    peek=st.integers(min_value=0, max_value=30),
)
def test_folding_in_batches_gives_the_records_of_folding_each_report(
    tests: list[list[str]], batch: int, peek: int
) -> None:
    """Reports are kept and folded in batches (and when the records are read): wherever a
    batch ends, even between the reports of one test, the records are the same."""
    reports = []
    for t, outcomes in enumerate(tests):
        location = ("t.py", t, f"test_{t}")
        for i, outcome in enumerate(outcomes):
            when = ("setup", "call", "teardown")[i % 3]
            figures = {"p3monitor": {"cpu_time_s": 1.0}} if when == "teardown" else {}
            reports.append(
                Rep(when, outcome, nodeid=f"t.py::test_{t}", location=location, extra=figures)
            )

    def records(b: RecordBuilder) -> list[tuple[Any, ...]]:
        return [
            (r.nodeid, r.outcome, r.reruns, r.message, r.setup_s, r.call_s, r.figures)
            for r in b.records.values()
        ]

    one_by_one = RecordBuilder()
    for r in reports:
        one_by_one.add(r)
        one_by_one.records  # noqa: B018 - reading the records folds what was kept
    batched = RecordBuilder()
    collect.FOLD_BATCH, saved = batch, collect.FOLD_BATCH
    try:
        for i, r in enumerate(reports):
            batched.add(r)
            if i == peek:
                batched.records  # noqa: B018 - a reader in the middle of the session
    finally:
        collect.FOLD_BATCH = saved
    assert records(batched) == records(one_by_one)


def test_a_failed_teardowns_figures_count_in_its_test() -> None:
    """A rerun teardown (pytest-rerunfailures) ends an attempt: its figures add up too."""
    b = fold(
        Rep("setup", "passed"),
        Rep("call", "passed"),
        Rep("teardown", "rerun", extra={"p3monitor": {"cpu_time_s": 0.5}}),
        Rep("setup", "passed"),
        Rep("call", "passed"),
        Rep("teardown", "passed", extra={"p3monitor": {"cpu_time_s": 0.25}}),
    )
    (rec,) = b.records.values()
    assert (rec.reruns, rec.figures) == (1, {"cpu_time_s": 0.75})


def finished(*reports: Rep) -> dict[str, Any]:
    """The records once the run loop is over (:meth:`RecordBuilder.finish`)."""
    b = fold(*reports)
    b.finish()
    return b.records


def test_a_test_stopped_in_the_middle_is_left_out() -> None:
    """Ctrl-C or pytest.exit() in a test: pytest counts it nowhere, nor does the history."""
    setup, call, teardown = Rep("setup", "passed"), Rep("call", "passed"), Rep("teardown", "passed")
    assert finished(setup) == {}  # stopped in its call
    assert finished(setup, teardown) == {}  # --setup-only: no call
    # the attempt before the stop had failed and was to run again
    assert finished(setup, Rep("call", "rerun"), teardown, setup) == {}
    assert finished(setup, Rep("call", "rerun"), teardown) == {}
    # stopped in its teardown, after the call reported: pytest counts the call
    assert finished(setup, call)["t.py::test_x"].outcome == "passed"
    assert finished(Rep("setup", "failed"))["t.py::test_x"].outcome == "error"
    assert finished(Rep("setup", "skipped"))["t.py::test_x"].outcome == "skipped"
    assert finished(setup, teardown, Rep("teardown", "failed"))["t.py::test_x"].outcome == "error"
    # an unfinished test does not take the others with it
    other = {"nodeid": "t.py::test_y", "location": ("t.py", 20, "test_y")}
    kept = finished(setup, call, teardown, Rep("setup", "passed", **other))
    assert list(kept) == ["t.py::test_x"]


def test_the_report_of_a_crashed_xdist_worker() -> None:
    """xdist reports the test a worker died in as failed, with when '???', no line, and
    start and stop 0 (not times: taken as such they made a run of 56 years)."""
    crash = {
        "start": 0.0,
        "stop": 0.0,
        "duration": 0.0,
        "location": ("t.py", None, "t.py"),
        "longrepr": "worker 'gw0' crashed while running 't.py::test_x'",
    }
    alone = finished(Rep("???", "failed", **crash))["t.py::test_x"]
    assert (alone.outcome, alone.start, alone.stop, alone.line) == ("failed", None, None, None)
    assert alone.message == "worker 'gw0' crashed while running 't.py::test_x'"
    after_setup = finished(Rep("setup", "passed"), Rep("???", "failed", **crash))
    rec = after_setup["t.py::test_x"]
    assert (rec.outcome, rec.start, rec.stop) == ("failed", 100.0, 100.1)
    # rerun after the crash (pytest-rerunfailures): the times and line come with the rerun
    rerun = {**crash, "outcome": "rerun"}
    attempt = [Rep("setup", "passed"), Rep("call", "passed"), Rep("teardown", "passed")]
    then = finished(Rep("???", **rerun), *attempt)["t.py::test_x"]
    assert (then.outcome, then.reruns, then.start, then.stop, then.line) == (
        "passed",
        1,
        100.0,
        100.1,
        10,
    )


def test_reruns_count_attempts_not_reports() -> None:
    """pytest-rerunfailures reports every failed phase of an attempt as a rerun (the call,
    then the teardown), numbering the attempts in ``rerun``: two reruns, not four."""
    reports = []
    for attempt in range(3):
        last = attempt == 2
        n = {"extra": {"rerun": attempt}}
        call = Rep("call", "passed" if last else "rerun", **n)
        call.longrepr = None if last else LongRepr(Crash(f"call broke {attempt}"))
        teardown = Rep("teardown", "passed" if last else "rerun", **n)
        reports += [Rep("setup", "passed", **n), call, teardown]
    rec = finished(*reports)["t.py::test_x"]
    assert (rec.outcome, rec.reruns) == ("passed", 2)
    assert rec.message == "call broke 1"  # the last failed attempt's first failure


def test_subtests_with_reruns_count_in_the_attempt_that_ends_the_test() -> None:
    """pytest-rerunfailures reports an attempt's subtests before its setup; a rerun drops
    the attempt's subtests (as its summary does)."""

    def subtest(message: str) -> Rep:
        return Rep("call", "failed", longrepr=LongRepr(Crash(message)), extra={"context": 1})

    rec = finished(
        subtest("first attempt"),
        Rep("setup", "passed"),
        Rep("call", "rerun"),
        Rep("teardown", "passed"),
        subtest("second attempt"),
        Rep("setup", "passed"),
        Rep("call", "passed"),
        Rep("teardown", "passed"),
    )["t.py::test_x"]
    assert (rec.outcome, rec.reruns, rec.subtests_failed) == ("failed", 1, 1)
    assert rec.message == "second attempt"
