"""GitHub Actions: workflow commands, outputs, job summary, annotations.

The pure functions are tested on report dicts; the plugin with pytester, the job's
variables pointing at temporary files.
"""

from __future__ import annotations

import re
import textwrap
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_p3monitor.exporters import github
from pytest_p3monitor.exporters.figures import Location


def unescape_data(text: str) -> str:
    return text.replace("%0A", "\n").replace("%0D", "\r").replace("%25", "%")


def unescape_property(text: str) -> str:
    return unescape_data(text.replace("%3A", ":").replace("%2C", ","))


def make_report(**over: Any) -> dict[str, Any]:
    report: dict[str, Any] = {
        "schema": "p3monitor-report/1",
        "run": {"id": "run-42", "commit": "0123456789abcdef", "branch": "main", "ci": {}},
        "health_score": 72.25,
        "health": {
            "reliability": 60.0,
            "performance": 90.0,
            "efficiency": 80.0,
            "user_satisfaction": 100.0,
            "weights": {"reliability": 0.4, "performance": 0.3},
        },
        "metrics": {
            "performance": {"test_execution_time_s": 12.3456, "total_time_s": 15.0},
            "reliability": {
                "tests": 4,
                "passed": 3,
                "failed": 1,
                "errors": 0,
                "skipped": 0,
                "success_rate": 75.0,
                "flaky_in_session": [{"nodeid": "tests/test_b.py::test_rerun", "reruns": 1}],
            },
            "resource_usage": {
                "process": {"cpu_percent_peak": 98.5, "rss_bytes_peak": 52428800},
                "containers": [{"name": "db", "memory_bytes_peak": 1048576}],
            },
        },
        "tests": [
            {
                "nodeid": "tests/test_a.py::test_slow",
                "file": "tests/test_a.py",
                "line": 7,
                "duration_s": 3.5,
            },
            {
                "nodeid": "tests/test_a.py::test_fast",
                "file": "tests/test_a.py",
                "line": 12,
                "duration_s": 0.01,
            },
        ],
        "flaky": [
            {
                "nodeid": "tests/test_a.py::test_fast",
                "status": "flaky",
                "score": 0.42,
                "evidence": ["3 flips in 20 runs"],
            },
            {"nodeid": "tests/test_c.py::test_fixed", "status": "fixed", "score": 0.1},
        ],
        "alerts": [
            {
                "rule": "test_duration > 1s",
                "severity": "critical",
                "metric": "test_duration",
                "value": 3.5,
                "threshold": 1.0,
                "unit": "s",
                "message": "1 test crossed: tests/test_a.py::test_slow (3.5s)",
                "tests": ["tests/test_a.py::test_slow"],
            },
            {
                "rule": "success_rate < 95%",
                "severity": "warning",
                "metric": "success_rate",
                "value": 75.0,
                "threshold": 95.0,
                "unit": "%",
                "message": "success_rate is 75%, a, b",
                "tests": [],
            },
        ],
    }
    report.update(over)
    return report


# -- escaping -------------------------------------------------------------------------------


def test_escape_examples() -> None:
    assert github.escape_data("50% done\r\nnext") == "50%25 done%0D%0Anext"
    assert github.escape_property("a:b,c%\n") == "a%3Ab%2Cc%25%0A"


@given(st.text())
def test_escape_data_round_trips(text: str) -> None:
    escaped = github.escape_data(text)
    assert "\n" not in escaped and "\r" not in escaped
    assert unescape_data(escaped) == text


@given(st.text())
def test_escape_property_round_trips(text: str) -> None:
    escaped = github.escape_property(text)
    assert not set(escaped) & set(":,\r\n")
    assert unescape_property(escaped) == text


@given(message=st.text(), title=st.text(), path=st.text(min_size=1))
def test_workflow_command_is_one_parsable_line(message: str, title: str, path: str) -> None:
    line = github.workflow_command("warning", message, {"file": path, "line": 3, "title": title})
    assert "\n" not in line and "\r" not in line
    match = re.fullmatch(r"::warning (?P<props>[^:]*)::(?P<msg>.*)", line, re.DOTALL)
    assert match is not None
    props = dict(p.split("=", 1) for p in match["props"].split(","))
    assert unescape_property(props["file"]) == path
    assert props["line"] == "3"
    assert unescape_data(match["msg"]) == message


