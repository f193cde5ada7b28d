"""The PostgreSQL store: the store contract on both backends, many writers, and faults.

Runs against a real server that tests/pg_fixtures.py starts from the installed binaries
(scripts/postgres.sh); skipped on a dev machine without them, never under CI=true.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pytest_p3monitor.records import CIInfo, RunInfo, TestRecord
from pytest_p3monitor.store import (
    SchemaTooNew,
    Store,
    StoreCorrupt,
    StoreError,
    StoreUnavailable,
    open_store,
)
from pytest_p3monitor.store.schema import SCHEMA_VERSION
from pytest_p3monitor.store.sql import SQLStore
from pytest_p3monitor.trends import daily, run_peaks, summaries

if TYPE_CHECKING:
    from pg_fixtures import PostgresServer

pytest_plugins = ["pg_fixtures"]

needs_postgres = pytest.mark.needs_postgres


@pytest.fixture
def store(store_url: str) -> Iterator[SQLStore]:
    s = open_store(store_url)
    assert isinstance(s, SQLStore)
    yield s
    s.close()


def record(nodeid: str, outcome: str = "passed", **kw: Any) -> TestRecord:
    return TestRecord(nodeid=nodeid, outcome=outcome, **kw)  # type: ignore[arg-type]


def save(store: Store, run_id: str, started: float, outcomes: dict[str, str], **kw: Any) -> None:
    run = RunInfo(run_id=run_id, started_at=started, **kw)
    store.save_run(run, [record(n, o, call_s=1.0) for n, o in outcomes.items()], {"n": 1})


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


# -- the store contract, on both backends ---------------------------------------------------


def test_run_and_results_round_trip(store: SQLStore) -> None:
    run = RunInfo(
        run_id="r1",
        started_at=1000.5,
        commit="abc123",
        branch="main",
        ci=CIInfo("github", "77", "tests (3.11)", "https://ci/77"),
        hostname="runner-1",
        python="3.11.7",
        pytest="9.0",
        workers=2,
        finished_at=1010.25,
        exit_status=1,
    )
    tests = [
        record(
            "t.py::test_a",
            "passed",
            file="t.py",
            line=3,
            setup_s=0.5,
            call_s=1.5,
            teardown_s=0.25,
            start=1001.0,
            stop=1003.25,
            worker="gw0",
            # the meter's figures have columns; the others go in the figures JSON
            figures={
                "cpu_time_s": 0.25,
                "rss_peak_bytes": 48_000_000,
                "read_chars": 12,
                "container.db.cpu_percent_peak": 12.5,
                "flag": True,
            },
        ),
        record("t.py::test_b[ü-€]", "failed", reruns=2, message="assert 1 == 2 ✗", worker="gw1"),
        record("t.py::test_c", "skipped"),
    ]
    store.save_run(run, tests, {"health_score": 81.5, "nested": {"a": [1, 2]}})
    (row,) = store.recent_runs()
    assert row.run == run
    assert (row.tests, row.passed, row.failed, row.skipped, row.reruns) == (3, 1, 1, 1, 2)
    assert row.metrics == {"health_score": 81.5, "nested": {"a": [1, 2]}}
    assert row.test_execution_time_s == pytest.approx(2.25)
    assert store.run_tests(row.run_seq) == sorted(tests, key=lambda t: t.nodeid)
    (hist,) = store.test_history("t.py::test_b[ü-€]")
    assert (hist.run_id, hist.commit, hist.branch, hist.outcome, hist.reruns) == (
        "r1",
        "abc123",
        "main",
        "failed",
        2,
    )
    assert hist.message == "assert 1 == 2 ✗"


def test_save_is_idempotent_per_run_id(store: SQLStore) -> None:
    save(store, "r1", 1000.0, {"a": "passed", "b": "failed"})
    save(store, "r1", 1000.0, {"a": "passed", "b": "failed", "c": "passed"})
    (row,) = store.recent_runs()
    assert (row.tests, row.failed) == (2, 1)
    assert store.run_ids() == {"r1"}


def test_empty_run_is_stored(store: SQLStore) -> None:
    store.save_run(RunInfo(run_id="empty", started_at=5.0), [], {})
    (row,) = store.recent_runs()
    assert (row.run.run_id, row.tests, row.success_rate) == ("empty", 0, None)
    assert store.run_tests(row.run_seq) == []


def test_histories_window_branch_and_nodeids(store: SQLStore) -> None:
    for i in range(6):
        outcomes = {"a": "passed", "b": "failed" if i % 2 else "passed"}
        if i >= 4:
            outcomes["new"] = "passed"
        save(store, f"r{i}", 1000.0 + i, outcomes, branch="main" if i % 2 else "dev")
    got = {n: [r.run_id for r in rows] for n, rows in store.histories(window=3)}
    assert got == {"a": ["r3", "r4", "r5"], "b": ["r3", "r4", "r5"], "new": ["r4", "r5"]}
    main = {n: [r.run_id for r in rows] for n, rows in store.histories(window=2, branch="main")}
    assert main == {"a": ["r3", "r5"], "b": ["r3", "r5"], "new": ["r5"]}
    only = dict(store.histories(window=2, nodeids=["b", "missing"]))
    assert [r.outcome for r in only["b"]] == ["passed", "failed"]
    assert "missing" not in only
    assert [r.run_id for r in store.test_history("b", limit=2, branch="dev")] == ["r2", "r4"]


def test_failing_histories_are_the_histories_with_a_failure_or_rerun(store: SQLStore) -> None:
    for i in range(8):
        outcomes = {"ok": "passed", "flip": "failed" if i % 3 == 0 else "passed"}
        outcomes["late"] = "error" if i == 7 else "passed"
        outcomes["early"] = "failed" if i == 0 else "passed"
        run = RunInfo(run_id=f"r{i}", started_at=1000.0 + i, branch="main" if i % 2 else "dev")
        tests = [record(n, o) for n, o in outcomes.items()]
        tests.append(record("rerun", "passed", reruns=1 if i == 5 else 0))
        store.save_run(run, tests, {})
    for window, branch in [(100, None), (5, None), (2, None), (3, "main"), (3, "dev"), (1, "x")]:
        expected = list(Store.failing_histories(store, window, branch))  # the generic way
        assert list(store.failing_histories(window, branch)) == expected, (window, branch)
    assert [n for n, _ in store.failing_histories(5)] == ["flip", "late", "rerun"]


def test_histories_can_stop_early_and_the_store_goes_on(store: SQLStore) -> None:
    for i in range(3):
        save(store, f"r{i}", 1000.0 + i, {f"t{j}": "passed" for j in range(50)})
    stream = store.histories(window=10)
    next(stream)
    stream.close()  # a reader that stops early (e.g. `| head`)
    save(store, "r3", 1003.0, {"t0": "failed"})
    assert store.recent_runs(limit=1)[0].run.run_id == "r3"


@pytest.mark.parametrize("stream", ["histories", "failing_histories"])
def test_an_abandoned_stream_never_holds_back_a_save(
    store: SQLStore, store_url: str, stream: str
) -> None:
    for i in range(3):
        save(store, f"r{i}", 1000.0 + i, {f"t{j}": "failed" for j in range(30)})
    reader = getattr(store, stream)(10)
    next(reader)  # a reader that stopped half-way, and is still around
    save(store, "new", 1003.0, {"t0": "passed"})
    other = open_store(store_url, create=False)
    assert isinstance(other, SQLStore)
    try:
        assert "new" in other.run_ids()  # committed, seen from another connection
    finally:
        other.close()
    reader.close()
    assert "new" in store.run_ids()


def test_prune_deletes_old_runs_their_results_and_orphan_tests(store: SQLStore) -> None:
    for i in range(4):
        save(store, f"r{i}", 1000.0 + i, {"a": "passed", f"only{i}": "passed"})
    assert store.prune(older_than=1002.0) == 2
    assert [r.run.run_id for r in store.recent_runs()] == ["r3", "r2"]
    assert dict(store.histories(nodeids=["only0", "only1"])) == {}
    assert [r.run_id for r in store.test_history("a")] == ["r2", "r3"]
    assert store.prune(older_than=0) == 0
    save(store, "r9", 1009.0, {"only0": "failed"})  # a pruned test may come back
    assert [r.outcome for r in store.test_history("only0")] == ["failed"]


def test_runs_after_pages_oldest_first(store: SQLStore) -> None:
    for i in range(5):
        save(store, f"r{i}", 1000.0 + i, {"a": "passed"})
    first = store.runs_after(0, 2)
    assert [r.run.run_id for r in first] == ["r0", "r1"]
    rest = store.runs_after(first[-1].run_seq, 10)
    assert [r.run.run_id for r in rest] == ["r2", "r3", "r4"]
    assert store.runs_after(rest[-1].run_seq, 10) == []


def test_texts_with_nul_characters_are_stored(store: SQLStore) -> None:
    tests = [
        record("t.py::test_nul", "failed", message="got b'\x00\x01' back"),
        record("t.py::test_other", "failed", message="bad \x00 bytes"),
    ]
    store.save_run(RunInfo(run_id="odd", started_at=1.0, branch="x\x00y"), tests, {})
    (row,) = store.recent_runs()
    assert row.tests == 2
    messages = sorted(t.message or "" for t in store.run_tests(row.run_seq))
    assert messages[0].startswith("bad ") and messages[1].startswith("got b'")


def test_a_node_id_is_looked_up_as_it_was_stored(store: SQLStore) -> None:
    """A file name that is not UTF-8 gives a node id with a lone surrogate: it is stored
    cleaned, and found again by the id pytest gives (not a UnicodeEncodeError)."""
    odd = "test_\udcff.py::test_flip"
    for i, outcome in enumerate(["passed", "failed", "passed"]):
        save(store, f"r{i}", float(i), {odd: outcome, "t.py::test_a": "passed"})
    assert [r.outcome for r in store.test_history(odd)] == ["passed", "failed", "passed"]
    found = dict(store.histories(nodeids=[odd, "t.py::test_a", "t.py::missing"]))
    assert sorted(found) == sorted([odd, "t.py::test_a"])
    assert len(found[odd]) == 3


def test_save_10k_run_is_fast(store: SQLStore) -> None:
    """A guard against a slip into per-test round trips, not the benchmark (benchmarks/)."""
    tests = [
        record(f"tests/test_{i // 100}.py::test_{i}", "passed", call_s=0.01, figures={"x": 1.0})
        for i in range(10_000)
    ]
    store.save_run(RunInfo(run_id="warm", started_at=1.0), tests, {})
    t0 = time.perf_counter()
    store.save_run(RunInfo(run_id="big", started_at=2.0), tests, {})
    assert time.perf_counter() - t0 < 3
    assert store.recent_runs()[0].tests == 10_000
    assert len(store.run_tests(store.recent_runs()[0].run_seq)) == 10_000


# -- PostgreSQL: schema, faults and messages ------------------------------------------------


@needs_postgres
def test_lone_surrogates_are_stored_replaced(postgres_url: str) -> None:
    store = open_store(postgres_url)
    assert isinstance(store, SQLStore)
    tests = [record("t.py::test_\udcff", "failed", message="bad \udcff bytes")]
    store.save_run(RunInfo(run_id="odd", started_at=1.0), tests, {})
    (got,) = store.run_tests(store.recent_runs()[0].run_seq)
    assert (got.nodeid, got.message) == ("t.py::test_?", "bad ? bytes")
    store.close()


@needs_postgres
def test_new_database_gets_the_schema(postgres_url: str) -> None:
    import psycopg

    open_store(postgres_url).close()
    with psycopg.connect(postgres_url) as conn:
        version = conn.execute("SELECT value FROM p3m_meta WHERE key = 'schema_version'")
        assert version.fetchone() == (str(SCHEMA_VERSION),)
        indexes = {r[0] for r in conn.execute("SELECT indexname FROM pg_indexes")}
    assert {"p3m_runs_started", "p3m_runs_branch", "p3m_results_test"} <= indexes


@needs_postgres
def test_read_only_open_never_creates(postgres_url: str) -> None:
    import psycopg

    with pytest.raises(StoreUnavailable, match="no results store in"):
        open_store(postgres_url, create=False)
    with psycopg.connect(postgres_url) as conn:
        assert conn.execute("SELECT to_regclass('p3m_meta')").fetchone() == (None,)


@needs_postgres
def test_schema_newer_than_the_code_is_left_alone(postgres_url: str) -> None:
    import psycopg

    open_store(postgres_url).close()
    with psycopg.connect(postgres_url) as conn:
        conn.execute("UPDATE p3m_meta SET value = %s", (str(SCHEMA_VERSION + 1),))
    with pytest.raises(SchemaTooNew, match="newer than this pytest-p3monitor"):
        open_store(postgres_url)
    with psycopg.connect(postgres_url) as conn:
        assert conn.execute("SELECT value FROM p3m_meta").fetchone() == (str(SCHEMA_VERSION + 1),)


@needs_postgres
def test_schema_version_that_is_not_a_number_is_left_alone(postgres_url: str) -> None:
    import psycopg

    open_store(postgres_url).close()
    with psycopg.connect(postgres_url) as conn:
        conn.execute("UPDATE p3m_meta SET value = 'abc' WHERE key = 'schema_version'")
    for create in (True, False):
        with pytest.raises(StoreCorrupt, match=r"schema version 'abc'.*not a version number"):
            open_store(postgres_url, create=create)
    with psycopg.connect(postgres_url) as conn:
        assert conn.execute("SELECT value FROM p3m_meta").fetchone() == ("abc",)


@needs_postgres
def test_tables_of_another_application_are_left_alone(postgres_url: str) -> None:
    import psycopg

    with psycopg.connect(postgres_url) as conn:
        conn.execute("CREATE TABLE p3m_runs (x int)")
    with pytest.raises(StoreCorrupt, match="not a pytest-p3monitor store"):
        open_store(postgres_url)


@needs_postgres
def test_unreachable_server_fails_fast_without_the_password() -> None:
    url = f"postgresql://me:s3cr%40t-pw@127.0.0.1:{free_port()}/db"
    t0 = time.monotonic()
    with pytest.raises(StoreUnavailable, match="cannot reach the PostgreSQL results store") as e:
        open_store(url)
    assert time.monotonic() - t0 < 5
    assert "s3cr" not in str(e.value)
    assert "me:***@127.0.0.1" in str(e.value)


@needs_postgres
def test_wrong_password_is_one_clear_error(postgres_server: PostgresServer) -> None:
    url = postgres_server.url_for("postgres", postgres_server.auth_role, "not-the-password")
    with pytest.raises(StoreUnavailable, match="refused the login") as e:
        open_store(url)
    assert "not-the-password" not in str(e.value)
    assert "\n" not in str(e.value)


@needs_postgres
def test_bad_url_is_a_clear_error() -> None:
    with pytest.raises(StoreUnavailable, match="PostgreSQL results store") as e:
        open_store("postgresql://me:pw-xyz@127.0.0.1:notaport/db")
    assert "pw-xyz" not in str(e.value)


@needs_postgres
def test_server_restart_between_open_and_save_costs_a_reconnect(
    postgres_server: PostgresServer, postgres_url: str
) -> None:
    store = open_store(postgres_url)
    save(store, "before", 1.0, {"a": "passed"})
    postgres_server.stop()
    postgres_server.start()
    save(store, "after", 2.0, {"a": "failed"})
    assert [r.run.run_id for r in store.recent_runs()] == ["after", "before"]
    store.close()


@needs_postgres
def test_server_down_at_save_is_a_store_error(
    postgres_server: PostgresServer, postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pytest_p3monitor.store import postgres

    monkeypatch.setattr(postgres, "RECONNECT_WINDOW_S", 0.5)
    store = open_store(postgres_url)
    postgres_server.stop()
    try:
        with pytest.raises(StoreUnavailable, match="cannot reach"):
            save(store, "lost", 1.0, {"a": "passed"})
    finally:
        postgres_server.start()
    save(store, "lost", 1.0, {"a": "passed"})  # the same run, once the server is back
    assert [r.run.run_id for r in store.recent_runs()] == ["lost"]
    store.close()


@needs_postgres
def test_deadlock_or_lost_race_is_retried(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from psycopg import errors

    store = open_store(postgres_url)
    real = store._save_once  # type: ignore[attr-defined]
    calls: list[int] = []

    def first_time_deadlocked(*args: Any) -> None:
        calls.append(1)
        if len(calls) == 1:
            raise errors.DeadlockDetected("deadlock detected")
        real(*args)

    monkeypatch.setattr(store, "_save_once", first_time_deadlocked)
    save(store, "r1", 1.0, {"a": "passed"})
    assert len(calls) == 2
    assert [r.run.run_id for r in store.recent_runs()] == ["r1"]

    def always_deadlocked(*args: Any) -> None:
        raise errors.DeadlockDetected("deadlock detected")

    monkeypatch.setattr(store, "_save_once", always_deadlocked)
    with pytest.raises(StoreError, match="deadlock detected"):
        save(store, "r2", 2.0, {"a": "passed"})
    store.close()


# -- PostgreSQL: many sessions at once ------------------------------------------------------

WRITER = textwrap.dedent(
    """
    import sys, time, uuid
    from pytest_p3monitor.records import RunInfo, TestRecord
    from pytest_p3monitor.store import open_store

    url, me, runs = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    t0 = time.perf_counter()
    store = open_store(url)   # every writer races to migrate the fresh database
    opened = time.perf_counter() - t0
    slowest = 0.0
    for k in range(runs):
        # shared node ids (the same suite in every job) and a few of this job's own
        tests = [TestRecord(nodeid=f"t.py::test_{i}", outcome="passed", call_s=0.01)
                 for i in range(1000)]
        tests += [TestRecord(nodeid=f"job{me}.py::test_{i}", outcome="failed")
                  for i in range(20 + k)]
        t = time.perf_counter()
        store.save_run(RunInfo(run_id=uuid.uuid4().hex, started_at=time.time()), tests, {})
        slowest = max(slowest, time.perf_counter() - t)
    print(f"{opened:.3f} {slowest:.3f}", flush=True)
    """
)


@needs_postgres
def test_sixteen_writers_at_once_on_a_fresh_database(postgres_url: str, tmp_path: Path) -> None:
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    procs = [
        subprocess.Popen(
            [sys.executable, str(script), postgres_url, str(i), "3"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(16)
    ]
    outs = [p.communicate(timeout=300) for p in procs]
    for p, (_out, err) in zip(procs, outs, strict=True):
        assert p.returncode == 0, err
    waits = [tuple(map(float, out.split())) for out, _ in outs]
    # bounded: nobody waited anywhere near the lock timeout, on a 2-core machine
    assert max(w for pair in waits for w in pair) < 30, waits
    store = open_store(postgres_url)
    assert isinstance(store, SQLStore)
    rows = store.recent_runs(limit=100)
    assert len(rows) == 48
    assert sorted(r.tests for r in rows) == sorted(1020 + k for _ in range(16) for k in range(3))
    assert len(store.test_history("t.py::test_7", limit=100)) == 48
    store.close()


SUITE = """
import pytest

