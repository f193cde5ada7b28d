"""A store that can't be used never costs the user a test result, an exit code or a file."""

from __future__ import annotations

import hashlib
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from pytest_p3monitor.store.schema import SCHEMA_VERSION

from conftest import store_rows

SUITE = """
def test_ok():
    pass

def test_bad():
    assert False
"""


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def run_with_store(pytester: pytest.Pytester, db: Path) -> pytest.RunResult:
    pytester.makepyfile(test_suite=SUITE)
    result = pytester.runpytest("--p3monitor", "--p3monitor-db", str(db))
    result.assert_outcomes(passed=1, failed=1)
    assert result.ret == pytest.ExitCode.TESTS_FAILED  # exactly what pytest alone gives
    return result


def kept_runs(pytester: pytest.Pytester) -> list[Path]:
    return sorted((pytester.path / ".p3monitor" / "outbox" / "runs").glob("*.json"))


def assert_one_warning(result: pytest.RunResult, *needles: str) -> None:
    lines = [ln for ln in result.outlines if "StoreWarning" in ln]
    assert lines, result.stdout.str()
    text = result.stdout.str()
    for needle in needles:
        assert needle in text


def test_file_that_is_not_a_database(pytester: pytest.Pytester) -> None:
    db = pytester.path / "results.db"
    db.write_bytes(b"my precious notes, not a database\n" * 100)
    before = digest(db)
    result = run_with_store(pytester, db)
    assert_one_warning(result, "is not a SQLite database", str(db))
    assert digest(db) == before
    assert len(kept_runs(pytester)) == 1


def test_damaged_database(pytester: pytest.Pytester) -> None:
    db = pytester.path / "results.db"
    conn = sqlite3.connect(db)
    conn.execute("CREATE TABLE p3m_meta (key TEXT PRIMARY KEY, value TEXT)")
    conn.commit()
    conn.close()
    data = bytearray(db.read_bytes())
    data[100:] = b"\xff" * (len(data) - 100)  # keep the header, wreck the pages
    db.write_bytes(bytes(data))
    before = digest(db)
    result = run_with_store(pytester, db)
    assert_one_warning(result, str(db))
    assert digest(db) == before
    assert len(kept_runs(pytester)) == 1


def test_database_of_another_application(pytester: pytest.Pytester) -> None:
    db = pytester.path / "app.db"
    conn = sqlite3.connect(db)
    conn.execute("CREATE TABLE customers (id INTEGER PRIMARY KEY)")
    conn.commit()
    conn.close()
    before = digest(db)
    result = run_with_store(pytester, db)
    assert_one_warning(result, "not a pytest-p3monitor store")
    assert digest(db) == before


def test_store_from_a_newer_schema(pytester: pytest.Pytester) -> None:
    db = pytester.path / "results.db"
    run_with_store(pytester, db)
    conn = sqlite3.connect(db)
    conn.execute(
        "UPDATE p3m_meta SET value = ? WHERE key = 'schema_version'", (SCHEMA_VERSION + 1,)
    )
    conn.commit()
    conn.close()
    before = digest(db)
    result = run_with_store(pytester, db)
    assert_one_warning(result, "newer than this pytest-p3monitor", "Upgrade pytest-p3monitor")
    assert digest(db) == before


def test_path_that_cannot_be_written(pytester: pytest.Pytester) -> None:
    blocker = pytester.path / "a-file"
    blocker.write_text("in the way")
    result = run_with_store(pytester, blocker / "results.db")
    assert_one_warning(result, "cannot create the folder of the results store")
    assert blocker.read_text() == "in the way"
    assert len(kept_runs(pytester)) == 1


def test_store_is_closed_whole_when_pytest_returns(pytester: pytest.Pytester) -> None:
    """The store's last close copies the run from the write-ahead log into the file: none
    is left beside it, so the file alone (a CI cache, an artifact) holds every run."""
    db = pytester.path / "results.db"
    run_with_store(pytester, db)
    assert not Path(f"{db}-wal").exists()
    assert len(store_rows(db, "SELECT * FROM p3m_results")) == 2