def test_workflow_command_leaves_out_empty_properties() -> None:
    assert github.workflow_command("error", "m", {"file": None, "line": None}) == "::error::m"


# -- outputs, group -------------------------------------------------------------------------


def test_output_lines() -> None:
    values = dict(line.split("=", 1) for line in github.output_lines(make_report()))
    assert values["test_execution_time"] == "12.346"
    assert values["success_rate"] == "75"
    assert values["health_score"] == "72.2" or values["health_score"] == "72.3"
    assert values["flaky_count"] == "2"  # one from history, one rerun in this session
    assert values["run_id"] == "run-42"
    assert values["critical_alerts"] == "1"


def test_output_lines_of_an_empty_report() -> None:
    values = dict(line.split("=", 1) for line in github.output_lines({}))
    assert values["run_id"] == ""
    assert values["health_score"] == ""
    assert values["flaky_count"] == "0"


def test_group_lines() -> None:
    lines = github.group_lines(make_report())
    assert lines[0] == "::group::p3monitor metrics"
    assert lines[-1] == "::endgroup::"
    assert "health_score: 72.2" in lines or "health_score: 72.3" in lines
    assert "container db: peak memory 1048576 B" in lines
    assert not any(line.startswith("::") for line in lines[1:-1])


# -- annotations ----------------------------------------------------------------------------


def test_annotations_for_rules_and_flaky_tests() -> None:
    lines = github.annotation_lines(
        make_report(),
        rule_location=lambda rule: Location("pytest.ini", 5) if "success" in rule else None,
    )
    assert lines == [
        "::error file=tests/test_a.py,line=7,title=p3monitor%3A test_duration > 1s::"
        "tests/test_a.py::test_slow: 1 test crossed: tests/test_a.py::test_slow (3.5s)",
        "::warning file=pytest.ini,line=5,title=p3monitor%3A success_rate < 95%25::"
        "success_rate is 75%25, a, b",
        "::warning file=tests/test_a.py,line=12,title=p3monitor%3A flaky test::"
        "tests/test_a.py::test_fast is flaky (score 0.42; 3 flips in 20 runs)",
        "::warning file=tests/test_b.py,title=p3monitor%3A flaky test::"
        "tests/test_b.py::test_rerun is flaky (failed, then passed on rerun)",
    ]


def test_annotations_paths_go_through_path_of() -> None:
    lines = github.annotation_lines(make_report(), path_of=lambda p: f"sub/{p}")
    assert lines[0].startswith("::error file=sub/tests/test_a.py,line=7,")


def test_annotations_are_capped_per_kind() -> None:
    alerts = [
        {"rule": f"r{i}", "severity": "critical" if i % 2 else "warning", "message": f"m{i}"}
        for i in range(50)
    ]
    flaky = [{"nodeid": f"t.py::test_{i}", "status": "flaky"} for i in range(30)]
    lines = github.annotation_lines(make_report(alerts=alerts, flaky=flaky))
    errors = [line for line in lines if line.startswith("::error")]
    warnings = [line for line in lines if line.startswith("::warning")]
    notices = [line for line in lines if line.startswith("::notice")]
    assert len(errors) == github.MAX_ANNOTATIONS
    assert len(warnings) == github.MAX_ANNOTATIONS
    (notice,) = notices
    # 25 critical + 25 warnings + 30 flaky + 1 flaky in session - 20 shown
    assert "61 more p3monitor annotation(s)" in notice


@pytest.mark.parametrize(
    ("ini", "rule", "line"),
    [
        ("[pytest]\np3monitor_fail_on =\n    success_rate < 95%\n", "success_rate < 95%", 3),
        ("[pytest]\np3monitor_warn_on = health_score<85\n", "health_score < 85", 2),
        ('[tool.pytest.ini_options]\np3monitor_fail_on = ["a > 1s", "b < 2"]\n', "b < 2", 2),
        ("[pytest]\n# success_rate < 95%\n", "success_rate < 95%", None),
        ("[pytest]\np3monitor_fail_on = max_test_duration > 1s\n", "test_duration > 1s", None),
    ],
)
def test_find_rule_line(ini: str, rule: str, line: int | None) -> None:
    assert github.find_rule_line(ini, rule) == line


