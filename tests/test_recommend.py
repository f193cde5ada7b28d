"""Recommendations: LPT worker estimate, slowest tests, flaky tests, memory (pure)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pytest_p3monitor import recommend
from pytest_p3monitor.recommend import (
    estimate_workers,
    lpt_makespan,
    may_advise,
    recommend_flaky,
    recommend_memory,
    recommend_slowest,
    recommend_workers,
    recommendations,
)


def test_lpt_makespan() -> None:
    assert lpt_makespan([3, 3, 2, 2, 2], 2) == 7  # LPT: {3,2,2} {3,2}; optimum is 6
    assert lpt_makespan([5, 1, 1, 1], 2) == 5
    assert lpt_makespan([], 3) == 0
    assert lpt_makespan([1, 2, 3], 1) == 6
    with pytest.raises(ValueError):
        lpt_makespan([1.0], 0)


def test_estimates_include_overhead() -> None:
    est = estimate_workers([4.0, 4.0], 2, startup_s=1.0, per_worker_s=0.5)
    assert [(e.workers, e.wall_s) for e in est] == [(0, 8.0), (1, 9.5), (2, 6.0)]


def test_recommends_workers_for_many_even_tests() -> None:
    durations = [1.0] * 60
    rec = recommend_workers(durations, current_workers=0, cpu_count=4)
    assert rec is not None
    assert rec.type == "parallelism"
    assert "-n 4" in rec.recommendation
    assert rec.priority == "high"
    # 60 s alone; on 4 workers 15 s + 1 s + 2 s = 18 s
    assert "about 18s instead of 60s (-70%)" in rec.expected_impact


def test_fewest_workers_within_tolerance() -> None:
    # one 30 s test dominates: more than 2 workers cannot beat 30 s
    durations = [30.0] + [1.0] * 10
    rec = recommend_workers(durations, current_workers=0, cpu_count=8)
    assert rec is not None
    assert "-n 2" in rec.recommendation


def test_no_recommendation_when_saving_is_small_or_already_best() -> None:
    assert recommend_workers([0.01] * 50, current_workers=0, cpu_count=8) is None
    assert recommend_workers([1.0] * 60, current_workers=4, cpu_count=4) is None
    assert recommend_workers([], current_workers=0, cpu_count=4) is None


def test_recommends_dropping_xdist_for_a_tiny_suite() -> None:
    rec = recommend_workers([0.5] * 4, current_workers=8, cpu_count=2, min_saving_s=0.5)
    assert rec is not None
    assert "without pytest-xdist" in rec.recommendation
    assert "now -n 8" in rec.recommendation


def test_slowest_tests_and_share() -> None:
    durations = {"a": 10.0, "b": 6.0, "c": 0.5, "d": 0.5, "e": 3.0}
    rec = recommend_slowest(durations, top=3)
    assert rec is not None
    assert rec.tests == ("a", "b", "e")
    assert rec.recommendation == "speed up or split the slowest tests: a (10s), b (6s), e (3s)"
    assert rec.expected_impact.startswith(
        "the 3 slowest tests take 95% of the test time (19s of 20s)"
    )
    assert rec.priority == "high"


def test_slowest_skipped_when_fast_or_evenly_spread() -> None:
    assert recommend_slowest({"a": 0.2, "b": 0.1}) is None
    assert recommend_slowest({f"t{i}": 1.0 for i in range(100)}) is None
    assert recommend_slowest({}) is None


def test_flaky_recommendations() -> None:
    flaky = [
        {"nodeid": "t::low", "status": "flaky", "score": 0.1, "runs": 50, "failures": 2},
        {
            "nodeid": "t::high",
            "status": "flaky",
            "score": 0.6,
            "runs": 20,
            "failures": 8,
            "rerun_passes": 2,
        },
        {"nodeid": "t::broken", "status": "failing", "score": 0.0},
    ]
    recs = recommend_flaky(flaky)
    assert [r.tests for r in recs] == [("t::high",), ("t::low",)]
    assert recs[0].priority == "high"
    assert recs[1].priority == "medium"
    assert recs[0].recommendation.endswith(
        "until then quarantine it (ini p3monitor_quarantine = true)"
    )
    assert recs[0].expected_impact == (
        "removes the spurious failures or reruns of 10 of its last 20 runs (50%)"
    )
    # with quarantine on already, it is not advised again
    (on, _) = recommend_flaky(flaky, quarantined=True)
    assert on.recommendation == "fix the flaky test t::high (flakiness score 0.60); it is " + (
        "quarantined until then"
    )


def test_flaky_recommendations_cap() -> None:
    flaky = [{"nodeid": f"t{i}", "status": "flaky", "score": i / 10} for i in range(8)]
    recs = recommend_flaky(flaky, top=5)
    assert len(recs) == 6
    assert recs[-1].recommendation == "3 more flaky tests: see `p3monitor flaky`"
    assert recs[0].tests == ("t7",)


def test_memory_near_limit() -> None:
    assert recommend_memory(50.0) == []
    assert recommend_memory(None) == []
    (rec,) = recommend_memory(85.0)
    assert rec.priority == "medium"
    assert "the test processes peaked at 85%" in rec.recommendation
    recs = recommend_memory(
        None,
        [{"name": "db", "memory_percent_peak": 97.0}, {"name": "x", "memory_percent_peak": None}],
    )
    assert [r.priority for r in recs] == ["high"]
    assert "container db" in recs[0].recommendation


def test_all_recommendations_sorted_by_priority() -> None:
    recs = recommendations(
        durations={"a": 30.0, **{f"t{i}": 1.0 for i in range(30)}},
        current_workers=0,
        cpu_count=4,
        flaky=[{"nodeid": "f", "status": "flaky", "score": 0.05}],
        memory_percent=85.0,
    )
    priorities = [r.priority for r in recs]
    assert priorities == sorted(priorities, key=["high", "medium", "low"].index)
    assert {r.type for r in recs} == {"parallelism", "slow_tests", "flaky_tests", "memory"}
    assert all(
        set(r.to_dict()) >= {"type", "priority", "recommendation", "expected_impact"} for r in recs
    )


_durations = st.lists(st.floats(min_value=0, max_value=1e4), max_size=40)


@given(_durations, st.integers(min_value=1, max_value=16))
def test_lpt_bounds(durations: list[float], workers: int) -> None:
    span = lpt_makespan(durations, workers)
    total = sum(durations)
    longest = max(durations, default=0.0)
    lower = max(total / workers, longest)
    assert span >= lower - 1e-6
    # any list schedule ends by the average load plus the longest test
    assert span <= total / workers + longest + 1e-6
    assert span <= total + 1e-6


@given(_durations, st.integers(min_value=1, max_value=15))
def test_more_workers_never_lengthen_lpt_much(durations: list[float], workers: int) -> None:
    # LPT is not monotonic in general, but with one more worker it stays within the longest test
    longest = max(durations, default=0.0)
    assert lpt_makespan(durations, workers + 1) <= lpt_makespan(durations, workers) + longest


@given(_durations, st.integers(min_value=0, max_value=8), st.integers(min_value=1, max_value=8))
def test_recommended_workers_are_within_cpus_and_faster(
    durations: list[float], current: int, cpus: int
) -> None:
    rec = recommend_workers(durations, current, cpus)
    if rec is None:
        return
    assert rec.type == "parallelism"
    estimates = {e.workers: e.wall_s for e in estimate_workers(durations, cpus)}
    chosen = (
        0
        if "without pytest-xdist" in rec.recommendation
        else int(rec.recommendation.split("-n ")[1].split()[0])
    )
    assert chosen <= cpus
    assert chosen != current
    assert estimates[chosen] <= min(estimates.values()) * 1.05 + 1e-9


def _full_saving(durations: list[float], cpus: int) -> float:
    """The largest saving over running without xdist, from every estimate (no shortcut)."""
    estimates = estimate_workers(durations, max(1, min(cpus, len(durations))))
    return estimates[0].wall_s - min(e.wall_s for e in estimates)


@given(_durations, st.integers(min_value=1, max_value=64))
def test_saving_bound_is_never_below_the_real_saving(durations: list[float], cpus: int) -> None:
    if not durations:
        return
    workers = max(1, min(cpus, len(durations)))
    bound = recommend._saving_bound(sum(durations), workers, 1.0, 0.5)
    assert bound >= _full_saving(durations, cpus)


_fast = st.lists(st.floats(min_value=0, max_value=0.05), min_size=1, max_size=300)


@given(_fast | _durations, st.integers(min_value=1, max_value=64), st.integers(0, 2))
def test_may_advise_false_means_no_advice_on_the_rounded_durations(
    durations: list[float], cpus: int, workers: int
) -> None:
    if may_advise(durations, workers, cpus, error=1e-6):
        return
    rounded = {f"t::{i}": round(d, 6) for i, d in enumerate(durations)}
    recs = recommendations(durations=rounded, current_workers=workers, cpu_count=cpus)
    assert not [r for r in recs if r.type in ("parallelism", "slow_tests")]


def test_may_advise_on_a_session_of_fast_tests() -> None:
    fast = [0.0004] * 5000  # 2 s of tests: xdist's start would cost more than it saves
    assert not may_advise(fast, 0, 64, error=1e-6)
    assert may_advise(fast, 2, 64)  # the current -n 2 has to be estimated
    assert may_advise([*fast, 0.9999995], 0, 2, error=1e-6)  # may round to a 1 s test
    assert may_advise([0.5] * 200, 0, 4)  # 100 s of tests: 4 workers save about 70 s
    assert not may_advise([], 0, 4)
    assert recommend_workers([0.5] * 200, 0, 4) is not None


def _heap_makespan(ordered: list[float], workers: int) -> float:
    """LPT with a heap for every worker count: the reference of the one- and two-worker loops."""
    import heapq

    loads = [0.0] * workers
    for duration in ordered:
        heapq.heapreplace(loads, loads[0] + duration)
    return max(loads)


_any_floats = st.lists(
    st.floats(allow_nan=True, allow_infinity=True) | st.floats(min_value=0, max_value=1e-3),
    max_size=60,
)


@given(_durations | _any_floats, st.integers(min_value=1, max_value=3))
def test_one_and_two_workers_schedule_as_the_heap_does(
    durations: list[float], workers: int
) -> None:
    ordered = sorted(durations, reverse=True)
    expected = _heap_makespan(ordered, workers)
    got = recommend._lpt_longest_first(ordered, workers)
    # the same float, bit for bit (nan included: both are nan then)
    assert repr(got) == repr(expected)


def test_slowest_needs_a_slow_test_before_listing() -> None:
    # thousands of fast tests: no slow one, nothing named (one scan for the longest)
    assert recommend_slowest({f"t::{i}": 0.01 for i in range(5000)}) is None
    rec = recommend_slowest({"t::a": 0.01, "t::b": 2.0, "t::c": 1.0})
    assert rec is not None and rec.tests == ("t::b", "t::c")


def _slowest_by_scanning(durations: dict[str, float]) -> object:
    """What recommend_slowest was, listing the candidates first (the reference): the tests
    named, or the error formatting a figure raised."""
    from pytest_p3monitor.rules import format_value

    total = sum(durations.values())
    candidates = [(nodeid, d) for nodeid, d in durations.items() if d >= recommend.SLOW_TEST_S]
    if total <= 0 or not candidates:
        return None
    slow = sorted(candidates, key=lambda item: (-item[1], item[0]))[:5]
    slow_sum = sum(d for _, d in slow)
    if slow_sum / total < 0.2:
        return None
    try:
        for value in (*(d for _, d in slow), slow_sum, total, slow_sum / 2):
            format_value(value, "time")
    except (ValueError, OverflowError) as exc:
        return type(exc)
    return tuple(nodeid for nodeid, _ in slow)


@given(st.dictionaries(st.text(max_size=3), st.floats(allow_nan=True) | st.floats(0, 3)))
def test_slowest_shortcut_changes_nothing(durations: dict[str, float]) -> None:
    expected = _slowest_by_scanning(durations)
    if isinstance(expected, type):  # a figure that cannot be shown (nan, inf): as before
        with pytest.raises(expected):
            recommend_slowest(durations)
        return
    rec = recommend_slowest(durations)
    assert (rec if rec is None else rec.tests) == expected


@given(
    _durations | st.lists(st.floats(min_value=0, max_value=0.05), min_size=1, max_size=300),
    st.integers(min_value=0, max_value=4),
    st.integers(min_value=1, max_value=8),
    st.sampled_from([(1.0, 0.5), (0.0, 0.0), (0.0, 1e-300), (1e-9, 0.0)]),
)
def test_advice_is_the_same_without_the_one_worker_schedule(
    durations: list[float], current: int, cpus: int, overhead: tuple[float, float]
) -> None:
    startup, per_worker = overhead
    kwargs = {"startup_s": startup, "per_worker_s": per_worker, "min_saving_s": 0.0}
    got = recommend_workers(durations, current, cpus, **kwargs)
    original = recommend._one_worker_is_slower
    try:  # every worker count scheduled, as before the shortcut
        recommend._one_worker_is_slower = lambda *args: False  # type: ignore[assignment]
        expected = recommend_workers(durations, current, cpus, **kwargs)
    finally:
        recommend._one_worker_is_slower = original
    assert got == expected
