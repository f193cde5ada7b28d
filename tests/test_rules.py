"""Rules: the grammar, the metric registry, and evaluation (pure, no pytest session)."""

from __future__ import annotations

import math
from collections.abc import Mapping

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pytest_p3monitor.records import TestRecord
from pytest_p3monitor.rules import (
    AT_MOST_100,
    METRICS,
    OPERATORS,
    UNITS,
    Deferred,
    PerTest,
    Rule,
    RuleError,
    evaluate,
    evaluate_rule,
    format_value,
    lookup_metric,
    make_rule,
    parse_rule,
    parse_value,
    per_test_metrics,
    phase_metric,
    record_durations,
    report_metrics,
    round_all,
    shown_durations,
)


@pytest.mark.parametrize(
    ("text", "metric", "op", "value", "unit"),
    [
        ("success_rate < 95%", "success_rate", "<", 95.0, "%"),
        ("success_rate<95", "success_rate", "<", 95.0, ""),
        ("  test_duration   >=  10s ", "test_duration", ">=", 10.0, "s"),
        ("test_duration > 250ms", "test_duration", ">", 0.25, "ms"),
        ("test_execution_time > 3m", "test_execution_time", ">", 180.0, "m"),
        ("total_time > 1.5h", "total_time", ">", 5400.0, "h"),
        ("peak_rss > 512MiB", "peak_rss", ">", 512 * 1024**2, "MiB"),
        ("test_rss > 1.5 GiB", "test_rss", ">", 1.5 * 1024**3, "GiB"),
        ("peak_rss > 100KiB", "peak_rss", ">", 102400.0, "KiB"),
        ("peak_rss > 100B", "peak_rss", ">", 100.0, "B"),
        ("cost_per_build > 2$", "cost_per_build", ">", 2.0, "$"),
        ("cost_per_build > $0.75", "cost_per_build", ">", 0.75, "$"),
        ("failed != 0", "failed", "!=", 0.0, ""),
        ("errors == 0", "errors", "==", 0.0, ""),
        ("health_score <= 85", "health_score", "<=", 85.0, ""),
        ("flaky_rate > 5%", "flaky_rate", ">", 5.0, "%"),
        ("duration_regression > 50%", "duration_regression", ">", 50.0, "%"),
        ("ci_success_rate < 8e1%", "ci_success_rate", "<", 80.0, "%"),
        ("docker_build_time > 120s", "docker_build_time", ">", 120.0, "s"),
        # a phase recorded by the p3monitor fixture: PHASE_time
        ("db_migration_time > 30s", "db_migration_time", ">", 30.0, "s"),
    ],
)
def test_parse(text: str, metric: str, op: str, value: float, unit: str) -> None:
    rule = parse_rule(text)
    assert (rule.metric, rule.op, rule.unit) == (metric, op, unit)
    assert rule.value == pytest.approx(value)


def test_canonical_text_round_trips() -> None:
    rule = parse_rule("  peak_rss>1.5GiB")
    assert rule.text == "peak_rss > 1.5GiB"
    assert parse_rule(rule.text) == rule
    assert str(parse_rule("cost_per_build>2$")) == "cost_per_build > $2"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", "the rule is empty"),
        ("   ", "the rule is empty"),
        ("< 95%", "starts with a metric name"),
        ("95% > success_rate", "starts with a metric name"),
        ("sucess_rate < 95%", "did you mean 'success_rate'?"),
        ("tests_execution_time > 1s", "did you mean 'test_execution_time'?"),
        ("Success_Rate < 95%", "did you mean 'success_rate'?"),
        ("memory > 80%", "unknown metric 'memory'"),
        ("success_rate 95%", "an operator (< <= > >= == !=) is missing after 'success_rate'"),
        ("success_rate = 95%", "write '=='"),
        ("success_rate => 95%", "write '>='"),
        ("success_rate <> 95%", "write '!='"),
        ("success_rate <", "a value is missing after '<'"),
        ("success_rate < abc", "'abc' is not a number"),
        ("success_rate < nan", "'nan' is not a number"),
        ("success_rate < inf", "'inf' is not a number"),
        ("success_rate < 1e999", "too large"),
        ("peak_rss > 1e308GiB", "too large"),
        ("test_duration > 10sec", "unknown unit 'sec'; write 's'"),
        ("peak_rss > 1GB", "unknown unit 'GB'; write 'GiB'"),
        ("test_duration > 10 furlongs", "unknown unit 'furlongs'"),
        ("test_duration > 10%", "test_duration is a duration (ms, s, m or h); '%' does not fit"),
        ("success_rate < 10s", "success_rate is a percentage (%); 's' does not fit"),
        ("failed > 2%", "failed is a count (no unit)"),
        ("peak_rss > 5m", "peak_rss is a size (B, KiB, MiB or GiB)"),
        ("cost_per_build > $2s", "mixes '$'"),
        ("success_rate < 95% and failed > 0", "unexpected 'and failed > 0'"),
        ("test_duration > -1s", "never negative"),
        ("success_rate < 150%", "success_rate is at most 100; 150% is not a threshold"),
        ("health_score < 101", "health_score is at most 100"),
        ("health_score > -10", "health_score is never negative"),
        ("flaky_rate > 100.5%", "flaky_rate is at most 100"),
    ],
)
def test_parse_errors(text: str, expected: str) -> None:
    with pytest.raises(RuleError) as excinfo:
        parse_rule(text)
    assert expected in str(excinfo.value)
    assert excinfo.value.text == text
    assert isinstance(excinfo.value, ValueError)


