"""A store that can't be used never costs the user a test result, an exit code or a file."""

from __future__ import annotations

import hashlib
import json
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


def assert_one_warning(result: pytest.RunResult, *needles: str) -> str:
    """Exactly one warning of the plugin, a StoreWarning holding every needle; its text."""
    lines = [ln for ln in result.outlines if "Warning: p3monitor" in ln]
    assert len(lines) == 1, result.stdout.str()
    assert "StoreWarning" in lines[0], result.stdout.str()
    text = result.stdout.str()
    for needle in needles:
        assert needle in text
    return lines[0]


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


# -- a store whose data is damaged, or whose schema version is not a number ----------------


def damage_runs_table(db: Path) -> None:
    """Overwrite the root page of p3m_runs with 0xff: the header and p3m_meta stay readable."""
    conn = sqlite3.connect(db)
    page_size = conn.execute("PRAGMA page_size").fetchone()[0]
    (root,) = conn.execute(
        "SELECT rootpage FROM sqlite_master WHERE type = 'table' AND name = 'p3m_runs'"
    ).fetchone()
    conn.close()
    with db.open("r+b") as fh:
        fh.seek((root - 1) * page_size)
        fh.write(b"\xff" * page_size)


def bad_version(db: Path) -> None:
    conn = sqlite3.connect(db)
    conn.execute("UPDATE p3m_meta SET value = 'abc' WHERE key = 'schema_version'")
    conn.commit()
    conn.close()


@pytest.fixture(params=["damaged-page", "version-abc"])
def broken_store(request: pytest.FixtureRequest, pytester: pytest.Pytester) -> Path:
    """A store with a few runs (of SUITE), then broken one way or the other."""
    db = pytester.path / "results.db"
    for _ in range(3):
        run_with_store(pytester, db)
    (damage_runs_table if request.param == "damaged-page" else bad_version)(db)
    return db


@pytest.mark.parametrize("rerun", [False, True])
def test_session_on_a_broken_store(
    pytester: pytest.Pytester, broken_store: Path, rerun: bool
) -> None:
    before = digest(broken_store)
    args = ["--p3monitor", f"--p3monitor-db={broken_store}"]
    if rerun:  # the flaky tests are read while collecting
        args.append("--p3monitor-rerun-flaky=2")
    result = pytester.runpytest(*args)
    result.assert_outcomes(passed=1, failed=1)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    assert_one_warning(result, str(broken_store))
    assert len(kept_runs(pytester)) == 1
    assert digest(broken_store) == before


CLI_COMMANDS = [
    ["runs"],
    ["history", "test_suite.py::test_bad"],
    ["flaky"],
    ["flaky", "--all"],
    ["trends"],
    ["health"],
    ["export", "--format", "json"],
]