# -- the job summary ------------------------------------------------------------------------


def test_step_summary_sections() -> None:
    text = github.step_summary(make_report())
    assert text.startswith("## ❌ p3monitor: health 72.2/100") or text.startswith(
        "## ❌ p3monitor: health 72.3/100"
    )
    for heading in (
        "### Health",
        "### Alerts (2)",
        "### Flaky tests (2)",
        "### Slowest tests",
        "### Resource peaks",
    ):
        assert heading in text
    assert "| ❌ critical | `test_duration > 1s` | 3.5 s | 1 s |" in text
    assert "| `tests/test_a.py::test_slow` | 3.500 s | 99.7 % |" in text
    assert "50.0 MiB" in text


def test_step_summary_escapes_table_breakers() -> None:
    report = make_report(
        alerts=[{"rule": "x|y", "severity": "warning", "message": "<script>a|b\nc</script>"}]
    )
    text = github.step_summary(report)
    assert "<script>" not in text
    assert "`x\\|y`" in text
    assert "&lt;script&gt;a\\|b c&lt;/script&gt;" in text


@settings(max_examples=25, deadline=None)
@given(
    n_tests=st.integers(0, 3000),
    name=st.text(min_size=1, max_size=300),
    limit=st.integers(200, 70_000),
)
def test_step_summary_stays_under_its_limit(n_tests: int, name: str, limit: int) -> None:
    tests = [{"nodeid": f"{name}::{i}", "duration_s": float(i)} for i in range(n_tests)]
    alerts = [{"rule": name, "severity": "critical", "message": name * 3}] * 40
    flaky = [{"nodeid": f"{name}{i}", "status": "flaky", "evidence": [name]} for i in range(40)]
    text = github.step_summary(make_report(tests=tests, alerts=alerts, flaky=flaky), limit)
    assert len(text.encode("utf-8")) <= limit


def test_step_summary_of_a_huge_session_is_far_below_1_mib() -> None:
    tests = [
        {"nodeid": f"tests/test_{i}.py::test_{'x' * 200}", "duration_s": 1.0} for i in range(20_000)
    ]
    text = github.step_summary(make_report(tests=tests))
    assert len(text.encode("utf-8")) <= github.SUMMARY_MAX_BYTES < 1024 * 1024


# -- writing the files ----------------------------------------------------------------------


def test_write_outputs_and_summary_append(tmp_path: Path) -> None:
    out, summary = tmp_path / "out", tmp_path / "summary.md"
    out.write_text("earlier=1\n")
    env = {"GITHUB_OUTPUT": str(out), "GITHUB_STEP_SUMMARY": str(summary)}
    assert github.write_outputs(make_report(), env) == out
    assert github.write_summary(make_report(), env) == summary
    lines = out.read_text().splitlines()
    assert lines[0] == "earlier=1"
    assert "run_id=run-42" in lines
    assert "### Alerts (2)" in summary.read_text()


def test_write_without_variables_does_nothing() -> None:
    assert github.write_outputs(make_report(), {}) is None
    assert github.write_summary(make_report(), {}) is None


def test_write_to_an_unwritable_path_names_the_variable(tmp_path: Path) -> None:
    env = {"GITHUB_STEP_SUMMARY": str(tmp_path / "missing" / "summary.md")}
    with pytest.raises(github.GitHubError, match=r"\$GITHUB_STEP_SUMMARY .*missing"):
        github.write_summary(make_report(), env)


# -- the plugin -----------------------------------------------------------------------------


@pytest.fixture
def gha(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    files = {"output": tmp_path / "gh" / "output", "summary": tmp_path / "gh" / "summary.md"}
    files["output"].parent.mkdir()
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    monkeypatch.setenv("GITHUB_OUTPUT", str(files["output"]))
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(files["summary"]))
    monkeypatch.delenv("GITHUB_WORKSPACE", raising=False)
    return files


SUITE = """
    import time

    def test_ok():
        pass

    def test_slow():
        time.sleep(0.3)

    def test_fail():
        assert 0
"""
SLOW_LINE = textwrap.dedent(SUITE).strip().splitlines().index("def test_slow():") + 1