def test_a_failing_close_is_one_warning(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pytest_p3monitor.store.sqlite import SQLiteStore

    def broken_close(self: SQLiteStore) -> None:
        self.conn.close()
        raise sqlite3.OperationalError("disk I/O error")

    monkeypatch.setattr(SQLiteStore, "close", broken_close)
    db = pytester.path / "results.db"
    result = run_with_store(pytester, db)  # outcomes and exit code as pytest alone
    assert_one_warning(result, "closing the results store failed", "disk I/O error")
    assert len(store_rows(db, "SELECT * FROM p3m_results")) == 2


def test_kept_run_is_stored_by_the_next_session(pytester: pytest.Pytester) -> None:
    db = pytester.path / "results.db"
    db.write_bytes(b"not yet a database")
    run_with_store(pytester, db)
    (kept,) = kept_runs(pytester)
    db.unlink()  # the user moved the bad file away
    result = run_with_store(pytester, db)
    result.stdout.no_fnmatch_line("*StoreWarning*")
    assert kept_runs(pytester) == []
    assert len(store_rows(db, "SELECT seq FROM p3m_runs")) == 2
    assert len(store_rows(db, "SELECT * FROM p3m_results")) == 4
    assert kept.stem in {r[0] for r in store_rows(db, "SELECT run_id FROM p3m_runs")}


WRITER = textwrap.dedent(
    """
    import sys, time, uuid
    from pytest_p3monitor.records import RunInfo, TestRecord
    from pytest_p3monitor.store.sqlite import SQLiteStore

    store = SQLiteStore(sys.argv[1])
    n = int(sys.argv[2])
    while True:
        tests = [TestRecord(nodeid=f"t.py::test_{i}", outcome="passed", call_s=0.01)
                 for i in range(n)]
        store.save_run(RunInfo(run_id=uuid.uuid4().hex, started_at=time.time()), tests, {})
        print("saved", flush=True)
    """
)


def test_kill_during_writes_never_damages_stored_runs(tmp_path: Path) -> None:
    db = tmp_path / "results.db"
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    for round_ in range(4):
        procs = [
            subprocess.Popen(
                [sys.executable, str(script), str(db), "3000"],
                stdout=subprocess.DEVNULL,
            )
            for _ in range(2)
        ]
        time.sleep(0.6 + 0.2 * round_)
        for p in procs:
            p.send_signal(signal.SIGKILL)
            p.wait()
    conn = sqlite3.connect(db)
    assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    runs = conn.execute(
        "SELECT ru.tests, count(r.test) FROM p3m_runs ru LEFT JOIN p3m_results r ON r.run = ru.seq"
        " GROUP BY ru.seq"
    ).fetchall()
    conn.close()
    assert runs, "no run was stored at all"
    assert all(tests == stored == 3000 for tests, stored in runs)


def test_parallel_sessions_on_one_store_all_land(pytester: pytest.Pytester) -> None:
    """Parallel CI jobs on one runner: every session's run lands, none is 'locked'."""
    pytester.makepyfile(
        test_many="""
        import pytest

        @pytest.mark.parametrize("i", range(300))
        def test_i(i):
            pass
        """
    )
    db = pytester.path / "shared.db"
    env = dict(os.environ, P3MONITOR_DB=str(db))
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "pytest", "--p3monitor", "-q", "-p", "no:cacheprovider"],
            cwd=pytester.path,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for _ in range(6)
    ]
    outputs = [p.communicate(timeout=300)[0] for p in procs]
    for p, out in zip(procs, outputs, strict=False):
        assert p.returncode == 0, out
        assert "Warning" not in out and "locked" not in out, out
    assert store_rows(db, "SELECT count(*), sum(tests) FROM p3m_runs") == [(6, 1800)]
    assert store_rows(db, "SELECT count(*) FROM p3m_results") == [(1800,)]
