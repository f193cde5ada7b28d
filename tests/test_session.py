"""The plugin in real pytest sessions: what it records, where, and what it never changes."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from conftest import results, store_rows

DB = Path(".p3monitor") / "results.db"

SUITE = """
import pytest

def test_pass():
    pass

def test_fail():
    assert 1 == 2, "one is not two"

@pytest.mark.skip(reason="not today")
def test_skip():
    pass

@pytest.mark.xfail(reason="known")
def test_xfail():
    assert False

@pytest.mark.xfail(reason="fixed already")
def test_xpass():
    pass

@pytest.fixture
def broken():
    raise RuntimeError("fixture broke")

def test_setup_error(broken):
    pass

def test_teardown_error(request):
    request.addfinalizer(lambda: 1 / 0)
"""

EXPECTED = {
    "test_suite.py::test_pass": "passed",
    "test_suite.py::test_fail": "failed",
    "test_suite.py::test_skip": "skipped",
    "test_suite.py::test_xfail": "xfailed",
    "test_suite.py::test_xpass": "xpassed",
    "test_suite.py::test_setup_error": "error",
    "test_suite.py::test_teardown_error": "error",
}


def test_records_every_outcome_once(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_suite=SUITE)
    result = pytester.runpytest("--p3monitor", "-p", "no:randomly")
    result.assert_outcomes(passed=2, failed=1, skipped=1, xfailed=1, xpassed=1, errors=2)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    got = results(pytester.path / DB)
    assert {k: v[0] for k, v in got.items()} == EXPECTED
    assert "one is not two" in got["test_suite.py::test_fail"][3]
    assert "fixture broke" in got["test_suite.py::test_setup_error"][3]
    assert "ZeroDivisionError" in got["test_suite.py::test_teardown_error"][3]
    (run,) = store_rows(
        pytester.path / DB,
        "SELECT tests, passed, failed, errors, skipped, xfailed, xpassed, exit_status, hostname,"
        " python, pytest FROM p3m_runs",
    )
    assert run[:8] == (7, 1, 1, 2, 1, 1, 1, 1)
    assert run[8] and run[9] and run[10] == pytest.__version__


def test_file_line_and_phase_timings(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_timing="""
        import time, pytest

        @pytest.fixture
        def slow_setup():
            time.sleep(0.05)
            yield
            time.sleep(0.03)

        def test_timed(slow_setup):
            time.sleep(0.1)
        """
    )
    pytester.runpytest("--p3monitor").assert_outcomes(passed=1)
    ((file, line, setup, call, teardown, start, stop),) = store_rows(
        pytester.path / DB,
        "SELECT t.file, t.line, setup_s, call_s, teardown_s, start_at, stop_at"
        " FROM p3m_results r JOIN p3m_tests t ON t.id = r.test",
    )
    assert (file, line) == ("test_timing.py", 9)
    assert 0.04 < setup < 0.5
    assert 0.09 < call < 0.6
    assert 0.02 < teardown < 0.5
    assert stop - start >= setup + call + teardown - 0.01


def test_without_the_flag_nothing_is_created(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_suite=SUITE)
    result = pytester.runpytest("-p", "no:randomly")
    result.assert_outcomes(passed=2, failed=1, skipped=1, xfailed=1, xpassed=1, errors=2)
    assert not (pytester.path / ".p3monitor").exists()
    result.stdout.no_fnmatch_line("*- p3monitor -*")


def test_without_the_flag_no_heavy_import(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_imports="""
        import sys

        def test_nothing_heavy_loaded():
            heavy = {"pytest_p3monitor.session", "sqlite3", "psutil", "docker", "psycopg",
                     "prometheus_client", "requests"}
            assert not heavy & set(sys.modules), heavy & set(sys.modules)
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-p", "no:xdist")
    result.assert_outcomes(passed=1)


