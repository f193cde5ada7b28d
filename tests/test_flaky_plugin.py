"""Flakiness in real sessions: history from re-running one directory while editing its tests
(as pytest's own test_cacheprovider.py does), new evidence, quarantine, reruns, xdist."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from pytest_p3monitor import cli
from pytest_p3monitor.flaky_plugin import FlakyPlugin, failed_or_rerun
from pytest_p3monitor.records import RunInfo, TestRecord
from pytest_p3monitor.store.sqlite import SQLiteStore

from conftest import results, store_rows

DB = Path(".p3monitor") / "results.db"


def write_suite(pytester: pytest.Pytester, **outcomes: bool) -> None:
    """test_mod.py with one test per keyword, passing when its value is True."""
    body = "\n".join(f"def test_{name}():\n    assert {ok!r}\n" for name, ok in outcomes.items())
    pytester.makepyfile(test_mod=body)


def session(pytester: pytest.Pytester, commit: str, *args: str) -> pytest.RunResult:
    return pytester.runpytest("--p3monitor", "--p3monitor-commit", commit, *args)


def lines_starting(result: pytest.RunResult, prefix: str) -> list[str]:
    return [line for line in result.stdout.lines if line.startswith(prefix)]


def seed(pytester: pytest.Pytester, history: dict[str, str], commit: str = "c0") -> None:
    """Store one run per letter (P passed, F failed) of each test's string, on ``commit``."""
    length = max(len(v) for v in history.values())
    with SQLiteStore(pytester.path / DB) as store:
        for i in range(length):
            run = RunInfo(run_id=f"seed-{i}", started_at=1_700_000_000.0 + i, commit=commit)
            tests = [
                TestRecord(nodeid, outcome="passed" if letters[i] == "P" else "failed")
                for nodeid, letters in history.items()
                if i < len(letters)
            ]
            store.save_run(run, tests, {})


def flaky_json(
    pytester: pytest.Pytester, capsys: pytest.CaptureFixture[str], *args: str
) -> list[dict[str, Any]]:
    capsys.readouterr()
    code = cli.main(["flaky", "--db", str(pytester.path / DB), "--format", "json", *args])
    assert code == 0
    data: list[dict[str, Any]] = json.loads(capsys.readouterr().out)
    return data


def test_history_from_edited_runs(
    pytester: pytest.Pytester, capsys: pytest.CaptureFixture[str]
) -> None:
    write_suite(pytester, stable=True, flip=True, regress=True)
    session(pytester, "c1").assert_outcomes(passed=3)

    write_suite(pytester, stable=True, flip=False, regress=True)
    result = session(pytester, "c1")
    result.assert_outcomes(passed=2, failed=1)
    result.stdout.fnmatch_lines(
        ["new flaky evidence (1): test_mod.py::test_flip (failed on c1, which had the other*"]
    )

    write_suite(pytester, stable=True, flip=True, regress=False)
    for _ in range(2):
        session(pytester, "c2").assert_outcomes(passed=2, failed=1)
    write_suite(pytester, stable=True, flip=False, regress=False)
    result = session(pytester, "c3")
    result.stdout.fnmatch_lines(
        ["known flaky, failed in this run (1): test_mod.py::test_flip (score *, 1 failures in 4*"]
    )
    (known,) = lines_starting(result, "known flaky")
    assert "test_regress" not in known

    listed = flaky_json(pytester, capsys)
    assert [t["nodeid"] for t in listed] == ["test_mod.py::test_flip"]
    (flip,) = listed
    assert flip["status"] == "flaky"
    assert (flip["runs"], flip["failures"]) == (5, 2)
    assert flip["flaky_commits"] == ["c1"]
    assert flip["evidence"] == ["same-commit"]

    every = {t["nodeid"]: t for t in flaky_json(pytester, capsys, "--all")}
    assert every["test_mod.py::test_regress"]["status"] == "regressed"
    assert every["test_mod.py::test_regress"]["since_commit"] == "c2"
    assert every["test_mod.py::test_stable"]["status"] == "passing"