def test_every_registered_metric_parses_with_a_fitting_unit() -> None:
    unit_for = {"percent": "%", "time": "s", "bytes": "MiB", "money": "$", "count": "", "score": ""}
    for name, metric in METRICS.items():
        rule = parse_rule(f"{name} > 1{unit_for[metric.family]}")
        assert rule.metric == name
        assert rule.kind == metric.kind
        assert metric.description


def test_extra_metrics_are_known() -> None:
    extra = {"image_size": METRICS["peak_rss"].__class__("image_size", "session", "bytes", "x")}
    assert parse_rule("image_size > 1GiB", extra).value == 1024**3
    with pytest.raises(RuleError, match="did you mean 'image_size'"):
        parse_rule("image_sise > 1GiB", extra)


def test_lookup_phase_metric_unless_near_miss() -> None:
    metric, suggestion = lookup_metric("docker_push_time")
    assert metric is not None
    assert metric.family == "time"
    assert suggestion is None
    metric, suggestion = lookup_metric("total_tme")
    assert metric is None
    assert suggestion == "total_time"
    metric, suggestion = lookup_metric("_time")
    assert metric is None


def test_parse_value() -> None:
    assert parse_value("95%") == (95.0, "%")
    assert parse_value(" 1.5 GiB ") == (1.5, "GiB")
    assert parse_value("$3") == (3.0, "$")
    assert parse_value(".5") == (0.5, "")
    with pytest.raises(ValueError, match="a number is missing"):
        parse_value("")


# -- evaluation ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("op", "below", "equal", "above"),
    [
        ("<", True, False, False),
        ("<=", True, True, False),
        (">", False, False, True),
        (">=", False, True, True),
        ("==", False, True, False),
        ("!=", True, False, True),
    ],
)
def test_operators_below_equal_above(op: str, below: bool, equal: bool, above: bool) -> None:
    rule = parse_rule(f"success_rate {op} 95%")
    assert [rule.crossed(v) for v in (94.9, 95.0, 95.1)] == [below, equal, above]


def test_session_metric_crossed_message_names_figure_and_threshold() -> None:
    rule = parse_rule("test_execution_time > 3m")
    (result,) = evaluate([rule], {"test_execution_time": 200.0}, "critical")
    assert result.crossed
    assert result.value == 200.0
    assert result.message == "test_execution_time is 3.33m (threshold: test_execution_time > 3m)"
    alert = result.to_dict()
    assert alert["severity"] == "critical"
    assert alert["threshold"] == 180.0
    assert alert["metric"] == "test_execution_time"


def test_session_metric_ok() -> None:
    result = evaluate_rule(parse_rule("failed > 0"), {"failed": 0}, "warning")
    assert result.status == "ok"
    assert not result.crossed


def test_not_measured_is_not_evaluated_never_crossed() -> None:
    for metrics in ({}, {"peak_memory_percent": None}, {"peak_memory_percent": math.nan}):
        result = evaluate_rule(parse_rule("peak_memory_percent > 0%"), metrics, "critical")
        assert result.status == "not_evaluated"
        assert not result.crossed
        assert result.value is None
    result = evaluate_rule(parse_rule("peak_memory_percent > 0%"), {}, "critical")
    assert "needs resource sampling" in result.message
    result = evaluate_rule(parse_rule("test_rss > 1 MiB"), {"test_rss": None}, "critical")
    assert result.status == "not_evaluated"
    assert "needs per-test resource figures" in result.message
    assert "p3monitor_test_resources = false" in result.message