@pytest.mark.parametrize("i", range(40))
def test_i(i):
    pass

def test_bad():
    assert False
"""


@needs_postgres
def test_sixteen_pytest_sessions_at_once_all_land(
    pytester: pytest.Pytester, postgres_url: str
) -> None:
    """16 CI jobs finishing together against one fresh database: every run lands."""
    pytester.makepyfile(test_many=SUITE)
    env = dict(os.environ, P3MONITOR_DB=postgres_url)
    env.pop("CI", None)
    started = time.monotonic()
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "pytest", "--p3monitor", "-q", "-p", "no:cacheprovider"],
            cwd=pytester.path,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for _ in range(16)
    ]
    outputs = [p.communicate(timeout=600)[0] for p in procs]
    for p, out in zip(procs, outputs, strict=True):
        assert p.returncode == 1, out  # the one failing test, exactly as pytest alone
        assert "Warning" not in out, out
    assert time.monotonic() - started < 300
    store = open_store(postgres_url)
    rows = store.recent_runs(limit=100)
    store.close()
    assert len(rows) == 16
    assert {(r.tests, r.failed) for r in rows} == {(41, 1)}
    assert not (pytester.path / ".p3monitor" / "outbox" / "runs").exists() or not any(
        (pytester.path / ".p3monitor" / "outbox" / "runs").iterdir()
    )


# -- PostgreSQL faults seen from a pytest session -------------------------------------------

FAULT_SUITE = """
def test_ok():
    pass

