"""Threshold gates in real pytest sessions: fail vs warn, ini vs CLI, bad rules, history."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from pytest_p3monitor.gates_plugin import _DEFAULT_RULES, DEFAULT_WARN_RULES, _test_figures
from pytest_p3monitor.records import HistoryRow, RunInfo, TestRecord
from pytest_p3monitor.rules import Deferred, evaluate_rule, parse_rule

THREE_PASSING = """
def test_one():
    pass

def test_two():
    pass

def test_three():
    pass
"""

ONE_FAILING = """
def test_ok():
    pass

def test_bad():
    assert False
"""


# Resource sampling (a sampler process per session) is off here, except where a test
# needs its figures: it makes no difference to the gates and costs a second a session.
NO_SAMPLING = ("-p", "no:p3monitor-resources")


def run(pytester: pytest.Pytester, *args: str, sampling: bool = False) -> pytest.RunResult:
    extra = () if sampling else NO_SAMPLING
    return pytester.runpytest("--p3monitor", "-p", "no:randomly", *extra, *args)


def report(
    pytester: pytest.Pytester, *args: str, sampling: bool = False
) -> tuple[pytest.RunResult, dict[str, Any]]:
    result = run(pytester, "--p3monitor-json", "report.json", *args, sampling=sampling)
    data = json.loads(Path(pytester.path, "report.json").read_text())
    return result, data


@pytest.mark.parametrize(
    ("rule", "crossed"),
    [
        # the figure (3 tests) above, equal to and below the threshold, for each operator
        ("tests > 2", True),
        ("tests > 3", False),
        ("tests > 4", False),
        ("tests >= 2", True),
        ("tests >= 3", True),
        ("tests >= 4", False),
        ("tests < 2", False),
        ("tests < 3", False),
        ("tests < 4", True),
        ("tests <= 2", False),
        ("tests <= 3", True),
        ("tests <= 4", True),
        ("tests == 3", True),
        ("tests == 4", False),
        ("tests != 3", False),
        ("tests != 2", True),
        ("success_rate < 100%", False),
        ("success_rate <= 100%", True),
        ("failed > 0", False),
        ("failed == 0", True),
    ],
)
def test_fail_rule_below_equal_above(pytester: pytest.Pytester, rule: str, crossed: bool) -> None:
    pytester.makepyfile(test_three=THREE_PASSING)
    result = run(pytester, "--p3monitor-fail-on", rule)
    result.assert_outcomes(passed=3)
    if crossed:
        assert result.ret == pytest.ExitCode.TESTS_FAILED
        result.stdout.fnmatch_lines([f"p3monitor gate failed: * (threshold: {rule})"])
    else:
        assert result.ret == pytest.ExitCode.OK
        result.stdout.no_fnmatch_line("*gate failed*")


def test_gate_line_names_figure_threshold_and_tests(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_slow="""
        import time

        def test_fast():
            pass

        def test_slow():
            time.sleep(0.3)

        def test_slower():
            time.sleep(0.4)
        """
    )
    result, data = report(pytester, "--p3monitor-fail-on", "test_duration > 250ms")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(
        [
            "p3monitor gate failed: test_duration > 250ms: 2 tests crossed: "
            "test_slow.py::test_slower (4*ms), test_slow.py::test_slow (3*ms)"
        ]
    )
    (alert,) = data["alerts"]
    assert alert["severity"] == "critical"
    assert alert["metric"] == "test_duration"
    assert alert["threshold"] == 0.25
    assert alert["value"] >= 0.4
    assert alert["tests"] == ["test_slow.py::test_slower", "test_slow.py::test_slow"]


def test_ini_only(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_three=THREE_PASSING)
    pytester.makeini(
        """
        [pytest]
        p3monitor_fail_on =
            tests > 100
            tests >= 3
        """
    )
    result = run(pytester)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["p3monitor gate failed: tests is 3 (threshold: tests >= 3)"])
    result.stdout.no_fnmatch_line("*tests > 100*")


def test_cli_overrides_ini(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_three=THREE_PASSING)
    pytester.makeini(
        """
        [pytest]
        p3monitor_fail_on = tests >= 3
        """
    )
    result = run(pytester, "--p3monitor-fail-on", "tests > 100")
    assert result.ret == pytest.ExitCode.OK
    result.stdout.no_fnmatch_line("*gate failed*")


def test_cli_rules_repeat(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_three=THREE_PASSING)
    result = run(
        pytester, "--p3monitor-fail-on", "tests > 100", "--p3monitor-fail-on", "passed == 3"
    )
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["p3monitor gate failed: passed is 3 (threshold: passed == 3)"])


def test_warn_rule_warns_and_keeps_exit_status(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_three=THREE_PASSING)
    pytester.makeini(
        """
        [pytest]
        p3monitor_warn_on = tests >= 3
        """
    )
    result, data = report(pytester)
    assert result.ret == pytest.ExitCode.OK
    result.stdout.fnmatch_lines(["p3monitor warning: tests is 3 (threshold: tests >= 3)"])
    result.stdout.no_fnmatch_line("*gate failed*")
    (alert,) = data["alerts"]
    assert alert["severity"] == "warning"
    assert alert["rule"] == "tests >= 3"


def test_warn_and_fail_together(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_three=THREE_PASSING)
    result, data = report(
        pytester, "--p3monitor-warn-on", "tests > 1", "--p3monitor-fail-on", "tests > 2"
    )
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    assert sorted(a["severity"] for a in data["alerts"]) == ["critical", "warning"]


def test_failing_test_takes_precedence(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_fail=ONE_FAILING)
    result, data = report(pytester, "--p3monitor-fail-on", "success_rate < 90%")
    result.assert_outcomes(passed=1, failed=1)
    # the exit status is the failing test's; the gate still says what crossed
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(
        ["p3monitor gate failed: success_rate is 50% (threshold: success_rate < 90%)"]
    )
    assert data["run"]["exit_status"] == 1


def test_no_tests_collected_keeps_its_exit_status(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_empty="")
    result = run(pytester, "--p3monitor-fail-on", "tests == 0")
    assert result.ret == pytest.ExitCode.NO_TESTS_COLLECTED


def test_unmeasured_metric_is_not_evaluated(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_three=THREE_PASSING)
    result, data = report(pytester, "--p3monitor-fail-on", "docker_build_time > 1s")
    assert result.ret == pytest.ExitCode.OK
    result.stdout.fnmatch_lines(
        [
            "p3monitor: docker_build_time > 1s: not evaluated, docker_build_time was not "
            "measured in this run (needs a docker_build phase)"
        ]
    )
    assert data["alerts"] == []
    (gate,) = data["gates"]
    assert gate["status"] == "not_evaluated"


@pytest.mark.parametrize(
    ("args", "ini", "expected"),
    [
        (
            ("--p3monitor-fail-on", "sucess_rate < 95%"),
            "",
            "*--p3monitor-fail-on: rule 'sucess_rate < 95%' is not valid: unknown metric "
            "'sucess_rate'; did you mean 'success_rate'?",
        ),
        (
            (),
            "p3monitor_fail_on = test_duraton > 10s",
            "*ini p3monitor_fail_on: rule 'test_duraton > 10s' is not valid: unknown metric "
            "'test_duraton'; did you mean 'test_duration'?",
        ),
        (
            (),
            "p3monitor_warn_on = success_rate < 95 percent",
            "*ini p3monitor_warn_on: rule 'success_rate < 95 percent' is not valid: unknown "
            "unit 'percent'; write '%'*",
        ),
        (
            ("--p3monitor-warn-on", "test_duration > 10%"),
            "",
            "*--p3monitor-warn-on: rule 'test_duration > 10%' is not valid: test_duration is a "
            "duration (ms, s, m or h); '%' does not fit",
        ),
        (
            (),
            "p3monitor_cost_per_hour = lots",
            "*ini p3monitor_cost_per_hour = 'lots' is not valid*",
        ),
        (
            (),
            "p3monitor_health_targets = total_ci_tme = 10m",
            "*p3monitor_health_targets is not valid: unknown KPI 'total_ci_tme'; did you mean "
            "'total_ci_time'?*",
        ),
        (
            (),
            "p3monitor_history_window = 0",
            "*ini p3monitor_history_window = '0' is not valid: must be at least 1*",
        ),
    ],
)
def test_bad_settings_are_usage_errors(
    pytester: pytest.Pytester, args: tuple[str, ...], ini: str, expected: str
) -> None:
    pytester.makepyfile(test_three=THREE_PASSING)
    pytester.makeini(f"[pytest]\n{ini}\n")
    result = run(pytester, *args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([expected])
    result.stdout.no_fnmatch_line("*passed*")


def test_defaults_warn_only_when_no_rules(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_fail=ONE_FAILING)
    for _ in range(2):
        first = run(pytester)
        first.stdout.no_fnmatch_line("*ci_success_rate*")  # too little history yet
    third, data = report(pytester)
    assert third.ret == pytest.ExitCode.TESTS_FAILED
    third.stdout.fnmatch_lines(
        [
            "p3monitor warning: ci_success_rate is 0% (threshold: ci_success_rate < 80%)",
            "p3monitor warning: test_failure_rate is 50% (threshold: test_failure_rate > 5%)",
        ]
    )
    third.stdout.no_fnmatch_line("*gate failed*")
    assert {a["rule"] for a in data["alerts"]} >= {
        "ci_success_rate < 80%",
        "test_failure_rate > 5%",
    }
    assert all(g["default"] for g in data["gates"])
    # a rule of the user's own replaces the defaults
    own = run(pytester, "--p3monitor-warn-on", "tests > 100")
    own.stdout.no_fnmatch_line("*ci_success_rate*")


def test_history_rules_over_recent_runs(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_three=THREE_PASSING)
    rule = "ci_success_rate < 100%"
    for _ in range(2):
        assert run(pytester, "--p3monitor-fail-on", rule).ret == pytest.ExitCode.OK
    pytester.makepyfile(test_three=ONE_FAILING)
    result = run(
        pytester, "--p3monitor-fail-on", rule, "--p3monitor-fail-on", "test_failure_rate > 20%"
    )
    result.stdout.fnmatch_lines(
        [
            "p3monitor gate failed: ci_success_rate is 66.67% (threshold: ci_success_rate < 100%)",
        ]
    )
    # 1 failure among 3 + 3 + 2 results
    result.stdout.no_fnmatch_line("*test_failure_rate is*")
    strict = run(pytester, "--p3monitor-fail-on", "test_failure_rate > 10%")
    strict.stdout.fnmatch_lines(
        ["p3monitor gate failed: test_failure_rate is 20% (threshold: test_failure_rate > 10%)"]
    )


def test_history_window_setting(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_three=ONE_FAILING)
    for _ in range(3):
        run(pytester)
    pytester.makepyfile(test_three=THREE_PASSING)
    for _ in range(2):
        run(pytester)
    rule = ("--p3monitor-fail-on", "ci_success_rate < 100%")
    # over the last 3 runs (this one included) every run passed
    pytester.makeini("[pytest]\np3monitor_history_window = 3\n")
    assert run(pytester, *rule).ret == pytest.ExitCode.OK
    # over the default 20: 4 of 7 runs passed
    pytester.makeini("[pytest]\n")
    result = run(pytester, *rule)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["*ci_success_rate is 57.14% (threshold: ci_success_rate < 100%)"])


def test_duration_regression_and_anomaly(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester.makepyfile(
        test_timing="""
        import os, time

        def test_steady():
            time.sleep(float(os.environ.get("STEADY_SLEEP", "0")))

        def test_other():
            pass
        """
    )
    rule = "duration_regression > 100%"
    monkeypatch.setenv("STEADY_SLEEP", "0.01")
    first = run(pytester, "--p3monitor-fail-on", rule)
    first.stdout.fnmatch_lines(["*duration_regression > 100%: not evaluated*"])
    for _ in range(4):
        assert run(pytester, "--p3monitor-fail-on", rule).ret == pytest.ExitCode.OK
    monkeypatch.setenv("STEADY_SLEEP", "0.8")
    result, data = report(pytester, "--p3monitor-fail-on", rule)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(
        [
            "p3monitor gate failed: duration_regression > 100%: 1 test crossed: "
            "test_timing.py::test_steady (*%)",
            "p3monitor anomaly: test_timing.py::test_steady took 8*ms, its recent median is "
            "1*ms over 5 passing runs (+*%)",
        ]
    )
    assert any(a["rule"] == "anomaly: duration_jump" for a in data["alerts"])


def test_flaky_rules_count_a_rerun_pass(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_flips_once="""
        from pathlib import Path

        def test_flips(tmp_path_factory):
            marker = Path(__file__).with_name("seen")
            if not marker.exists():
                marker.write_text("x")
                assert False, "first try fails"

        def test_fine():
            pass
        """
    )
    result, data = report(
        pytester,
        "--reruns",
        "1",
        "--p3monitor-fail-on",
        "flaky_count >= 1",
        "--p3monitor-fail-on",
        "flaky_rate > 40%",
    )
    # pytest's last line: "2 passed, 1 rerun, 2 gates failed"
    assert result.parseoutcomes() == {"passed": 2, "rerun": 1, "gates": 2}
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(
        [
            "p3monitor gate failed: flaky_count is 1 (threshold: flaky_count >= 1)",
            "p3monitor gate failed: flaky_rate is 50% (threshold: flaky_rate > 40%)",
        ]
    )
    assert any(r["type"] == "flaky_tests" for r in data["recommendations"])


def test_cost_per_build(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_three=THREE_PASSING)
    pytester.makeini("[pytest]\np3monitor_cost_per_hour = $3600\n")
    result, data = report(pytester, "--p3monitor-warn-on", "cost_per_build > $0.001")
    result.stdout.fnmatch_lines(["p3monitor warning: cost_per_build is $* (threshold: *)"])
    figures = data["metrics"]["figures"]
    assert figures["cost_per_build"] == pytest.approx(figures["total_time"], rel=1e-6)


def test_report_has_health_trends_recommendations(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_three=THREE_PASSING)
    pytester.makeini(
        """
        [pytest]
        p3monitor_health_targets = test_execution_time = 1ms
        p3monitor_health_weights = reliability=1 performance=1 efficiency=0 user_satisfaction=0
        """
    )
    result, data = report(pytester, "--p3monitor-fail-on", "health_score < 100")
    health = data["health"]
    assert health["weights"]["reliability"] == 0.5
    assert health["kpis"]["test_execution_time"]["target"] == 0.001
    assert health["kpis"]["success_rate"]["value"] == 100.0
    assert health["reliability"] == 100.0
    assert health["performance"] < 100.0
    assert data["health_score"] == pytest.approx(
        (health["reliability"] + health["performance"]) / 2, abs=0.1
    )
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(
        ["health: reliability 100, performance *", "*gate failed: health_score is*"]
    )
    assert data["trends"]["last_24h"]["runs"] == 1
    assert data["trends"]["last_24h"]["success_rate"] == 100.0
    assert isinstance(data["recommendations"], list)


def test_report_trends_take_the_stored_runs_peaks(pytester: pytest.Pytester) -> None:
    """The trends read the past runs' peaks from the store (Store.trend_runs)."""
    import time

    from pytest_p3monitor.store import open_store

    pytester.makepyfile(test_three=THREE_PASSING)
    process = {"memory_percent_peak": 42.5, "rss_bytes_peak": 123_456_789, "samples": 9}
    with open_store(str(pytester.path / "results.db")) as store:
        for i, metrics in enumerate([{"metrics": {"resource_usage": {"process": process}}}, {}]):
            run_info = RunInfo(run_id=f"past{i}", started_at=time.time() - 3600 * (i + 1))
            store.save_run(run_info, [TestRecord(nodeid="t", outcome="failed")], metrics)
    _, data = report(pytester, "--p3monitor-db", "results.db")
    last_24h = data["trends"]["last_24h"]
    assert (last_24h["runs"], last_24h["tests"], last_24h["ci_success_rate"]) == (3, 5, 33.3333)
    assert (last_24h["peak_memory_percent"], last_24h["peak_rss_bytes"]) == (42.5, 123_456_789)