def test_json_report_carries_flaky_tests(pytester: pytest.Pytester) -> None:
    seed(
        pytester,
        {
            "test_mod.py::test_flip": "PFPFP",
            "test_mod.py::test_calm": "PPPFP",  # known flaky, passes this time
            "test_mod.py::test_ok": "PPPPP",
            "test_gone.py::test_old": "PFPFP",  # flaky, but not in this session
        },
    )
    write_suite(pytester, flip=False, calm=True, ok=True)
    session(pytester, "c0", "--p3monitor-json", "report.json").assert_outcomes(passed=2, failed=1)
    report = json.loads((pytester.path / "report.json").read_text())
    assert [e["nodeid"] for e in report["flaky"]] == [
        "test_mod.py::test_flip",
        "test_mod.py::test_calm",
    ]
    flip, calm = report["flaky"]
    assert flip["status"] == "flaky"
    assert flip["known_flaky"] is True
    assert flip["runs"] == 6  # this session folded in
    assert flip["session"] == {
        "outcome": "failed",
        "reruns": 0,
        "new_evidence": ["same-commit"],
        "quarantined": False,
    }
    assert calm["status"] == "flaky"
    assert calm["runs"] == 5  # as the store knew it
    assert calm["session"]["outcome"] == "passed"
    assert report["metrics"]["reliability"]["flaky_in_session"] == []
    assert report["metrics"]["figures"]["flaky_count"] == 2