def test_per_test_metric_names_the_tests_worst_first() -> None:
    durations = {"t.py::a": 2.0, "t.py::b": 0.5, "t.py::c": 3.0, "t.py::d": 1.0}
    result = evaluate_rule(
        parse_rule("test_duration > 1s"), {"test_duration": durations}, "critical"
    )
    assert result.crossed
    assert result.tests == ("t.py::c", "t.py::a")
    assert result.value == 3.0
    assert result.message == "test_duration > 1s: 2 tests crossed: t.py::c (3s), t.py::a (2s)"


def test_per_test_metric_lower_bound_sorts_ascending() -> None:
    result = evaluate_rule(
        parse_rule("test_duration < 1s"), {"test_duration": {"a": 0.5, "b": 0.1, "c": 2}}, "warning"
    )
    assert result.tests == ("b", "a")
    assert result.value == 0.1


def test_per_test_metric_lists_five_then_counts() -> None:
    durations = {f"t{i}": float(i) for i in range(10, 20)}
    result = evaluate_rule(
        parse_rule("test_duration > 1s"), {"test_duration": durations}, "warning"
    )
    assert len(result.tests) == 10
    assert result.message.endswith("and 5 more")
    assert "t19 (19s)" in result.message


def test_per_test_metric_ok_and_empty() -> None:
    rule = parse_rule("test_duration > 10s")
    ok = evaluate_rule(rule, {"test_duration": {"a": 1.0}}, "critical")
    assert ok.status == "ok"
    assert ok.tests == ()
    empty = evaluate_rule(rule, {"test_duration": {}}, "critical")
    assert empty.status == "not_evaluated"


def test_format_value() -> None:
    assert format_value(95.0, "percent") == "95%"
    assert format_value(91.234, "percent") == "91.23%"
    assert format_value(0.1234, "percent") == "0.123%"
    assert format_value(0.25, "time") == "250ms"
    assert format_value(12.5, "time") == "12.5s"
    assert format_value(600, "time") == "10m"
    assert format_value(7200, "time") == "2h"
    assert format_value(1536 * 1024**2, "bytes") == "1.5GiB"
    assert format_value(3.0, "money") == "$3.00"
    assert format_value(7, "count") == "7"
    assert format_value(1536 * 1024**2, "bytes", "MiB") == "1536MiB"
    assert format_value(0.5, "money", "$") == "$0.5"


# -- properties ---------------------------------------------------------------------------------

_numbers = st.floats(min_value=0, max_value=1e9, allow_nan=False, allow_infinity=False)


def _parse_or_error(text: str) -> Rule | RuleError:
    try:
        return parse_rule(text)
    except RuleError as exc:
        return exc


@given(st.text(max_size=60))
def test_any_text_gives_a_rule_or_a_rule_error(text: str) -> None:
    rule = _parse_or_error(text)
    if isinstance(rule, RuleError):
        assert str(rule)
        assert rule.text == text
    else:
        assert math.isfinite(rule.value)
        assert rule.op in OPERATORS


_pieces = st.sampled_from(
    [
        *METRICS,
        *OPERATORS,
        *UNITS,
        " ",
        "",
        "=",
        "!",
        "$",
        "-",
        "+",
        ".",
        "e",
        "1",
        "95",
        "1e3",
        "sec",
        "x",
        "_time",
        "%%",
        "\t",
        "\n",
        "é",
        "0.5",
    ]
)


@given(st.lists(_pieces, max_size=8).map("".join))
def test_rule_shaped_text_gives_a_rule_or_a_rule_error(text: str) -> None:
    rule = _parse_or_error(text)
    if isinstance(rule, RuleError):
        assert str(rule)
    else:
        # whatever parsed re-parses from its canonical text to the same rule
        assert parse_rule(rule.text).metric == rule.metric
        assert parse_rule(rule.text).op == rule.op


@given(st.sampled_from(sorted(METRICS)), st.sampled_from(sorted(OPERATORS)), _numbers)
def test_valid_rules_round_trip(name: str, op: str, number: float) -> None:
    if name in AT_MOST_100:
        number = min(number, 100.0)  # a share or a score: beyond 100 is no threshold
    family = METRICS[name].family
    unit = {"percent": "%", "time": "s", "bytes": "B", "money": "$"}.get(family, "")
    text = f"{name} {op} {number!r}{unit}"
    rule = parse_rule(text)
    assert rule.value == pytest.approx(number)
    assert rule.crossed(number) == OPERATORS[op](number, rule.value)