def test_bad():
    assert False
"""


def run_session(pytester: pytest.Pytester, url: str) -> pytest.RunResult:
    pytester.makepyfile(test_suite=FAULT_SUITE)
    result = pytester.runpytest("--p3monitor", f"--p3monitor-db={url}")
    result.assert_outcomes(passed=1, failed=1)
    assert result.ret == pytest.ExitCode.TESTS_FAILED  # what pytest alone gives
    return result


def kept_runs(pytester: pytest.Pytester) -> list[Path]:
    return sorted((pytester.path / ".p3monitor" / "outbox" / "runs").glob("*.json"))


def assert_one_store_warning(result: pytest.RunResult, needle: str, secret: str) -> None:
    text = result.stdout.str() + result.stderr.str()
    assert secret not in text
    assert text.count("results store not used") + text.count("run not stored") == 1, text
    assert needle in text


@needs_postgres
def test_session_with_wrong_password_keeps_the_run_then_the_next_session_stores_it(
    pytester: pytest.Pytester, postgres_server: PostgresServer, postgres_url: str
) -> None:
    dbname = postgres_url.rsplit("/", 1)[1]
    wrong = "wrong-" + postgres_server.auth_password
    result = run_session(
        pytester, postgres_server.url_for(dbname, postgres_server.auth_role, wrong)
    )
    assert_one_store_warning(result, "refused the login", wrong)
    assert "***" in result.stdout.str()
    (kept,) = kept_runs(pytester)
    result = run_session(pytester, postgres_url)
    result.stdout.no_fnmatch_line("*StoreWarning*")
    assert kept_runs(pytester) == []
    store = open_store(postgres_url)
    assert kept.stem in {r.run.run_id for r in store.recent_runs()}
    assert len(store.recent_runs()) == 2
    store.close()


@needs_postgres
def test_session_with_server_unreachable(pytester: pytest.Pytester) -> None:
    url = f"postgresql://ci:hunter2-pw@127.0.0.1:{free_port()}/results"
    result = run_session(pytester, url)
    assert_one_store_warning(result, "cannot reach the PostgreSQL results store", "hunter2")
    assert len(kept_runs(pytester)) == 1


@needs_postgres
def test_session_with_schema_newer_than_the_code(
    pytester: pytest.Pytester, postgres_url: str
) -> None:
    import psycopg

    open_store(postgres_url).close()
    with psycopg.connect(postgres_url) as conn:
        conn.execute("UPDATE p3m_meta SET value = %s", (str(SCHEMA_VERSION + 7),))
    result = run_session(pytester, postgres_url)
    assert_one_store_warning(result, "newer than this pytest-p3monitor", "\x00")
    assert len(kept_runs(pytester)) == 1
    with psycopg.connect(postgres_url) as conn:
        assert conn.execute("SELECT count(*) FROM p3m_runs").fetchone() == (0,)


@needs_postgres
def test_server_stopping_mid_session_keeps_the_run_until_it_is_back(
    pytester: pytest.Pytester, postgres_server: PostgresServer, postgres_url: str
) -> None:
    script = Path(__file__).resolve().parent.parent / "scripts" / "postgres.sh"
    pytester.makepyfile(
        test_suite=FAULT_SUITE
        + textwrap.dedent(
            f"""
            import subprocess
            def test_zz_server_goes_down():
                subprocess.run(["sh", {str(script)!r}, "stop", {str(postgres_server.folder)!r}],
                               check=True)
            """
        )
    )
    try:
        result = pytester.runpytest("--p3monitor", f"--p3monitor-db={postgres_url}")
    finally:
        postgres_server.start()
    result.assert_outcomes(passed=2, failed=1)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    assert_one_store_warning(result, "cannot reach the PostgreSQL results store", "\x00")
    assert len(kept_runs(pytester)) == 1
    pytester.makepyfile(test_suite=FAULT_SUITE)
    run_session(pytester, postgres_url).stdout.no_fnmatch_line("*StoreWarning*")
    assert kept_runs(pytester) == []
    store = open_store(postgres_url)
    assert sorted(r.tests for r in store.recent_runs()) == [2, 3]
    store.close()


@needs_postgres
def test_export_flush_stores_a_kept_run_once_the_server_is_back(
    pytester: pytest.Pytester,
    postgres_server: PostgresServer,
    postgres_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from pytest_p3monitor.cli import main

    postgres_server.stop()
    try:
        run_session(pytester, postgres_url)
    finally:
        postgres_server.start()
    (kept,) = kept_runs(pytester)
    monkeypatch.chdir(pytester.path)
    assert main(["export", "--flush", "--db", postgres_url]) == 0
    assert kept_runs(pytester) == []
    store = open_store(postgres_url, create=False)
    assert isinstance(store, SQLStore)
    (row,) = store.recent_runs()
    assert row.run.run_id == kept.stem
    assert sorted((t.nodeid, t.outcome) for t in store.run_tests(row.run_seq)) == [
        ("test_suite.py::test_bad", "failed"),
        ("test_suite.py::test_ok", "passed"),
    ]
    store.close()


# -- properties -----------------------------------------------------------------------------


@given(st.text())
def test_text_sanitizing_keeps_every_text_postgresql_accepts(value: str) -> None:
    from pytest_p3monitor.store.postgres import _text

    out = _text(value)
    assert out is not None
    assert "\x00" not in out
    out.encode("utf-8")  # never raises
    if "\x00" not in value and value.isascii():
        assert out == value
    assert len(out) == len(value)  # one character for one: NUL and lone surrogates replaced


@given(
    user=st.from_regex(r"[a-z][a-z0-9_]{0,8}", fullmatch=True),
    password=st.text(
        alphabet=st.characters(min_codepoint=33, max_codepoint=126, exclude_characters="@/:?#%"),
        min_size=4,
    ),
)
def test_error_messages_never_hold_the_password(user: str, password: str) -> None:
    from pytest_p3monitor.store.postgres import PostgresStore

    url = f"postgresql://{user}:{password}@127.0.0.1:5/db"
    secrets = PostgresStore._secrets_of(url)
    store = PostgresStore.__new__(PostgresStore)
    store._secrets = secrets
    assert password not in store._scrub(f"failed for {user} with {password}!")


@needs_postgres
@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    messages=st.lists(st.one_of(st.none(), st.text(max_size=50)), min_size=1, max_size=5),
    nodeid=st.text(min_size=1, max_size=30),
)
def test_any_text_round_trips_as_postgresql_can_hold_it(
    postgres_url: str, messages: list[str | None], nodeid: str
) -> None:
    from pytest_p3monitor.store.postgres import _text

    store = open_store(postgres_url)
    assert isinstance(store, SQLStore)
    try:
        run_id = f"r{time.monotonic_ns()}"
        tests = [record(f"{nodeid}{i}", "failed", message=m) for i, m in enumerate(messages)]
        store.save_run(RunInfo(run_id=run_id, started_at=1.0), tests, {})
        seq = next(r.run_seq for r in store.recent_runs(limit=1000) if r.run.run_id == run_id)
        got = {t.nodeid: t.message for t in store.run_tests(seq)}
        assert got == {_text(t.nodeid): _text(t.message) for t in tests}
    finally:
        store.close()


def peaks(memory: Any, rss: Any, **other: Any) -> dict[str, Any]:
    """A run's metrics with the test processes' peaks (as the resources feature stores them)."""
    process = {"memory_percent_peak": memory, "rss_bytes_peak": rss, "samples": 3, **other}
    return {"health_score": 80, "metrics": {"resource_usage": {"process": process}}}


#: The metrics of the trend runs: sampled, unsampled, without the peaks, bogus peaks...
TREND_METRICS: list[dict[str, Any]] = [
    peaks(12.5, 1_048_576, cpu_percent_peak=99.0),
    {"health_score": 90, "metrics": {"resource_usage": None}},  # not sampled
    {"metrics": {"resource_usage": {"process": {"samples": 0}}}},  # no peaks
    peaks("high", True),  # not numbers: no peaks for the trends
    peaks(None, 2.5e9),  # only the RSS
    peaks(0.1 + 0.2, 77_320_192),  # a float that must come back to the last digit
    {"metrics": {"resource_usage": {"process": [1, 2]}}},  # not a mapping
    {},
]


def save_trend_runs(store: Store, metrics: list[dict[str, Any]]) -> None:
    outcomes = [{"a": "passed", "b": "failed"}, {"a": "passed", "b": "skipped"}, {"a": "error"}]
    for i, figures in enumerate(metrics):
        run = RunInfo(run_id=f"r{i}", started_at=1000.0 + 3600 * i, branch=("main", "dev")[i % 2])
        tests = [record(n, o, call_s=0.5 + i) for n, o in outcomes[i % 3].items()]
        store.save_run(run, tests, figures)


def test_trend_runs_are_the_recent_runs_with_only_their_peaks(
    store: SQLStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    save_trend_runs(store, TREND_METRICS)

    def parsing_every_run(*args: Any) -> None:
        raise AssertionError("the database should have picked the peaks")

    monkeypatch.setattr(Store, "trend_runs", parsing_every_run)
    now = 1000.0 + 3600 * len(TREND_METRICS)
    for kw in [{"since": 1000.0}, {"since": 1000.0 + 3600 * 3, "branch": "main"}, {"limit": 3}]:
        args: dict[str, Any] = {"limit": 50, **kw}
        full, slim = store.recent_runs(**args), store.trend_runs(**args)
        assert [r._replace(metrics={}) for r in slim] == [r._replace(metrics={}) for r in full]
        assert [run_peaks(r) for r in slim] == [run_peaks(r) for r in full]
        assert summaries(slim, now) == summaries(full, now)
        assert daily(slim, now) == daily(full, now)
    by_id = {r.run.run_id: r for r in store.trend_runs()}
    process = {"memory_percent_peak": 12.5, "rss_bytes_peak": 1_048_576}
    assert by_id["r0"].metrics == {"metrics": {"resource_usage": {"process": process}}}
    assert [run_peaks(by_id[f"r{i}"]) for i in range(len(TREND_METRICS))] == [
        (12.5, 1_048_576.0),
        (None, None),
        (None, None),
        (None, None),  # "high" and true are not numbers
        (None, 2.5e9),
        (0.1 + 0.2, 77_320_192.0),
        (None, None),
        (None, None),
    ]
    assert [by_id[f"r{i}"].metrics for i in (1, 2, 6, 7)] == [{}, {}, {}, {}]


def test_trend_runs_read_metrics_the_database_cannot(store: SQLStore) -> None:
    """Metrics the database does not read as JSON (Python's Infinity or NaN, a damaged
    text) are parsed in Python, as recent_runs does: same peaks, no error."""
    save_trend_runs(store, [*TREND_METRICS, peaks(float("inf"), 10)])
    cur = store.conn.cursor()
    cur.execute(store.q("UPDATE p3m_runs SET metrics = ? WHERE run_id = 'r1'"), ("{not json",))
    cur.execute(
        store.q("UPDATE p3m_runs SET metrics = ? WHERE run_id = 'r2'"),
        ('{"x": NaN, "metrics": {"resource_usage": {"process": {"memory_percent_peak": 7}}}}',),
    )
    full, slim = store.recent_runs(limit=50), store.trend_runs(limit=50)
    assert [r._replace(metrics={}) for r in slim] == [r._replace(metrics={}) for r in full]
    assert [run_peaks(r) for r in slim] == [run_peaks(r) for r in full]
    by_id = {r.run.run_id: r for r in slim}
    assert run_peaks(by_id["r2"]) == (7.0, None)
    assert run_peaks(by_id["r8"]) == (None, 10.0)  # Infinity is not a finite number
    assert by_id["r1"].metrics == {}