@pytest.mark.parametrize("command", CLI_COMMANDS, ids=lambda c: "-".join(c))
def test_cli_on_a_broken_store(
    broken_store: Path, command: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    from pytest_p3monitor.cli import main

    before = digest(broken_store)
    capsys.readouterr()
    assert main([*command, "--db", str(broken_store)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("p3monitor: error: ") and str(broken_store) in err, err
    assert "Traceback" not in err
    assert digest(broken_store) == before


def test_migrate_from_a_broken_store_leaves_nothing_behind(
    broken_store: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from pytest_p3monitor.cli import main

    target = broken_store.parent / "new" / "copy.db"
    assert main(["migrate-store", "--from", str(broken_store), "--to", str(target)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("p3monitor: error: ") and str(broken_store) in err, err
    assert "Traceback" not in err
    assert not target.parent.exists()


def test_migrate_into_a_broken_store_leaves_it_alone(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from pytest_p3monitor.cli import main
    from pytest_p3monitor.store.sqlite import SQLiteStore

    source, target = tmp_path / "src.db", tmp_path / "badver.db"
    SQLiteStore(source).close()
    SQLiteStore(target).close()
    bad_version(target)
    before = digest(target)
    assert main(["migrate-store", "--from", str(source), "--to", str(target)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("p3monitor: error: --to: ") and "'abc'" in err, err
    assert digest(target) == before


def test_one_warning_says_what_is_wrong_and_where_the_run_was_kept(
    pytester: pytest.Pytester,
) -> None:
    db = pytester.path / "results.db"
    db.write_text("notes")
    line = assert_one_warning(run_with_store(pytester, db), "is not a SQLite database")
    (kept,) = kept_runs(pytester)
    assert str(kept) in line and "p3monitor export --flush" in line


def test_run_that_cannot_be_kept_either_is_one_warning_saying_so(
    pytester: pytest.Pytester,
) -> None:
    db = pytester.path / "results.db"
    db.write_text("notes")
    (pytester.path / ".p3monitor").write_text("in the way of the outbox")
    line = assert_one_warning(run_with_store(pytester, db), "is not a SQLite database")
    assert "could not be kept" in line and "it is lost" in line, line


# -- the outbox: kept runs go to the store they were meant for -----------------------------


def test_export_flush_stores_a_kept_run_in_the_store_it_was_meant_for(
    pytester: pytest.Pytester,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path_factory: pytest.TempPathFactory,
    capsys: pytest.CaptureFixture[str],
) -> None:
    import re

    from pytest_p3monitor.cli import main

    pytester.makeini("[pytest]\np3monitor_db = stores/custom.db\n")
    pytester.makepyfile(test_suite=SUITE)
    custom = pytester.path / "stores" / "custom.db"
    assert pytester.runpytest("--p3monitor").ret == pytest.ExitCode.TESTS_FAILED
    custom.rename(custom.with_suffix(".bak"))
    custom.write_text("not a database now")
    result = pytester.runpytest("--p3monitor")
    line = assert_one_warning(result, "is not a SQLite database")
    (kept,) = kept_runs(pytester)
    custom.with_suffix(".bak").replace(custom)
    # the command the warning gives, from another folder
    command = re.search(r"`p3monitor (export --flush[^`]*)`", line)
    assert command is not None, line
    monkeypatch.chdir(tmp_path_factory.mktemp("elsewhere"))
    capsys.readouterr()
    assert main(command.group(1).split()) == 0, capsys.readouterr()
    assert f"in {custom}" in capsys.readouterr().out
    assert kept_runs(pytester) == []
    assert not (pytester.path / ".p3monitor" / "results.db").exists()
    assert kept.stem in {r[0] for r in store_rows(custom, "SELECT run_id FROM p3m_runs")}
    assert len(store_rows(custom, "SELECT run_id FROM p3m_runs")) == 2


def test_export_flush_from_the_project_folder_uses_the_kept_store(
    pytester: pytest.Pytester, capsys: pytest.CaptureFixture[str]
) -> None:
    from pytest_p3monitor.cli import main

    pytester.makeini("[pytest]\np3monitor_db = stores/custom.db\n")
    pytester.makepyfile(test_suite=SUITE)
    custom = pytester.path / "stores" / "custom.db"
    custom.parent.mkdir()
    custom.write_text("not a database yet")
    pytester.runpytest("--p3monitor")
    (kept,) = kept_runs(pytester)
    custom.unlink()
    assert main(["export", "--flush"]) == 0, capsys.readouterr()
    assert kept_runs(pytester) == []
    assert not (pytester.path / ".p3monitor" / "results.db").exists()
    assert [r[0] for r in store_rows(custom, "SELECT run_id FROM p3m_runs")] == [kept.stem]


def test_the_password_of_a_kept_store_url_is_never_written() -> None:
    from pytest_p3monitor.cli.export import kept_store_url

    url = "postgresql://ci:s3cret@db.example:5432/results"
    kept = "postgresql://ci:***@db.example:5432/results"
    # without the password at hand, libpq finds it (PGPASSWORD, ~/.pgpass)
    assert kept_store_url({"store": kept}, None, {}) == "postgresql://ci@db.example:5432/results"
    assert kept_store_url({"store": kept}, None, {"P3MONITOR_DB": url}) == url
    fixed = "postgresql://team:right@db.example:5432/results"  # after a wrong login
    assert kept_store_url({"store": kept}, None, {"P3MONITOR_DB": fixed}) == fixed
    other = str(Path.cwd() / "other.db")
    assert kept_store_url({"store": kept}, "other.db", {"P3MONITOR_DB": url}) == other
    assert kept_store_url({"store": "/p/custom.db"}, None, {"P3MONITOR_DB": url}) == "/p/custom.db"
    assert kept_store_url({}, None, {"P3MONITOR_DB": url}) is None  # an entry of an older version


def test_a_session_of_another_store_leaves_a_kept_run_alone(pytester: pytest.Pytester) -> None:
    custom = pytester.path / "custom.db"
    custom.write_text("not a database")
    run_with_store(pytester, custom)
    (kept,) = kept_runs(pytester)
    other = pytester.path / "other.db"
    run_with_store(pytester, other).stdout.no_fnmatch_line("*StoreWarning*")
    assert kept_runs(pytester) == [kept]
    assert len(store_rows(other, "SELECT run_id FROM p3m_runs")) == 1
    custom.unlink()
    run_with_store(pytester, custom)
    assert kept_runs(pytester) == []
    assert len(store_rows(custom, "SELECT run_id FROM p3m_runs")) == 2


def test_outbox_lists_no_file_another_session_took(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pytest_p3monitor import outbox

    for name in ("a", "b", "c"):
        outbox.save("runs", name, {"run": name}, base=tmp_path)
    real_stat = Path.stat

    def stat_after_another_session_took_b(self: Path, **kw: bool) -> os.stat_result:
        if self.name == "b.json":
            self.unlink(missing_ok=True)  # the other session's remove, just before our stat
        return real_stat(self, **kw)

    monkeypatch.setattr(Path, "stat", stat_after_another_session_took_b)
    assert [p.stem for p in outbox.pending("runs", base=tmp_path)] == ["a", "c"]


def test_a_kept_run_another_session_took_is_skipped_silently(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pytest_p3monitor import outbox

    db = pytester.path / "results.db"
    db.write_text("not a database")
    run_with_store(pytester, db)
    (kept,) = kept_runs(pytester)
    db.unlink()
    real_pending = outbox.pending

    def pending_then_taken(kind: str, base: Path = outbox.DEFAULT_DIR) -> list[Path]:
        found = real_pending(kind, base)
        kept.unlink()  # another session stored it between our listing and our load
        return found

    monkeypatch.setattr(outbox, "pending", pending_then_taken)
    result = run_with_store(pytester, db)
    result.stdout.no_fnmatch_line("*Warning: p3monitor*")
    assert len(store_rows(db, "SELECT run_id FROM p3m_runs")) == 1


PYTEST = [sys.executable, "-m", "pytest"]


def test_sessions_emptying_one_outbox_at_once_store_each_run_once(
    pytester: pytest.Pytester,
) -> None:
    db = pytester.path / "results.db"
    db.write_text("not a database")
    run_with_store(pytester, db)
    (kept,) = kept_runs(pytester)
    data = kept.read_text()
    ids = {f"{i:032x}" for i in range(1, 41)}
    for run_id in ids:
        kept.with_name(f"{run_id}.json").write_text(data.replace(kept.stem, run_id))
    kept.unlink()
    db.unlink()
    procs = [
        subprocess.Popen(
            [*PYTEST, "--p3monitor", f"--p3monitor-db={db}", "-q", "-p", "no:cacheprovider"],
            cwd=pytester.path,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for _ in range(4)
    ]
    for p in procs:
        out = p.communicate(timeout=300)[0]
        assert p.returncode == 1, out
        assert "Warning" not in out, out
    stored = [r[0] for r in store_rows(db, "SELECT run_id FROM p3m_runs")]
    assert len(stored) == len(set(stored)) == 44
    assert ids <= set(stored)
    assert kept_runs(pytester) == []


# -- store paths: the same rule for pytest and the p3monitor command ---------------------


@pytest.fixture
def in_subfolder(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The ini file in the project folder (the rootdir), pytest started in ``sub``."""
    pytester.makeini("[pytest]\n")
    sub = pytester.mkpydir("sub")
    (sub / "test_suite.py").write_text(SUITE)
    monkeypatch.chdir(sub)
    monkeypatch.setenv("HOME", str(pytester.path / "home"))
    return sub


@pytest.mark.parametrize("where", ["cli", "env", "env-home"])
def test_a_typed_store_path_is_relative_to_the_current_folder_for_pytest_and_the_cli(
    pytester: pytest.Pytester,
    in_subfolder: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    where: str,
) -> None:
    from pytest_p3monitor.cli import main

    value = "~/h.db" if where == "env-home" else "typed.db"
    expected = pytester.path / "home" / "h.db" if where == "env-home" else in_subfolder / "typed.db"
    args = ["--p3monitor"]
    if where == "cli":
        args.append(f"--p3monitor-db={value}")
    else:
        monkeypatch.setenv("P3MONITOR_DB", value)
    assert pytester.runpytest(*args).ret == pytest.ExitCode.TESTS_FAILED
    assert len(store_rows(expected, "SELECT run_id FROM p3m_runs")) == 1
    assert not (pytester.path / "typed.db").exists()
    capsys.readouterr()
    cli = [] if where != "cli" else ["--db", value]
    assert main(["runs", "--format", "json", *cli]) == 0, capsys.readouterr().err
    assert len(json.loads(capsys.readouterr().out)) == 1


def test_an_ini_store_path_is_relative_to_the_ini_file(
    pytester: pytest.Pytester, in_subfolder: Path
) -> None:
    pytester.makeini("[pytest]\np3monitor_db = from-ini.db\n")
    assert pytester.runpytest("--p3monitor").ret == pytest.ExitCode.TESTS_FAILED
    assert len(store_rows(pytester.path / "from-ini.db", "SELECT run_id FROM p3m_runs")) == 1
    assert not (in_subfolder / "from-ini.db").exists()


# -- node ids the store cleans (a file name that is not UTF-8) ----------------------------

FLIP = """
import pathlib

def test_flip():
    assert pathlib.Path("fail-now").exists() is False
"""


@pytest.mark.parametrize("many", [False, True])
def test_a_test_file_named_in_no_encoding_is_quarantined_like_any_other(
    pytester: pytest.Pytester, many: bool
) -> None:
    """Its node id carries a lone surrogate: stored cleaned, and looked up cleaned too."""
    from pytest_p3monitor.records import RunInfo, TestRecord
    from pytest_p3monitor.store.sqlite import SQLiteStore

    name = os.fsdecode(b"test_\xff.py")
    nodeid = f"{name}::test_flip"
    (pytester.path / name).write_text(FLIP)
    if many:  # over PER_TEST_QUERIES tests: the history is read in one scan
        pytester.makepyfile(
            test_many="import pytest\n@pytest.mark.parametrize('i', range(320))\n"
            "def test_i(i):\n    assert i != 0 or __import__('os').path.exists('x') is False\n"
        )
    db = pytester.path / "results.db"
    store = SQLiteStore(db)
    for i in range(10):
        outcome = "failed" if i % 2 else "passed"
        store.save_run(
            RunInfo(run_id=f"r{i}", started_at=1000.0 + i, commit=f"c{i}"),
            [TestRecord(nodeid=nodeid, outcome=outcome, call_s=0.1)],
            {},
        )
    store.close()
    (pytester.path / "fail-now").write_text("")
    args = ["--p3monitor", f"--p3monitor-db={db}", "--p3monitor-quarantine"]
    if many:
        args += ["--p3monitor-fail-on", "test_duration > 100s"]
    result = pytester.runpytest(*args, "-p", "no:cacheprovider")  # pytest's own cache fails
    result.assert_outcomes(passed=320 if many else 0, failed=1)
    assert result.ret == pytest.ExitCode.OK, result.stdout.str()
    result.stdout.no_fnmatch_line("*Warning: p3monitor*")


# -- the commands name their own options; a FIFO is no store ------------------------------


def test_cli_errors_name_the_option_of_the_command(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from pytest_p3monitor.cli import main
    from pytest_p3monitor.store.sqlite import SQLiteStore

    notes = tmp_path / "notes.db"
    notes.write_text("my notes")
    assert main(["runs", "--db", str(notes)]) == 2
    err = capsys.readouterr().err
    assert "point --db / P3MONITOR_DB at another file" in err and "--p3monitor-db" not in err
    SQLiteStore(tmp_path / "src.db").close()
    assert main(["migrate-store", "--from", str(tmp_path / "src.db"), "--to", str(notes)]) == 2
    err = capsys.readouterr().err
    assert "point --to at another file" in err and "--p3monitor-db" not in err, err


def test_a_fifo_is_refused_like_a_folder(pytester: pytest.Pytester) -> None:
    fifo = pytester.path / "results.db"
    os.mkfifo(fifo)
    pytester.makepyfile(test_suite=SUITE)
    proc = subprocess.run(
        [*PYTEST, "--p3monitor", f"--p3monitor-db={fifo}", "-q", "-p", "no:cacheprovider"],
        cwd=pytester.path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 1, proc.stdout
    assert proc.stdout.count("Warning: p3monitor") == 1, proc.stdout
    assert "is not a regular file" in proc.stdout
    assert len(kept_runs(pytester)) == 1