def test_gates_under_xdist(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_par="""
        import time
        import pytest

        @pytest.mark.parametrize("i", range(4))
        def test_sleep(i):
            time.sleep(0.3 if i == 3 else 0)
        """
    )
    result = pytester.runpytest_subprocess(
        "--p3monitor", "-n", "2", "--p3monitor-fail-on", "test_duration > 0.2s"
    )
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(
        [
            "p3monitor gate failed: test_duration > 0.2s: 1 test crossed: "
            "test_par.py::test_sleep?3? (*)"
        ]
    )


def test_resource_rules_with_sampling(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_mem="""
        def test_allocates():
            block = bytearray(20 * 1024 * 1024)
            assert block[0] == 0
        """
    )
    result, data = report(
        pytester,
        "--p3monitor-fail-on",
        "peak_rss > 1MiB",
        "--p3monitor-warn-on",
        "test_rss > 1MiB",
        "--p3monitor-warn-on",
        "peak_memory_percent > 100%",
        sampling=True,
    )
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(
        [
            "p3monitor gate failed: peak_rss is *MiB (threshold: peak_rss > 1MiB)",
            "p3monitor warning: test_rss > 1MiB: 1 test crossed: "
            "test_mem.py::test_allocates (*MiB)",
        ]
    )
    statuses = {g["rule"]: g["status"] for g in data["gates"]}
    assert statuses["peak_memory_percent > 100%"] in ("ok", "not_evaluated")


