"""The health score: KPI scoring, components, weights, targets (pure)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pytest_p3monitor.health import (
    COMPONENTS,
    DEFAULT_WEIGHTS,
    KPIS,
    ci_success_rate,
    compute_health,
    failure_rate,
    history_metrics,
    kpi_score,
    kpi_values,
    parse_targets,
    parse_weights,
    resource_utilisation,
    run_total_time,
)
from pytest_p3monitor.records import RunInfo, RunRow

ALL_MET = {
    "success_rate": 100.0,
    "test_stability": 100.0,
    "total_ci_time": 60.0,
    "test_execution_time": 30.0,
    "resource_utilisation": 40.0,
    "developer_wait_time": 60.0,
}


def test_defaults_are_the_monitoring_plan() -> None:
    assert DEFAULT_WEIGHTS == {
        "reliability": 0.4,
        "performance": 0.3,
        "efficiency": 0.2,
        "user_satisfaction": 0.1,
    }
    assert {name: (k.direction, k.target) for name, k in KPIS.items()} == {
        "success_rate": ("at_least", 95.0),
        "test_stability": ("at_least", 99.0),
        "total_ci_time": ("at_most", 300.0),
        "test_execution_time": ("at_most", 180.0),
        "resource_utilisation": ("at_most", 80.0),
        "developer_wait_time": ("at_most", 300.0),
    }


@pytest.mark.parametrize(
    ("value", "target", "direction", "family", "expected"),
    [
        (100.0, 95.0, "at_least", "percent", 100.0),
        (95.0, 95.0, "at_least", "percent", 100.0),
        (90.0, 95.0, "at_least", "percent", 50.0),  # misses 10 points where 5 are allowed
        (0.0, 95.0, "at_least", "percent", 5.0),
        (98.0, 99.0, "at_least", "percent", 50.0),
        (99.0, 100.0, "at_least", "percent", 0.0),  # a 100% target allows no miss
        (300.0, 300.0, "at_most", "time", 100.0),
        (600.0, 300.0, "at_most", "time", 50.0),
        (900.0, 300.0, "at_most", "time", 100.0 / 3),
        (100.0, 80.0, "at_most", "percent", 80.0),
        (5.0, 0.0, "at_most", "time", 0.0),
        (0.0, 0.0, "at_most", "time", 100.0),
    ],
)
def test_kpi_score(
    value: float, target: float, direction: str, family: str, expected: float
) -> None:
    assert kpi_score(value, target, direction, family) == pytest.approx(expected)  # type: ignore[arg-type]


def test_all_targets_met_scores_100() -> None:
    health = compute_health(ALL_MET)
    assert health.score == 100.0
    assert all(k.met for k in health.kpis)


def test_weighted_score_and_every_part_reported() -> None:
    values = dict(ALL_MET, success_rate=90.0, total_ci_time=600.0)
    health = compute_health(values)
    # reliability = mean(50, 100) = 75; performance = mean(50, 100) = 75; others 100
    assert health.component("reliability").score == pytest.approx(75.0)
    assert health.component("performance").score == pytest.approx(75.0)
    assert health.score == pytest.approx(0.4 * 75 + 0.3 * 75 + 0.2 * 100 + 0.1 * 100)
    data = health.to_dict()
    assert set(COMPONENTS) <= set(data)
    assert data["weights"] == DEFAULT_WEIGHTS
    assert set(data["kpis"]) == set(KPIS)
    assert data["kpis"]["success_rate"] == {
        "component": "reliability",
        "value": 90.0,
        "target": 95.0,
        "direction": "at_least",
        "met": False,
        "score": 50.0,
    }
    lines = health.lines()
    assert "reliability 75.0 (weight 0.4)" in lines
    assert "  success_rate: 90% (target >= 95%) MISSED, score 50.0" in lines
    assert "  total_ci_time: 10m (target < 5m) MISSED, score 50.0" in lines


def test_unmeasured_kpis_neither_help_nor_hurt() -> None:
    health = compute_health({"success_rate": 90.0})
    assert health.component("reliability").score == pytest.approx(50.0)
    assert health.component("efficiency").score is None
    assert health.score == pytest.approx(50.0)  # only reliability measured
    assert health.to_dict()["efficiency"] is None
    assert "  resource_utilisation: not measured (target < 80%)" in health.lines()
    assert compute_health({}).score is None


def test_targets_and_weights_override() -> None:
    values = dict(ALL_MET, total_ci_time=600.0)
    relaxed = compute_health(values, targets={"total_ci_time": 600.0})
    assert relaxed.score == 100.0
    only_perf = compute_health(
        values, weights={"reliability": 0, "efficiency": 0, "user_satisfaction": 0}
    )
    assert only_perf.weights["performance"] == 1.0
    assert only_perf.score == pytest.approx(75.0)
    with pytest.raises(ValueError, match="must not all be zero"):
        compute_health(values, weights=dict.fromkeys(COMPONENTS, 0.0))


@given(
    st.dictionaries(
        st.sampled_from(COMPONENTS),
        st.floats(min_value=0, max_value=1.7e308) | st.sampled_from([0.0, 5e-324, 1.7e308]),
    )
)
def test_any_weights_are_normalised_to_a_score(weights: dict[str, float]) -> None:
    """Weights are relative: the largest double, the smallest, or anything between still
    give a score (weights near the limit once added up to inf and gave none, which left a
    health_score gate unevaluated)."""
    if not max({**DEFAULT_WEIGHTS, **weights}.values()) > 0:
        return
    result = compute_health(ALL_MET, weights=weights)
    assert result.score == 100.0
    assert sum(result.weights.values()) == pytest.approx(1.0, abs=1e-3)
    huge = compute_health(ALL_MET, weights={"reliability": 1e308, "performance": 1e308})
    assert (huge.weights["reliability"], huge.weights["performance"]) == (0.5, 0.5)


def test_parse_targets() -> None:
    assert parse_targets(["total_ci_time = 10m", "success_rate=90%, test_stability = 98"]) == {
        "total_ci_time": 600.0,
        "success_rate": 90.0,
        "test_stability": 98.0,
    }
    with pytest.raises(ValueError, match="did you mean 'total_ci_time'"):
        parse_targets(["total_ci_tme = 10m"])
    with pytest.raises(ValueError, match="does not fit"):
        parse_targets(["total_ci_time = 10%"])
    with pytest.raises(ValueError, match="out of range"):
        parse_targets(["success_rate = 120%"])
    with pytest.raises(ValueError, match="not NAME=VALUE"):
        parse_targets(["total_ci_time"])


def test_parse_weights() -> None:
    assert parse_weights(["reliability=0.5 performance = 0.2"]) == {
        "reliability": 0.5,
        "performance": 0.2,
    }
    with pytest.raises(ValueError, match="did you mean 'efficiency'"):
        parse_weights(["eficiency=1"])
    with pytest.raises(ValueError, match="not a number"):
        parse_weights(["reliability=lots"])
    with pytest.raises(ValueError, match=">= 0"):
        parse_weights(["reliability=-1"])
    with pytest.raises(ValueError, match="all be zero"):
        parse_weights(["reliability=0 performance=0 efficiency=0 user_satisfaction=0"])


_percent = st.floats(min_value=0, max_value=100)
_seconds = st.floats(min_value=0, max_value=1e6)
_maybe = st.none() | st.just(float("nan"))


@given(
    st.fixed_dictionaries(
        {
            "success_rate": _percent | _maybe,
            "test_stability": _percent | _maybe,
            "total_ci_time": _seconds | _maybe,
            "test_execution_time": _seconds | _maybe,
            "resource_utilisation": _percent | _maybe,
            "developer_wait_time": _seconds | _maybe,
        }
    ),
    st.dictionaries(st.sampled_from(COMPONENTS), st.floats(min_value=0.01, max_value=10)),
)
def test_score_is_bounded_and_between_its_components(
    values: dict[str, float | None], weights: dict[str, float]
) -> None:
    health = compute_health(values, weights=weights)
    scores = [c.score for c in health.components if c.score is not None]
    if not scores:
        assert health.score is None
        return
    assert health.score is not None
    assert 0.0 <= health.score <= 100.0
    assert min(scores) - 0.01 <= health.score <= max(scores) + 0.01
    assert sum(health.weights.values()) == pytest.approx(1.0, abs=1e-3)


@given(_seconds, _seconds, st.floats(min_value=1, max_value=1e4))
def test_time_kpi_score_never_rises_as_time_grows(a: float, b: float, target: float) -> None:
    low, high = sorted((a, b))
    assert kpi_score(high, target, "at_most", "time") <= kpi_score(low, target, "at_most", "time")


@given(_percent, _percent, st.floats(min_value=0, max_value=100))
def test_rate_kpi_score_never_falls_as_rate_grows(a: float, b: float, target: float) -> None:
    low, high = sorted((a, b))
    score_low = kpi_score(low, target, "at_least", "percent")
    score_high = kpi_score(high, target, "at_least", "percent")
    assert 0.0 <= score_low <= score_high <= 100.0


def _row(seq: int, *, failed: int = 0, tests: int = 10, total: float | None = 100.0) -> RunRow:
    metrics: dict[str, object] = {}
    if total is not None:
        metrics = {
            "metrics": {
                "performance": {"total_time_s": total},
                "resource_usage": {
                    "process": {"memory_percent_peak": 30.0, "cpu_percent_mean": 150.0},
                    "containers": [{"memory_percent_peak": 85.0}],
                },
            }
        }
    return RunRow(
        run_seq=seq,
        run=RunInfo(run_id=f"r{seq}", started_at=1000.0 + seq, finished_at=1050.0 + seq),
        tests=tests,
        passed=tests - failed,
        failed=failed,
        errors=0,
        skipped=0,
        xfailed=0,
        xpassed=0,
        reruns=0,
        test_execution_time_s=20.0,
        metrics=metrics,
    )


def test_rates_over_runs() -> None:
    rows = [_row(1), _row(2, failed=5), _row(3), _row(4, failed=1)]
    assert ci_success_rate(rows) == 50.0
    assert failure_rate(rows) == pytest.approx(100 * 6 / 40)
    assert ci_success_rate([]) is None
    assert failure_rate([]) is None


def test_history_metrics_need_enough_runs() -> None:
    assert history_metrics(_row(3), [_row(2)]) == {
        "ci_success_rate": None,
        "test_failure_rate": None,
    }
    figures = history_metrics(_row(3, failed=1), [_row(2), _row(1)])
    assert figures["ci_success_rate"] == pytest.approx(200 / 3)
    assert figures["test_failure_rate"] == pytest.approx(100 / 30)


def test_run_total_time_and_utilisation() -> None:
    assert run_total_time(_row(1, total=12.5)) == 12.5
    assert run_total_time(_row(1, total=None)) == 50.0  # from start and finish
    # containers' 85% beats the process' 30% memory and 150%/2 CPUs = 75% CPU
    assert resource_utilisation(_row(1), cpu_count=2) == 85.0
    assert resource_utilisation(_row(1, total=None), cpu_count=2) is None


def test_kpi_values() -> None:
    current = _row(5, failed=1, total=400.0)
    history = [_row(4, total=100.0), _row(3, total=200.0)]
    values = kpi_values(current, history, flaky_rate=2.0, cpu_count=2)
    assert values == {
        "success_rate": pytest.approx(200 / 3),
        "test_stability": 98.0,
        "total_ci_time": 400.0,
        "test_execution_time": 20.0,
        "resource_utilisation": 85.0,
        "developer_wait_time": 200.0,  # median of 400, 100, 200
    }
    # no history: the session's own success rate; stability from reruns in the session
    alone = kpi_values(current, [], flaky_rate=None, flaky_in_session=1, cpu_count=2)
    assert alone["success_rate"] == 90.0
    assert alone["test_stability"] == 90.0
    assert alone["developer_wait_time"] == 400.0