def test_enabled_from_ini(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\np3monitor = true\n")
    pytester.makepyfile(test_one="def test_one(): pass")
    pytester.runpytest().assert_outcomes(passed=1)
    assert list(results(pytester.path / DB)) == ["test_one.py::test_one"]


def test_store_folder_has_gitignore(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_one="def test_one(): pass")
    pytester.runpytest("--p3monitor")
    assert (pytester.path / ".p3monitor" / ".gitignore").read_text().splitlines()[-1] == "*"


def test_db_location_cli_beats_env_beats_ini(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester.makeini("[pytest]\np3monitor_db = from_ini.db\n")
    pytester.makepyfile(test_one="def test_one(): pass")
    pytester.runpytest("--p3monitor")
    assert (pytester.path / "from_ini.db").exists()
    monkeypatch.setenv("P3MONITOR_DB", str(pytester.path / "from_env.db"))
    pytester.runpytest("--p3monitor")
    assert (pytester.path / "from_env.db").exists()
    pytester.runpytest("--p3monitor", "--p3monitor-db", "from_cli.db")
    assert (pytester.path / "from_cli.db").exists()
    for name in ("from_ini.db", "from_env.db", "from_cli.db"):
        assert len(store_rows(pytester.path / name, "SELECT seq FROM p3m_runs")) == 1


def test_history_accumulates_across_runs(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_flip="def test_flip():\n    assert True\n")
    pytester.runpytest("--p3monitor", "--p3monitor-commit", "aaa")
    pytester.makepyfile(test_flip="def test_flip():\n    assert False\n")
    pytester.runpytest("--p3monitor", "--p3monitor-commit", "bbb")
    rows = store_rows(
        pytester.path / DB,
        "SELECT ru.commit_sha, r.outcome FROM p3m_results r JOIN p3m_runs ru ON ru.seq = r.run"
        " ORDER BY ru.seq",
    )
    assert rows == [("aaa", "passed"), ("bbb", "failed")]


def test_commit_and_branch_precedence(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester.makepyfile(test_one="def test_one(): pass")
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    monkeypatch.setenv("GITHUB_SHA", "ci-sha")
    monkeypatch.setenv("GITHUB_REF_NAME", "ci-branch")
    monkeypatch.setenv("GITHUB_RUN_ID", "77")
    monkeypatch.setenv("GITHUB_REPOSITORY", "o/r")
    pytester.runpytest("--p3monitor")
    monkeypatch.setenv("P3MONITOR_COMMIT", "env-sha")
    pytester.runpytest("--p3monitor")
    pytester.runpytest("--p3monitor", "--p3monitor-commit", "cli-sha", "--p3monitor-branch", "b")
    rows = store_rows(
        pytester.path / DB,
        "SELECT commit_sha, branch, ci_provider, ci_run_id, ci_url FROM p3m_runs ORDER BY seq",
    )
    url = "https://github.com/o/r/actions/runs/77"
    assert rows == [
        ("ci-sha", "ci-branch", "github-actions", "77", url),
        ("env-sha", "ci-branch", "github-actions", "77", url),
        ("cli-sha", "b", "github-actions", "77", url),
    ]


def test_terminal_summary(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_suite=SUITE)
    result = pytester.runpytest("--p3monitor", "-p", "no:randomly")
    result.stdout.fnmatch_lines(
        [
            "*- p3monitor -*",
            "run * 7 tests, success rate 50.0%, test execution *",
            "slowest: *",
            f"stored in *{DB}",
        ]
    )


def test_json_report_has_every_schema_key(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_suite=SUITE)
    result = pytester.runpytest("--p3monitor", "--p3monitor-json", "out/report.json")
    result.stdout.fnmatch_lines(["report written to *out/report.json"])
    report = json.loads((pytester.path / "out" / "report.json").read_text())
    assert report["schema"] == "p3monitor-report/1"
    top = {
        "schema", "timestamp", "run", "health_score", "health", "metrics", "tests", "flaky",
        "trends", "alerts", "recommendations",
    }  # fmt: skip
    assert top <= set(report)
    run_keys = {
        "id", "commit", "branch", "ci", "started_at", "finished_at", "hostname", "python",
        "pytest", "workers",
    }  # fmt: skip
    assert run_keys <= set(report["run"])
    assert set(report["run"]["ci"]) == {"provider", "run_id", "job", "url"}
    assert {"reliability", "performance", "efficiency", "user_satisfaction", "weights"} <= set(
        report["health"]
    )
    perf = report["metrics"]["performance"]
    assert {"total_time_s", "test_execution_time_s", "phases", "slowest"} <= set(perf)
    rel = report["metrics"]["reliability"]
    assert rel["tests"] == 7 and rel["failed"] == 1 and rel["errors"] == 2
    assert rel["success_rate"] == pytest.approx(50.0)
    assert "flaky_in_session" in rel
    res = report["metrics"]["resource_usage"]
    assert {"cpu_percent_peak", "cpu_percent_mean", "rss_bytes_peak", "memory_percent_peak"} <= set(
        res["process"]
    )
    assert isinstance(res["containers"], list)
    assert {"last_24h", "last_7d", "last_30d"} <= set(report["trends"])
    assert len(report["tests"]) == 7
    for entry in report["tests"]:
        assert {
            "nodeid", "outcome", "duration_s", "setup_s", "call_s", "teardown_s", "reruns",
            "worker",
        } <= set(entry)  # fmt: skip
    assert report["run"]["exit_status"] == 1


def test_json_report_path_from_ini_is_relative_to_ini(pytester: pytest.Pytester) -> None:
    pytester.mkdir("sub")
    pytester.makeini("[pytest]\np3monitor_json = reports/r.json\n")
    pytester.makepyfile(test_one="def test_one(): pass")
    os.chdir(pytester.path / "sub")
    pytester.runpytest("--p3monitor", str(pytester.path))
    assert (pytester.path / "reports" / "r.json").exists()


def test_reruns_are_counted_on_one_record(pytester: pytest.Pytester) -> None:
    pytest.importorskip("pytest_rerunfailures")
    pytester.makepyfile(
        test_rerun="""
        import pytest

        ATTEMPTS = []

        @pytest.mark.flaky(reruns=3)
        def test_passes_third_time():
            ATTEMPTS.append(1)
            assert len(ATTEMPTS) >= 3, f"attempt {len(ATTEMPTS)}"

        @pytest.mark.flaky(reruns=1)
        def test_always_fails():
            assert False, "always"
        """
    )
    result = pytester.runpytest("--p3monitor", "-p", "no:randomly")
    result.assert_outcomes(passed=1, failed=1)
    assert result.parseoutcomes()["rerun"] == 3
    got = results(pytester.path / DB)
    assert got["test_rerun.py::test_passes_third_time"][:2] == ("passed", 2)
    assert "attempt 2" in got["test_rerun.py::test_passes_third_time"][3]
    assert got["test_rerun.py::test_always_fails"][:2] == ("failed", 1)
    assert len(got) == 2


def test_subtests_never_duplicate_records(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_sub="""
        def test_some_fail(subtests):
            for i in range(4):
                with subtests.test(i=i):
                    assert i % 2 == 0, f"odd {i}"

        def test_all_pass(subtests):
            for i in range(3):
                with subtests.test(i=i):
                    pass
        """
    )
    pytester.runpytest("--p3monitor", "-p", "no:randomly")
    got = results(pytester.path / DB)
    assert len(got) == 2
    assert got["test_sub.py::test_some_fail"][0] == "failed"
    assert "odd 1" in got["test_sub.py::test_some_fail"][3]
    assert got["test_sub.py::test_all_pass"][0] == "passed"


XDIST_SUITE = """
import os, pytest

@pytest.mark.parametrize("i", range(20))
def test_many(i):
    assert os.environ.get("PYTEST_XDIST_WORKER", "").startswith("gw")

def test_fails():
    assert False

def test_worker_never_opens_store():
    assert not os.path.exists(os.path.join(os.environ["SPY_DIR"], "opened-by-worker"))
"""


def test_xdist_records_each_test_once_on_the_controller(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("xdist")
    monkeypatch.setenv("SPY_DIR", str(pytester.path))
    # When this suite itself runs under xdist, the inner controller must not look like a worker.
    monkeypatch.delenv("PYTEST_XDIST_WORKER", raising=False)
    pytester.makeconftest(
        """
        import os, pytest
        from pytest_p3monitor import store

        real = store.open_store

        def spy(*args, **kwargs):
            if os.environ.get("PYTEST_XDIST_WORKER"):
                open(os.path.join(os.environ["SPY_DIR"], "opened-by-worker"), "w").close()
            return real(*args, **kwargs)

        store.open_store = spy
        """
    )
    pytester.makepyfile(test_x=XDIST_SUITE)
    result = pytester.runpytest_subprocess("--p3monitor", "-n", "2")
    result.assert_outcomes(passed=21, failed=1)
    got = results(pytester.path / DB)
    assert len(got) == 22
    assert {v[2] for v in got.values()} == {"gw0", "gw1"}
    assert not (pytester.path / "opened-by-worker").exists()
    ((workers, tests),) = store_rows(pytester.path / DB, "SELECT workers, tests FROM p3m_runs")
    assert (workers, tests) == (2, 22)


def test_secrets_in_failure_messages_stay_out_of_the_report_and_store(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A failure message quoting a URL with a password, or the endpoint's token (from the
    environment variable the ini names): masked in the JSON report and the store."""
    monkeypatch.setenv("MY_API_TOKEN", "HeaderT0kenABC")
    pytester.makeini("[pytest]\np3monitor_endpoint_auth_env = MY_API_TOKEN\n")
    pytester.makepyfile(
        test_leak="""
        import os

        def test_leak():
            url = "http://ciuser:S3cretPassW0rd@db.internal/app"
            assert False, f"cannot reach {url} with " + os.environ["MY_API_TOKEN"]
        """
    )
    result = pytester.runpytest("--p3monitor", "--p3monitor-json=r.json")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    message = results(pytester.path / DB)["test_leak.py::test_leak"][3]
    assert "http://ciuser:***@db.internal/app" in message
    for text in (message, (pytester.path / "r.json").read_text()):
        assert "S3cretPassW0rd" not in text
        assert "HeaderT0kenABC" not in text
    store = (pytester.path / DB).read_bytes() + b"".join(
        p.read_bytes() for p in (pytester.path / ".p3monitor").glob("results.db-*")
    )
    assert b"S3cretPassW0rd" not in store
    assert b"HeaderT0kenABC" not in store


def test_exit_status_unchanged_when_everything_passes(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_one="def test_one(): pass")
    assert pytester.runpytest("--p3monitor").ret == pytest.ExitCode.OK


@pytest.mark.parametrize("option", ["--collect-only", "--setup-only", "--setup-plan"])
def test_a_session_that_runs_no_test_is_not_recorded(
    pytester: pytest.Pytester, option: str
) -> None:
    """Nothing ran: no run is stored, and no gate turns the exit status into 1."""
    pytester.makepyfile(test_one="def test_one(): pass")
    result = pytester.runpytest("--p3monitor", "--p3monitor-fail-on=passed < 1", option)
    assert result.ret == pytest.ExitCode.OK
    assert not (pytester.path / ".p3monitor").exists()
    result.stdout.no_fnmatch_line("*- p3monitor -*")  # no summary section


def test_no_tests_collected_keeps_exit_5(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest("--p3monitor")
    assert result.ret == pytest.ExitCode.NO_TESTS_COLLECTED
    assert store_rows(pytester.path / DB, "SELECT tests, exit_status FROM p3m_runs") == [(0, 5)]


def test_interrupted_session_is_stored_and_keeps_exit_status(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_int="""
        def test_first():
            pass

        def test_interrupt():
            raise KeyboardInterrupt

        def test_never():
            pass
        """
    )
    result = pytester.runpytest_subprocess("--p3monitor", "-p", "no:randomly")
    assert result.ret == pytest.ExitCode.INTERRUPTED
    rows = store_rows(pytester.path / DB, "SELECT tests, exit_status FROM p3m_runs")
    assert rows == [(1, 2)]
    # the test stopped in its call is no result (pytest counts it nowhere either)
    assert list(results(pytester.path / DB)) == ["test_int.py::test_first"]


@pytest.mark.parametrize("n", [None, "2"])
def test_a_test_that_stops_the_session_is_no_result(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, n: str | None
) -> None:
    """pytest.exit() in a test: the monitor counts what pytest counts (it once stored the
    stopped test as passed). Under xdist the controller gets the worker's going down as a
    crash of that test, which pytest counts as failed."""
    if n:
        pytest.importorskip("xdist")
        monkeypatch.delenv("PYTEST_XDIST_WORKER", raising=False)
    pytester.makepyfile(
        test_exit="""
        import pytest

        def test_first():
            pass

        def test_stop():
            pytest.exit("enough")

        def test_never():
            pass
        """
    )
    args = ["--p3monitor", "--p3monitor-json=r.json", "-p", "no:randomly"]
    if n:
        args += ["-n", n, "--dist", "loadfile"]  # one worker, in order
    result = pytester.runpytest_subprocess(*args)
    assert result.ret == pytest.ExitCode.INTERRUPTED
    counted = result.parseoutcomes()
    report = json.loads((pytester.path / "r.json").read_text())
    outcomes = {t["nodeid"]: t["outcome"] for t in report["tests"]}
    expected = {"test_exit.py::test_first": "passed"}
    if n:
        expected["test_exit.py::test_stop"] = "failed"
    assert outcomes == expected
    reliability = report["metrics"]["reliability"]
    assert (reliability["passed"], reliability["failed"]) == (
        counted.get("passed", 0),
        counted.get("failed", 0),
    )


CRASH_SUITE = """
import os, pathlib, pytest

@pytest.fixture
def crash_once():
    mark = pathlib.Path("crashed")
    if not mark.exists():
        mark.touch()
        os._exit(1)

def test_crashes_once(crash_once):
    pass

def test_other():
    pass
"""


def test_a_crashed_xdist_worker(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    """xdist's report of the test a worker died in: failed, as pytest counts it, and no
    time of its own (its 0 once made the run's test execution time 56 years, which a gate
    on it turned into a failed session). The worker xdist starts in the dead one's place
    is not one more worker."""
    pytest.importorskip("xdist")
    monkeypatch.delenv("PYTEST_XDIST_WORKER", raising=False)
    pytester.makepyfile(test_crash=CRASH_SUITE)
    gate = "--p3monitor-fail-on=test_execution_time > 180s"
    result = pytester.runpytest_subprocess("--p3monitor", gate, "-n", "2", "-p", "no:randomly")
    result.assert_outcomes(passed=1, failed=1)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    got = results(pytester.path / DB)
    assert got["test_crash.py::test_crashes_once"][0] == "failed"
    assert "crashed" in got["test_crash.py::test_crashes_once"][3]
    ((workers, elapsed),) = store_rows(
        pytester.path / DB, "SELECT workers, test_execution_time_s FROM p3m_runs"
    )
    assert workers == 2
    assert 0 <= elapsed < 60
    assert "gate failed" not in result.stdout.str()


def test_a_crash_rerun_keeps_the_exit_status(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The crash rerun by pytest-rerunfailures passes: exit 0, and a gate on the test
    execution time does not see the crash report's 0 as a time. (pytest-rerunfailures
    does not always learn of the crash in time to rerun it: then it fails, and the exit
    status is 1 with or without the monitor.)"""
    pytest.importorskip("xdist")
    pytest.importorskip("pytest_rerunfailures")
    monkeypatch.delenv("PYTEST_XDIST_WORKER", raising=False)
    pytester.makepyfile(test_crash=CRASH_SUITE)
    gate = "--p3monitor-fail-on=test_execution_time > 180s"
    result = pytester.runpytest_subprocess(
        "--p3monitor", gate, "-n", "2", "--reruns", "1", "-p", "no:randomly"
    )
    outcomes = result.parseoutcomes()
    rerun = outcomes.get("rerun", 0) == 1
    assert outcomes == ({"passed": 2, "rerun": 1} if rerun else {"passed": 1, "failed": 1})
    assert result.ret == (pytest.ExitCode.OK if rerun else pytest.ExitCode.TESTS_FAILED)
    assert "gate failed" not in result.stdout.str()
    got = results(pytester.path / DB)
    expected = ("passed", 1) if rerun else ("failed", 0)
    assert got["test_crash.py::test_crashes_once"][:2] == expected
    ((elapsed,),) = store_rows(pytester.path / DB, "SELECT test_execution_time_s FROM p3m_runs")
    assert 0 <= elapsed < 60


def test_reruns_count_attempts_when_the_teardown_fails_too(pytester: pytest.Pytester) -> None:
    """A failed call and a failed teardown in one attempt are two rerun reports: one rerun."""
    pytest.importorskip("pytest_rerunfailures")
    pytester.makepyfile(
        test_td="""
        import pytest

        @pytest.fixture
        def broken_teardown():
            yield
            raise RuntimeError("teardown broke")

        def test_both_fail(broken_teardown):
            assert False, "call broke"
        """
    )
    result = pytester.runpytest("--p3monitor", "--reruns", "2", "-p", "no:randomly")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    outcome, reruns, _, message = results(pytester.path / DB)["test_td.py::test_both_fail"]
    assert (outcome, reruns) == ("failed", 2)
    assert "call broke" in message


def test_subtests_with_reruns_count_on_their_test(pytester: pytest.Pytester) -> None:
    pytest.importorskip("pytest_rerunfailures")
    pytester.makepyfile(
        test_sub="""
        def test_mixed(subtests):
            for i in range(3):
                with subtests.test(i=i):
                    assert i != 1, f"subtest {i} broke"
        """
    )
    pytester.runpytest(
        "--p3monitor", "--p3monitor-json=r.json", "--reruns", "1", "-p", "no:randomly"
    )
    (entry,) = json.loads((pytester.path / "r.json").read_text())["tests"]
    assert (entry["outcome"], entry["reruns"], entry.get("subtests_failed")) == ("failed", 1, 1)
    assert "subtest 1 broke" in results(pytester.path / DB)["test_sub.py::test_mixed"][3]


def test_a_gate_that_fails_the_session_says_so_in_the_last_line(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_one="def test_one(): pass")
    result = pytester.runpytest("--p3monitor", "--p3monitor-fail-on", "tests > 0")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["*= 1 passed, 1 gate failed in *"])
    ok = pytester.runpytest("--p3monitor", "--p3monitor-fail-on", "tests > 5")
    assert ok.ret == pytest.ExitCode.OK
    ok.stdout.no_fnmatch_line("*gate failed*")
