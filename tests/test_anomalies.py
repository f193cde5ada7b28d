"""Anomalies against a test's or a session's own recent history (pure)."""

from __future__ import annotations

import statistics

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pytest_p3monitor.anomalies import (
    MAD_SCALE,
    baseline,
    duration_jumps,
    mad,
    median,
    slow_session,
    success_rate_drop,
)
from pytest_p3monitor.records import HistoryRow, RunInfo, RunRow


def rows(durations: list[float], outcome: str = "passed", start: int = 0) -> list[HistoryRow]:
    return [
        HistoryRow(
            run_seq=start + i,
            run_id=f"r{start + i}",
            started_at=1000.0 + i,
            commit="c",
            branch="main",
            outcome=outcome,
            reruns=0,
            duration_s=d,
        )
        for i, d in enumerate(durations)
    ]


def run_row(seq: int, exec_time: float = 10.0, tests: int = 10, failed: int = 0) -> RunRow:
    return RunRow(
        run_seq=seq,
        run=RunInfo(run_id=f"r{seq}", started_at=1000.0 + seq),
        tests=tests,
        passed=tests - failed,
        failed=failed,
        errors=0,
        skipped=0,
        xfailed=0,
        xpassed=0,
        reruns=0,
        test_execution_time_s=exec_time,
        metrics={},
    )


def test_mad_and_baseline() -> None:
    assert mad([1.0, 2.0, 3.0, 4.0, 100.0]) == 1.0
    base = baseline([1.0, 2.0, 3.0, 4.0, 100.0], k=3.5)
    assert base.median == 3.0
    assert base.limit == pytest.approx(3.0 + 3.5 * MAD_SCALE)
    low = baseline([90.0, 100.0, 100.0], upper=False, min_abs=5.0)
    assert low.limit == 95.0
    with pytest.raises(ValueError):
        mad([])


def test_duration_jump_found_with_message_and_regression_percent() -> None:
    history = {"t.py::slow": rows([1.0, 1.1, 0.9, 1.0, 1.05, 0.95])}
    found = duration_jumps({"t.py::slow": 3.0}, history.items())
    (anomaly,) = found.anomalies
    assert anomaly.kind == "duration_jump"
    assert anomaly.subject == "t.py::slow"
    assert anomaly.baseline == pytest.approx(1.0)
    assert (
        anomaly.message
    ) == "t.py::slow took 3s, its recent median is 1s over 6 passing runs (+200%)"
    assert found.regression == {"t.py::slow": pytest.approx(200.0)}
    alert = anomaly.to_alert()
    assert alert["severity"] == "warning"
    assert alert["tests"] == ["t.py::slow"]


def test_small_absolute_change_of_fast_test_is_no_jump() -> None:
    # 10 ms -> 300 ms is +2900% and far beyond the noise, but under the 0.5 s minimum
    history = {"t.py::fast": rows([0.010] * 10)}
    found = duration_jumps({"t.py::fast": 0.3}, history.items())
    assert found.anomalies == ()
    assert found.regression == {"t.py::fast": 0.0}


def test_noisy_history_tolerates_a_noisy_value() -> None:
    history = {"t.py::noisy": rows([2.0, 4.0, 1.0, 5.0, 3.0, 2.5, 4.5])}
    assert duration_jumps({"t.py::noisy": 6.0}, history.items()).anomalies == ()
    assert len(duration_jumps({"t.py::noisy": 12.0}, history.items()).anomalies) == 1


def test_only_passing_runs_count_and_enough_of_them() -> None:
    failing = rows([30.0] * 10, outcome="failed")  # timeouts must not lift the baseline
    passing = rows([1.0] * 4, start=10)
    found = duration_jumps({"t": 5.0}, [("t", failing + passing)])
    assert found.regression == {}  # only 4 passing runs: too little history
    found = duration_jumps({"t": 5.0}, [("t", failing + passing)], min_runs=4)
    assert len(found.anomalies) == 1


def test_recent_window_and_excluded_run() -> None:
    old_slow = rows([10.0] * 20)
    recent_fast = rows([1.0] * 20, start=20)
    found = duration_jumps({"t": 5.0}, [("t", old_slow + recent_fast)], recent=20)
    assert len(found.anomalies) == 1
    this_run = rows([5.0], start=40)
    found = duration_jumps({"t": 5.0}, [("t", recent_fast + this_run)], exclude_run="r40")
    assert len(found.anomalies) == 1


def test_tests_not_in_this_run_are_ignored() -> None:
    found = duration_jumps({"a": 1.0}, [("b", rows([1.0] * 10))])
    assert found.regression == {}


def test_slow_session() -> None:
    runs = [run_row(i, exec_time=60.0 + i % 3) for i in range(10)]
    assert slow_session(62.0, runs) is None
    anomaly = slow_session(120.0, runs)
    assert anomaly is not None
    assert anomaly.baseline == 61.0
    assert anomaly.message == "test execution took 2m, the recent median is 61s over 10 runs"
    assert slow_session(120.0, runs[:4]) is None  # too little history
    # a 2 s suite going to 4 s stays under the 5 s minimum change
    assert slow_session(4.0, [run_row(i, exec_time=2.0) for i in range(10)]) is None


def test_success_rate_drop() -> None:
    runs = [run_row(i, tests=100, failed=i % 2) for i in range(10)]  # 99% .. 100%
    assert success_rate_drop(97.0, runs) is None
    anomaly = success_rate_drop(80.0, runs)
    assert anomaly is not None
    assert anomaly.to_alert()["metric"] == "success_rate"
    assert "success rate 80% is below its recent level" in anomaly.message
    assert success_rate_drop(0.0, runs[:3]) is None


_durations = st.lists(st.floats(min_value=0.0, max_value=1e4), min_size=5, max_size=40)


@given(_durations, st.floats(min_value=0.0, max_value=1e4))
def test_jump_iff_beyond_limit_and_limit_above_median(history: list[float], now: float) -> None:
    found = duration_jumps({"t": now}, [("t", rows(history))])
    base = baseline(history[-20:], min_abs=0.5, min_rel=0.2)
    assert base.limit >= base.median + 0.5
    assert (len(found.anomalies) == 1) == (now > base.limit)
    assert found.regression["t"] >= 0.0
    # a value at or under the median is never a jump
    assert (
        duration_jumps({"t": statistics.median(history[-20:])}, [("t", rows(history))]).anomalies
        == ()
    )


@given(_durations, st.floats(min_value=0.0, max_value=1e4), st.sampled_from([0.25, 2.0, 8.0]))
def test_verdict_does_not_depend_on_units_or_order(
    history: list[float], now: float, scale: float
) -> None:
    # without the absolute minimum, the verdict is scale-free: seconds or milliseconds,
    # the same history says the same thing; the order within the window does not matter
    def verdict(values: list[float], value: float) -> bool:
        found = duration_jumps({"t": value}, [("t", rows(values))], min_abs=0.0, recent=100)
        return bool(found.anomalies)

    expected = verdict(history, now)
    assert verdict([d * scale for d in history], now * scale) == expected
    assert verdict(sorted(history), now) == expected


@given(st.lists(st.floats(-1e9, 1e9, allow_nan=False), min_size=1))
def test_median_is_the_statistics_median(values: list[float]) -> None:
    assert median(values) == statistics.median(values)
    assert median(iter(values)) == statistics.median(values)


def test_median_of_nothing() -> None:
    with pytest.raises(ValueError, match="no values"):
        median([])