def test_passing_session_reads_no_history(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    seed(pytester, {"test_mod.py::test_flip": "PFPF"})
    asked: list[object] = []
    original = FlakyPlugin._histories

    def spy(self: FlakyPlugin, nodeids: Any) -> Any:
        asked.append(list(nodeids))
        return original(self, nodeids)

    monkeypatch.setattr(FlakyPlugin, "_histories", spy)
    write_suite(pytester, flip=True, other=True)
    result = session(pytester, "c0")
    result.assert_outcomes(passed=2)
    assert asked == []
    assert not lines_starting(result, "known flaky")

    write_suite(pytester, flip=False, other=True)
    session(pytester, "c0").assert_outcomes(passed=1, failed=1)
    assert asked == [["test_mod.py::test_flip"]]


class TestQuarantine:
    INI = "[pytest]\np3monitor_quarantine = true\n"

    def test_known_flaky_failure_does_not_fail_the_session(self, pytester: pytest.Pytester) -> None:
        seed(pytester, {"test_mod.py::test_flip": "PFPPF", "test_mod.py::test_ok": "PPPPP"})
        pytester.makeini(self.INI)
        write_suite(pytester, flip=False, ok=True)
        result = session(pytester, "c0", "--p3monitor-json", "report.json")
        result.assert_outcomes(passed=1, failed=1)  # still run and shown as failed
        assert result.ret == pytest.ExitCode.OK
        result.stdout.fnmatch_lines(
            [
                "known flaky, failed in this run (1): test_mod.py::test_flip*",
                "quarantined (1): test_mod.py::test_flip - their failures do not fail the session*",
                "FAILED test_mod.py::test_flip*",
            ]
        )
        got = results(pytester.path / DB)
        assert got["test_mod.py::test_flip"][0] == "failed"  # still recorded
        (status,) = store_rows(
            pytester.path / DB, "SELECT exit_status FROM p3m_runs WHERE run_id NOT LIKE 'seed-%'"
        )
        assert status == (0,)
        report = json.loads((pytester.path / "report.json").read_text())
        assert report["quarantined"] == ["test_mod.py::test_flip"]
        assert report["flaky"][0]["session"]["quarantined"] is True

    def test_off_by_default(self, pytester: pytest.Pytester) -> None:
        seed(pytester, {"test_mod.py::test_flip": "PFPPF"})
        write_suite(pytester, flip=False)
        result = session(pytester, "c0")
        assert result.ret == pytest.ExitCode.TESTS_FAILED
        assert not lines_starting(result, "quarantined")

    def test_command_line_flag(self, pytester: pytest.Pytester) -> None:
        seed(pytester, {"test_mod.py::test_flip": "PFPPF"})
        write_suite(pytester, flip=False)
        result = session(pytester, "c0", "--p3monitor-quarantine")
        assert result.ret == pytest.ExitCode.OK

    def test_another_failure_still_fails_the_session(self, pytester: pytest.Pytester) -> None:
        seed(pytester, {"test_mod.py::test_flip": "PFPPF", "test_mod.py::test_ok": "PPPPP"})
        pytester.makeini(self.INI)
        write_suite(pytester, flip=False, ok=False)
        result = session(pytester, "c0")
        assert result.ret == pytest.ExitCode.TESTS_FAILED
        result.stdout.fnmatch_lines(
            ["quarantined (1): test_mod.py::test_flip - other failures still fail the session"]
        )

    @pytest.mark.parametrize("stop", ["-x", "--maxfail=1"])
    def test_a_session_stopped_early_still_fails(
        self, pytester: pytest.Pytester, stop: str
    ) -> None:
        """-x stopped the session at the flaky failure: the tests after it never ran, and
        may be broken (test_ok is), so quarantine cannot say the session passes."""
        seed(pytester, {"test_mod.py::test_flip": "PFPPF", "test_mod.py::test_ok": "PPPPP"})
        pytester.makeini(self.INI)
        write_suite(pytester, flip=False, ok=False)
        result = session(pytester, "c0", stop, "-p", "no:randomly")
        result.assert_outcomes(failed=1)
        assert result.ret == pytest.ExitCode.TESTS_FAILED
        result.stdout.fnmatch_lines(
            ["quarantined (1): test_mod.py::test_flip - the session stopped before its other*"]
        )

    @pytest.mark.parametrize(
        ("history", "why"),
        [
            ({}, "new test"),
            ({"test_mod.py::test_flip": "PPPPPP"}, "regressed: passed on every run before"),
            ({"test_mod.py::test_flip": "FFFFFF"}, "failing on every run"),
        ],
    )
    def test_never_quarantined(
        self, pytester: pytest.Pytester, history: dict[str, str], why: str
    ) -> None:
        if history:
            seed(pytester, history)
        pytester.makeini(self.INI)
        write_suite(pytester, flip=False)
        result = session(pytester, "c1")
        assert result.ret == pytest.ExitCode.TESTS_FAILED, why
        assert not lines_starting(result, "quarantined")

    def test_flaky_test_that_broke_for_good_is_not_quarantined(
        self, pytester: pytest.Pytester
    ) -> None:
        seed(pytester, {"test_mod.py::test_flip": "PFPPFPPPFP"}, commit="c0")
        with SQLiteStore(pytester.path / DB) as store:  # then 14 failures on new commits
            for i in range(14):
                run = RunInfo(run_id=f"broken-{i}", started_at=1_800_000_000.0 + i, commit=f"b{i}")
                store.save_run(run, [TestRecord("test_mod.py::test_flip", outcome="failed")], {})
        pytester.makeini(self.INI)
        write_suite(pytester, flip=False)
        result = session(pytester, "b14")
        assert result.ret == pytest.ExitCode.TESTS_FAILED
        assert not lines_starting(result, "quarantined")


FLAKY_ONCE = """
import pathlib

def test_fails_first_time():
    marker = pathlib.Path({path!r})
    if not marker.exists():
        marker.write_text("failed once")
        assert False, "first attempt"

def test_always_fails():
    assert False
"""


class TestReruns:
    def setup_history(self, pytester: pytest.Pytester) -> None:
        seed(pytester, {"test_mod.py::test_fails_first_time": "PFPPFP"})
        pytester.makepyfile(test_mod=FLAKY_ONCE.format(path=str(pytester.path / "marker")))
        pytester.makeini("[pytest]\np3monitor_rerun_flaky = 2\n")

    def check(self, pytester: pytest.Pytester, result: pytest.RunResult) -> None:
        assert result.parseoutcomes() == {"passed": 1, "failed": 1, "rerun": 1}
        result.stdout.fnmatch_lines(
            [
                "new flaky evidence (1): test_mod.py::test_fails_first_time (passed after 1 rerun*",
                "rerun up to 2x as known flaky: 1 test",
            ]
        )
        got = results(pytester.path / DB)
        assert got["test_mod.py::test_fails_first_time"][:2] == ("passed", 1)
        assert got["test_mod.py::test_always_fails"][:2] == ("failed", 0)  # not known flaky

    def test_known_flaky_tests_get_reruns(self, pytester: pytest.Pytester) -> None:
        self.setup_history(pytester)
        result = session(pytester, "c0", "--p3monitor-json", "report.json")
        self.check(pytester, result)
        report = json.loads((pytester.path / "report.json").read_text())
        assert report["metrics"]["reliability"]["flaky_in_session"] == [
            {"nodeid": "test_mod.py::test_fails_first_time", "reruns": 1, "known_flaky": True}
        ]

    def test_under_xdist(self, pytester: pytest.Pytester) -> None:
        self.setup_history(pytester)
        result = pytester.runpytest_subprocess("--p3monitor", "--p3monitor-commit", "c0", "-n", "2")
        self.check(pytester, result)

    def test_command_line_overrides_ini(self, pytester: pytest.Pytester) -> None:
        self.setup_history(pytester)
        result = session(pytester, "c0", "--p3monitor-rerun-flaky", "0")
        result.assert_outcomes(failed=2)

    def test_without_rerunfailures(self, pytester: pytest.Pytester) -> None:
        self.setup_history(pytester)
        result = session(pytester, "c0", "-p", "no:rerunfailures")
        result.assert_outcomes(passed=0, failed=2)
        result.stdout.fnmatch_lines(
            ["*p3monitor_rerun_flaky = 2 needs pytest-rerunfailures, which is not installed*"]
        )

    def test_rerun_pass_without_history_is_flaky_in_session(
        self, pytester: pytest.Pytester
    ) -> None:
        pytester.makepyfile(test_mod=FLAKY_ONCE.format(path=str(pytester.path / "marker")))
        result = session(pytester, "c0", "--reruns", "1", "--p3monitor-json", "report.json")
        assert result.parseoutcomes() == {"passed": 1, "failed": 1, "rerun": 2}
        report = json.loads((pytester.path / "report.json").read_text())
        assert report["metrics"]["reliability"]["flaky_in_session"] == [
            {"nodeid": "test_mod.py::test_fails_first_time", "reruns": 1, "known_flaky": False}
        ]
        (entry,) = report["flaky"]
        assert entry["status"] == "flaky"
        assert entry["evidence"] == ["rerun"]


@pytest.mark.parametrize(
    ("option", "value", "where"),
    [
        ("--p3monitor-flaky-window", "0", "--p3monitor-flaky-window"),
        ("--p3monitor-flaky-window", "lots", "--p3monitor-flaky-window"),
        ("--p3monitor-rerun-flaky", "-1", "--p3monitor-rerun-flaky"),
    ],
)
def test_bad_settings_are_usage_errors(
    pytester: pytest.Pytester, option: str, value: str, where: str
) -> None:
    write_suite(pytester, ok=True)
    result = pytester.runpytest("--p3monitor", f"{option}={value}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"*p3monitor: {where} = '{value}' is not valid*"])


def test_bad_ini_window(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\np3monitor_flaky_window = 0\n")
    write_suite(pytester, ok=True)
    result = pytester.runpytest("--p3monitor")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*ini p3monitor_flaky_window = '0' is not valid*at least 1*"])


def test_window_and_branch_limit_the_history(pytester: pytest.Pytester) -> None:
    # flaky long ago on another branch; on main it only ever passed
    with SQLiteStore(pytester.path / DB) as store:
        for i, (outcome, branch) in enumerate(
            [("passed", "dev"), ("failed", "dev"), ("passed", "main"), ("passed", "main")]
        ):
            run = RunInfo(run_id=f"r{i}", started_at=1.0 + i, commit="c0", branch=branch)
            store.save_run(run, [TestRecord("test_mod.py::test_flip", outcome=outcome)], {})  # type: ignore[arg-type]
    pytester.makeini("[pytest]\np3monitor_quarantine = true\n")
    write_suite(pytester, flip=False)
    assert session(pytester, "c0").ret == pytest.ExitCode.OK  # flaky: quarantined
    assert (
        session(pytester, "c0", "--p3monitor-flaky-branch", "main").ret
        == pytest.ExitCode.TESTS_FAILED
    )
    assert (
        session(pytester, "c0", "--p3monitor-flaky-window", "2").ret == pytest.ExitCode.TESTS_FAILED
    )


def test_unusable_store_still_reports_rerun_evidence(pytester: pytest.Pytester) -> None:
    (pytester.path / "not-a-db").write_text("hello")
    pytester.makepyfile(test_mod=FLAKY_ONCE.format(path=str(pytester.path / "marker")))
    result = session(pytester, "c0", "--reruns", "1", "--p3monitor-db", "not-a-db", "-W", "ignore")
    assert result.parseoutcomes() == {"passed": 1, "failed": 1, "rerun": 2}
    result.stdout.fnmatch_lines(["new flaky evidence (1): *test_fails_first_time (passed after 1*"])


def test_failed_or_rerun_keeps_the_records_order() -> None:
    records = [
        TestRecord("t::ok"),
        TestRecord("t::bad", outcome="failed"),
        TestRecord("t::skip", outcome="skipped"),
        TestRecord("t::rerun", reruns=2),
        TestRecord("t::err", outcome="error"),
        TestRecord("t::xfail", outcome="xfailed"),
    ]
    assert [r.nodeid for r in failed_or_rerun(records)] == ["t::bad", "t::rerun", "t::err"]
    assert failed_or_rerun(records[:1] + records[2:3] + records[5:]) == []
    assert failed_or_rerun([]) == []