@given(
    st.sampled_from(sorted(OPERATORS)),
    _numbers,
    st.dictionaries(st.text(min_size=1, max_size=5), _numbers, max_size=8),
)
def test_per_test_crossed_iff_some_test_crosses(
    op: str, threshold: float, durations: dict[str, float]
) -> None:
    rule = parse_rule(f"test_duration {op} {threshold!r}s")
    result = evaluate_rule(rule, {"test_duration": durations}, "critical")
    crossing = {k for k, v in durations.items() if OPERATORS[op](v, rule.value)}
    if not durations:
        assert result.status == "not_evaluated"
    else:
        assert result.crossed == bool(crossing)
        assert set(result.tests) == crossing


def test_figure_shown_precisely_enough_to_differ_from_threshold() -> None:
    result = evaluate_rule(parse_rule("success_rate < 95%"), {"success_rate": 94.9996}, "critical")
    assert result.message == "success_rate is 94.9996% (threshold: success_rate < 95%)"
    assert parse_rule("success_rate < 95.125%").threshold_text == "95.125%"


# -- metrics from a report ----------------------------------------------------------------------


def _report(**perf: object) -> dict[str, object]:
    return {
        "health_score": 91.5,
        "metrics": {
            "performance": {"total_time_s": 7200.0, "test_execution_time_s": 60.0, **perf},
            "reliability": {
                "tests": 4,
                "passed": 3,
                "failed": 1,
                "errors": 0,
                "skipped": 0,
                "reruns": 2,
                "success_rate": 75.0,
                "flaky_in_session": [{"nodeid": "a"}],
            },
            "resource_usage": {
                "process": {
                    "cpu_percent_peak": 150.0,
                    "memory_percent_peak": None,
                    "rss_bytes_peak": 1024,
                },
                "containers": [
                    {"name": "db", "cpu_percent_peak": 20.0, "memory_percent_peak": 70.0},
                    {"name": "app", "cpu_percent_peak": 90.0, "memory_percent_peak": None},
                ],
            },
        },
        # per-test metrics come from the records, never from the report's entries
        "tests": [{"nodeid": "t::a", "duration_s": 1.5, "rss_peak_bytes": 2048.0}],
    }


def test_report_metrics() -> None:
    metrics = report_metrics(
        _report(phases={"docker_build": 42.0, "service_startup:db": 3.0, "service_startup:x": 2.0}),
        cost_per_hour=0.5,
    )
    assert metrics["success_rate"] == 75.0
    assert metrics["failed"] == 1.0
    assert metrics["reruns"] == 2.0
    assert metrics["flaky_in_session"] == 1.0
    assert metrics["test_execution_time"] == 60.0
    assert metrics["peak_cpu_percent"] == 150.0
    assert metrics["peak_memory_percent"] is None  # not measured: rules on it not evaluated
    assert metrics["peak_rss"] == 1024.0
    assert metrics["container_cpu_percent"] == 90.0
    assert metrics["container_memory_percent"] == 70.0
    assert metrics["health_score"] == 91.5
    assert metrics["cost_per_build"] == pytest.approx(1.0)  # 2 h at $0.5
    assert metrics["docker_build_time"] == 42.0
    assert metrics["service_startup_time"] == 5.0
    assert "test_duration" not in metrics and "test_rss" not in metrics


def test_report_metrics_of_an_empty_report() -> None:
    metrics = report_metrics({})
    assert metrics["success_rate"] is None
    assert metrics["cost_per_build"] is None
    assert metrics["container_memory_percent"] is None
    assert "docker_build_time" not in metrics
    assert phase_metric("docker_build") == "docker_build_time"
    assert phase_metric("docker_build_time") == "docker_build_time"


# -- per-test metrics from the records ----------------------------------------------------------


def _record(nodeid: str, call_s: float, **figures: float) -> TestRecord:
    return TestRecord(nodeid, setup_s=0.25, call_s=call_s, teardown_s=0.125, figures=figures)


def _per_test(value: object) -> dict[str, float]:
    assert isinstance(value, Deferred)
    return dict(value)


def test_per_test_metrics_from_records() -> None:
    records = {
        "t::a": _record("t::a", 1.0000004, rss_peak_bytes=2048),
        "t::b": _record("t::b", 0.125),
        "t::nan": _record("t::nan", math.nan, rss_peak_bytes=math.inf),
    }
    metrics = per_test_metrics(records)
    # as the report shows durations: to the microsecond; a non-finite figure is left out
    assert _per_test(metrics["test_duration"]) == {"t::a": 1.375, "t::b": 0.5}
    assert _per_test(metrics["test_rss"]) == {"t::a": 2048.0}
    assert record_durations(records)["t::a"] == pytest.approx(1.3750004)
    assert shown_durations({"x": 0.1234565001, "y": math.inf}) == {"x": 0.123457}