def test_plugin_in_github_actions(pytester: pytest.Pytester, gha: dict[str, Path]) -> None:
    pytester.makeini(
        """
        [pytest]
        p3monitor_fail_on =
            test_duration > 0.2s
        p3monitor_warn_on =
            success_rate < 95%
        """
    )
    pytester.makepyfile(test_suite=SUITE)
    result = pytester.runpytest("--p3monitor", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=2, failed=1)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    out = result.stdout.str()
    assert "::group::p3monitor metrics" in out
    assert "::endgroup::" in out
    result.stdout.fnmatch_lines(
        [
            f"::error file=test_suite.py,line={SLOW_LINE},title=p3monitor%3A test_duration > 0.2s::"
            "test_suite.py::test_slow: *",
            "::warning file=tox.ini,line=5,title=p3monitor%3A success_rate < 95%25::*",
        ]
    )
    outputs = dict(line.split("=", 1) for line in gha["output"].read_text().splitlines())
    assert {"test_execution_time", "success_rate", "health_score", "flaky_count", "run_id"} <= set(
        outputs
    )
    assert outputs["success_rate"] == "66.67"
    assert outputs["flaky_count"] == "0"
    assert float(outputs["test_execution_time"]) >= 0.3
    summary = gha["summary"].read_text()
    assert "p3monitor: health" in summary
    assert "### Alerts (2)" in summary
    assert "`test_suite.py::test_slow`" in summary


def test_plugin_not_in_github_actions(
    pytester: pytest.Pytester, gha: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GITHUB_ACTIONS", "false")
    pytester.makepyfile(test_suite=SUITE)
    result = pytester.runpytest("--p3monitor", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=2, failed=1)
    assert "::group::" not in result.stdout.str()
    assert not gha["output"].exists()
    assert not gha["summary"].exists()


def test_plugin_github_forced_off(pytester: pytest.Pytester, gha: dict[str, Path]) -> None:
    pytester.makeini("[pytest]\np3monitor_github = false\n")
    pytester.makepyfile(test_suite=SUITE)
    result = pytester.runpytest("--p3monitor", "-p", "no:cacheprovider")
    assert "::group::" not in result.stdout.str()
    assert not gha["output"].exists()


def test_plugin_github_bad_setting_is_a_usage_error(
    pytester: pytest.Pytester, gha: dict[str, Path]
) -> None:
    pytester.makeini("[pytest]\np3monitor_github = sometimes\n")
    pytester.makepyfile(test_suite=SUITE)
    result = pytester.runpytest("--p3monitor", "-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*ini p3monitor_github = 'sometimes' is not valid*"])


def test_unwritable_summary_is_one_warning(
    pytester: pytest.Pytester, gha: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(gha["summary"].parent / "nope" / "s.md"))
    pytester.makepyfile(test_suite=SUITE)
    result = pytester.runpytest("--p3monitor", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=2, failed=1)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    warnings = [ln for ln in result.outlines if "ExportWarning" in ln]
    assert len(warnings) == 1, result.outlines
    assert "$GITHUB_STEP_SUMMARY" in warnings[0]
    # the outputs were still written, and the exit status of a passing suite stays 0
    assert "run_id=" in gha["output"].read_text()


def test_unwritable_summary_keeps_a_green_session_green(
    pytester: pytest.Pytester, gha: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", "/proc/version")
    pytester.makepyfile("def test_ok(): pass")
    result = pytester.runpytest("--p3monitor", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    assert result.ret == pytest.ExitCode.OK


def test_annotation_paths_are_relative_to_the_workspace(
    pytester: pytest.Pytester, gha: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    # the project is a subfolder of the checked-out repository
    monkeypatch.setenv("GITHUB_WORKSPACE", str(pytester.path.parent))
    pytester.makeini("[pytest]\np3monitor_fail_on = test_duration > 0.2s\n")
    pytester.makepyfile(test_suite=SUITE)
    result = pytester.runpytest("--p3monitor", "-p", "no:cacheprovider")
    sub = pytester.path.name
    result.stdout.fnmatch_lines(
        [f"::error file={sub}/test_suite.py,line={SLOW_LINE},title=p3monitor%3A test_duration*"]
    )