# -- pure parts ----------------------------------------------------------------------------------


def test_default_rules_are_built_as_parsed() -> None:
    assert DEFAULT_WARN_RULES == (
        "ci_success_rate < 80%",
        "test_execution_time > 600s",
        "peak_memory_percent > 80%",
        "test_failure_rate > 5%",
    )
    assert [parse_rule(text) for text in DEFAULT_WARN_RULES] == list(_DEFAULT_RULES)


def _steady_records() -> dict[str, TestRecord]:
    return {
        "t::fast": TestRecord("t::fast", call_s=0.01),
        "t::slow": TestRecord("t::slow", call_s=3.0),
        "t::bad": TestRecord("t::bad", "failed", call_s=0.01),
    }


@pytest.mark.parametrize(("history_runs", "measured"), [(4, False), (5, True)])
def test_duration_regression_of_fast_tests(history_runs: int, measured: bool) -> None:
    records = _steady_records()
    durations = {nodeid: r.duration_s for nodeid, r in records.items()}
    run = RunInfo("now", 100.0)
    past = [HistoryRow(i, f"r{i}", float(i), None, None, "passed", 0, 1.0) for i in range(6)]
    figures = _test_figures(
        [("t::slow", past)],
        records,
        durations,
        run,
        {},
        classify_flaky=False,
        history_runs=history_runs,
    )
    regression = figures.metrics["duration_regression"]
    # the slow test jumped from 1 s to 3 s; with enough runs stored the fast passing test is
    # known steady (0%); the failed one is never judged
    assert isinstance(regression, Deferred)
    expected = {"t::slow": 200.0, "t::fast": 0.0} if measured else {"t::slow": 200.0}
    assert dict(regression) == expected
    [anomaly] = figures.anomalies
    assert anomaly.subject == "t::slow"
    result = evaluate_rule(parse_rule("duration_regression > 300%"), figures.metrics, "warning")
    assert result.message.startswith("duration_regression > 300%: no test crossed (worst t::slow")


def test_duration_regression_not_measured_without_history() -> None:
    records = _steady_records()
    durations = {nodeid: r.duration_s for nodeid, r in records.items()}
    figures = _test_figures([], records, durations, RunInfo("now", 100.0), {}, history_runs=4)
    assert figures.metrics["duration_regression"] is None
    assert figures.metrics["flaky_count"] == 0.0


def test_tests_that_may_have_jumped() -> None:
    from pytest_p3monitor.gates_plugin import _may_exceed

    assert not _may_exceed([0.1, 0.5, 0.2], 0.5)
    assert _may_exceed([0.1, 0.6], 0.5)
    assert _may_exceed([float("nan"), 2.0], 0.5)  # max() would answer nan, below nothing
    assert _may_exceed([0.1, float("inf")], 0.5)