def test_per_test_metrics_not_measured() -> None:
    assert per_test_metrics({}) == {"test_duration": None, "test_rss": None}
    records = {"t::a": _record("t::a", 1.0, cpu_time_s=0.5), "t::b": _record("t::b", 1.0)}
    metrics = per_test_metrics(records, {"t::a": 2.0, "t::b": 3.0})
    assert metrics["test_rss"] is None  # no test has the figure: rules on it not evaluated
    assert _per_test(metrics["test_duration"]) == {"t::a": 2.0, "t::b": 3.0}


def test_deferred_builds_once_on_first_read() -> None:
    built: list[int] = []

    def build() -> dict[str, float]:
        built.append(1)
        return {"b": 2.0, "a": 1.0}

    lazy = Deferred(build)
    assert isinstance(lazy, Mapping) and not built
    assert list(lazy.items()) == [("b", 2.0), ("a", 1.0)]
    assert (lazy["a"], len(lazy), list(lazy)) == (1.0, 2, ["b", "a"])
    assert list(lazy.keys()) == ["b", "a"] and list(lazy.values()) == [2.0, 1.0]
    assert "a" in lazy and "c" not in lazy and lazy.get("c") is None
    assert built == [1]


def test_rules_on_deferred_per_test_metrics() -> None:
    records = {f"t::{i}": _record(f"t::{i}", i / 10, rss_peak_bytes=i * 1024.0) for i in range(5)}
    metrics = per_test_metrics(records)
    slow, big = parse_rule("test_duration > 0.6s"), parse_rule("test_rss >= 3KiB")
    assert evaluate_rule(slow, metrics, "critical").tests == ("t::4", "t::3")
    assert evaluate_rule(big, metrics, "warning").tests == ("t::4", "t::3")


@pytest.mark.parametrize(
    "text",
    [
        "ci_success_rate < 80%",
        "test_execution_time > 600s",
        "peak_memory_percent > 80%",
        "test_failure_rate > 5%",
        "peak_rss > 1.5GiB",
        "test_duration >= 250ms",
        "tests == 3",
        "cost_per_build > $2",
    ],
)
def test_make_rule_builds_what_parse_rule_reads(text: str) -> None:
    rule = parse_rule(text)
    number = rule.value / (UNITS[rule.unit][1] if rule.unit else 1.0)
    assert make_rule(rule.metric, rule.op, number, rule.unit) == rule
    assert make_rule(rule.metric, rule.op, number, rule.unit).text == rule.text


_round_inputs = st.lists(
    st.floats(allow_nan=True, allow_infinity=True)
    | st.floats(min_value=0, max_value=1e4)
    | st.floats(min_value=-1e-5, max_value=1e-5)
    # exact halves at the sixth decimal (k + 0.5 millionths, some exact in binary)
    | st.integers(min_value=0, max_value=10**7).map(lambda k: (k + 0.5) / 1e6)
    | st.integers(min_value=0, max_value=2**20).map(lambda k: k / 2**17),
    max_size=50,
)


@given(_round_inputs, st.integers(min_value=0, max_value=8))
def test_round_all_is_round_of_each(values: list[float], digits: int) -> None:
    expected = [round(v, digits) for v in values]
    # bit for bit: the sign of zero, nan and the exact double
    assert [repr(v) for v in round_all(values, digits)] == [repr(v) for v in expected]


@given(st.lists(st.floats(min_value=1e-6, max_value=1e3), min_size=1, max_size=200))
def test_round_all_on_durations(values: list[float]) -> None:
    # the fast path: positive, finite durations
    assert round_all(values, 6) == [round(v, 6) for v in values]


def test_per_test_mapping_over_two_lists() -> None:
    durations = PerTest(["t::b", "t::a"], [2.0, 1.0])
    assert isinstance(durations, Mapping) and len(durations) == 2
    assert list(durations) == ["t::b", "t::a"] and list(durations.values()) == [2.0, 1.0]
    assert list(durations.items()) == [("t::b", 2.0), ("t::a", 1.0)]
    assert durations["t::a"] == 1.0 and "t::c" not in durations
    assert durations == {"t::a": 1.0, "t::b": 2.0}
    with pytest.raises(ValueError):
        PerTest(["t::a"], [])
    shown = shown_durations(PerTest(["x", "y"], [0.1234565001, 2.0]))
    assert isinstance(shown, PerTest) and dict(shown) == {"x": 0.123457, "y": 2.0}
