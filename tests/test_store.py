"""The store's contract, on SQLite (the PostgreSQL backend runs the same contract)."""

from __future__ import annotations

import sqlite3
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from pytest_p3monitor.records import RunInfo, TestRecord
from pytest_p3monitor.store import Store, StoreError, StoreUnavailable, open_store, redact_url
from pytest_p3monitor.store.schema import SCHEMA_VERSION

from conftest import store_rows


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = open_store(str(tmp_path / "s" / "results.db"))
    yield s
    s.close()


def save(store: Store, run_id: str, started: float, outcomes: dict[str, str], **kw: str) -> None:
    run = RunInfo(run_id=run_id, started_at=started, **kw)  # type: ignore[arg-type]
    tests = [TestRecord(nodeid=n, outcome=o, call_s=1.0) for n, o in outcomes.items()]  # type: ignore[arg-type]
    store.save_run(run, tests, {"health_score": 80})


def test_save_is_idempotent_per_run_id(store: Store) -> None:
    save(store, "r1", 1000.0, {"a": "passed", "b": "failed"})
    save(store, "r1", 1000.0, {"a": "passed", "b": "failed"})
    (row,) = store.recent_runs()
    assert (row.run.run_id, row.tests, row.passed, row.failed) == ("r1", 2, 1, 1)
    assert row.metrics == {"health_score": 80}
    assert row.success_rate == 50.0


def test_recent_runs_order_branch_and_since(store: Store) -> None:
    for i in range(5):
        save(store, f"r{i}", 1000.0 + i, {"a": "passed"}, branch="main" if i % 2 else "dev")
    assert [r.run.run_id for r in store.recent_runs(limit=3)] == ["r4", "r3", "r2"]
    assert [r.run.run_id for r in store.recent_runs(branch="main")] == ["r3", "r1"]
    assert [r.run.run_id for r in store.recent_runs(since=1003.0)] == ["r4", "r3"]


def test_test_history_oldest_first_with_limit(store: Store) -> None:
    for i, o in enumerate(["passed", "failed", "passed", "failed"]):
        save(store, f"r{i}", 1000.0 + i, {"a": o}, commit=f"c{i}")
    rows = store.test_history("a", limit=3)
    assert [(r.run_id, r.commit, r.outcome) for r in rows] == [
        ("r1", "c1", "failed"),
        ("r2", "c2", "passed"),
        ("r3", "c3", "failed"),
    ]
    assert rows[0].duration_s == 1.0
    assert store.test_history("missing") == []


def test_histories_streams_the_window(store: Store) -> None:
    for i in range(6):
        outcomes = {"a": "passed", "b": "failed"}
        if i >= 4:
            outcomes["new"] = "passed"
        save(store, f"r{i}", 1000.0 + i, outcomes)
    got = {nodeid: [r.run_id for r in rows] for nodeid, rows in store.histories(window=3)}
    assert got == {"a": ["r3", "r4", "r5"], "b": ["r3", "r4", "r5"], "new": ["r4", "r5"]}
    only = dict(store.histories(window=2, nodeids=["b", "missing"]))
    assert [r.run_id for r in only["b"]] == ["r4", "r5"]
    assert "missing" not in only


def test_prune(store: Store) -> None:
    for i in range(4):
        save(store, f"r{i}", 1000.0 + i, {"a": "passed", f"only{i}": "passed"})
    assert store.prune(older_than=1002.0) == 2
    assert [r.run.run_id for r in store.recent_runs()] == ["r3", "r2"]
    assert dict(store.histories(nodeids=["only0"])) == {}
    assert store.prune(older_than=0) == 0


def test_new_store_has_schema_version_and_wal(tmp_path: Path) -> None:
    path = tmp_path / "x.db"
    open_store(str(path)).close()
    conn = sqlite3.connect(path)
    assert conn.execute("SELECT value FROM p3m_meta").fetchone() == (str(SCHEMA_VERSION),)
    assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    indexes = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='index'")}
    assert {"p3m_runs_started", "p3m_runs_branch", "p3m_results_failing"} <= indexes
    # No index of the results by test: saving a run must not cost more as history grows.
    assert "p3m_results_test" not in indexes


def test_read_only_open_never_creates(tmp_path: Path) -> None:
    with pytest.raises(StoreUnavailable, match="pytest --p3monitor"):
        open_store(str(tmp_path / "none.db"), create=False)
    assert not (tmp_path / "none.db").exists()


def test_unknown_scheme_and_redaction() -> None:
    with pytest.raises(StoreUnavailable, match="unknown results store URL scheme 'mysql'") as e:
        open_store("mysql://u:secret@h/db")
    assert "secret" not in str(e.value)
    assert redact_url("postgresql://me:pw@host:5/db") == "postgresql://me:***@host:5/db"
    assert redact_url("postgresql://me@host/db") == "postgresql://me@host/db"
    # the password in the query string (psycopg logs in with it), or with an unescaped '@'
    assert redact_url("postgresql://me@host/db?password=S3cr3t&sslmode=require") == (
        "postgresql://me@host/db?password=***&sslmode=require"
    )
    assert redact_url("postgresql://me:pa@ss99@host/db") == "postgresql://me:***@host/db"
    assert redact_url("/tmp/a b/results.db") == "/tmp/a b/results.db"


def test_save_10k_run_is_fast(store: Store) -> None:
    """Not a benchmark (see benchmarks/), a guard against a quadratic slip."""
    tests = [TestRecord(nodeid=f"t.py::test_{i}", outcome="passed") for i in range(10_000)]
    t0 = time.perf_counter()
    store.save_run(RunInfo(run_id="big", started_at=1.0), tests, {})
    assert time.perf_counter() - t0 < 5
    assert store.recent_runs()[0].tests == 10_000


def test_text_no_backend_can_encode_is_cleaned_not_lost(store: Store) -> None:
    bad = TestRecord(nodeid="t.py::test[\udcff]", outcome="failed", message="nul\x00 and \udcff")
    store.save_run(RunInfo(run_id="odd", started_at=1.0), [bad], {})
    ((nodeid, rows),) = list(store.histories())
    assert nodeid == "t.py::test[?]"
    assert rows[0].message == "nul\ufffd and ?"


def test_figures_columns_and_json_round_trip(store: Store, tmp_path: Path) -> None:
    meter = {"cpu_time_s": 0.125, "rss_peak_bytes": 48_000_000, "read_bytes": 0,
             "write_bytes": 4096, "read_chars": 120, "write_chars": 20}  # fmt: skip
    only_meter = TestRecord(nodeid="t.py::a", figures=dict(meter))
    mixed = TestRecord(
        nodeid="t.py::b",
        # a container peak, a bool and a text under a column's name go in the JSON
        figures={
            "cpu_time_s": 0.5,
            "container.db.cpu_percent_peak": 12.5,
            "read_bytes": True,
            "write_chars": "many",
        },
    )
    store.save_run(RunInfo(run_id="r", started_at=1.0), [only_meter, mixed], {})
    ((seq, *_),) = list(store.recent_runs())
    assert store.run_tests(seq) == [only_meter, mixed]  # type: ignore[attr-defined]
    conn = sqlite3.connect(tmp_path / "s" / "results.db")
    rows = dict(
        conn.execute(
            "SELECT t.nodeid, r.figures FROM p3m_results r JOIN p3m_tests t ON t.id = r.test"
        ).fetchall()
    )
    assert rows["t.py::a"] is None  # every figure in its column
    assert conn.execute(
        "SELECT sum(rss_peak_bytes), sum(cpu_time_s) FROM p3m_results"
    ).fetchone() == (
        48_000_000,
        0.625,
    )


def _store_at_version(path: Path, version: int) -> sqlite3.Connection:
    """A SQLite store built by the first ``version`` migrations, as an older plugin left it."""
    from pytest_p3monitor.store.schema import statements

    conn = sqlite3.connect(path, isolation_level=None)
    for step, stmts in enumerate(statements("sqlite", 0)[:version], start=1):
        for stmt in stmts:
            conn.execute(stmt)
        conn.execute("INSERT OR REPLACE INTO p3m_meta VALUES ('schema_version', ?)", (str(step),))
    return conn


def test_schema_2_store_migrates_keeping_its_figures(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    conn = _store_at_version(path, 2)
    conn.execute(
        "INSERT INTO p3m_runs (run_id, started_at, tests, passed, failed, errors, skipped,"
        " xfailed, xpassed, reruns, test_execution_time_s, metrics)"
        " VALUES ('old', 1.0, 1, 1, 0, 0, 0, 0, 0, 0, 0.5, '{}')"
    )
    conn.execute("INSERT INTO p3m_tests (nodeid) VALUES ('t.py::old')")
    conn.execute(
        "INSERT INTO p3m_results (test, run, outcome, setup_s, call_s, teardown_s, reruns,"
        " figures) VALUES (1, 1, 'passed', 0, 0.5, 0, 0, ?)",
        ('{"cpu_time_s":0.5,"rss_peak_bytes":7}',),
    )
    conn.close()
    store = open_store(str(path))
    try:
        ((seq, *_),) = list(store.recent_runs())
        (old,) = store.run_tests(seq)  # type: ignore[attr-defined]
        assert old.figures == {"cpu_time_s": 0.5, "rss_peak_bytes": 7}
        new = TestRecord(nodeid="t.py::old", figures={"cpu_time_s": 0.25})
        store.save_run(RunInfo(run_id="new", started_at=2.0), [new], {})
        assert [r.run.run_id for r in store.recent_runs()] == ["new", "old"]
    finally:
        store.close()
    version = sqlite3.connect(path).execute("SELECT value FROM p3m_meta").fetchone()
    assert version == (str(SCHEMA_VERSION),)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="every figure needs /proc")
def test_the_meters_figures_are_the_stores_figure_columns() -> None:
    """The store's columns name the meter's figures (a renamed figure would fall back to
    the figures JSON without anyone noticing)."""
    from pytest_p3monitor.sampling.pertest import TestMeter
    from pytest_p3monitor.store.schema import FIGURE_COLUMNS

    meter = TestMeter(chars=True)
    try:
        meter.start()
        figures = meter.lap()
    finally:
        meter.close()
    assert set(figures) == set(FIGURE_COLUMNS)


# -- how a run is written (store/sqlite_save.py) ----------------------------------------------

METER = ("cpu_time_s", "rss_peak_bytes", "read_bytes", "write_bytes", "read_chars", "write_chars")


def meter_figures(i: int) -> dict[str, float]:
    return {"cpu_time_s": 0.001 * i + 1 / 3, "rss_peak_bytes": 50_000_000 + 4096 * (i // 7),
            "read_bytes": 0, "write_bytes": 4096 * (i % 3 == 0), "read_chars": 4,
            "write_chars": i % 5}  # fmt: skip


def default_meter_figures(i: int) -> dict[str, float]:
    """The meter's figures without p3monitor_io_chars (the default): four of the six."""
    figures = meter_figures(i)
    del figures["read_chars"], figures["write_chars"]
    return figures


def varied_records() -> list[TestRecord]:
    """Results of every shape the writer treats apart, in chunks of 100 (its CHUNK)."""
    records: list[TestRecord] = []

    def add(i: int, **kw: Any) -> None:
        kw.setdefault("nodeid", f"t.py::test_{len(records)}")
        start = 1_795_937_230.0 + i * 0.0123456789
        kw.setdefault("start", start)
        kw.setdefault("stop", start + 0.01)
        records.append(TestRecord(setup_s=i / 7, call_s=0.1 + i / 3, teardown_s=1e-7 * i, **kw))

    for i in range(100):  # the usual: passed, the meter's six figures
        add(i, outcome="passed", figures=meter_figures(i))
    for i in range(100):  # resources off: no figure at all
        add(i, outcome="passed", figures={})
    for i in range(100):  # the same, some failing with a message, some rerun, an xdist worker
        failed = i % 9 == 0
        add(i, outcome="failed" if failed else "passed", figures=meter_figures(i),
            message="boom ✗" if failed else None, reruns=int(i % 4 == 1),
            worker=f"gw{i % 2}")  # fmt: skip
    for i in range(100):  # usual but one bool among the figures: it goes in the JSON
        figures = meter_figures(i)
        if i == 50:
            figures["read_bytes"] = True
        add(i, outcome="passed", figures=figures)
    for i in range(100):  # usual, no start or stop times
        add(i, outcome="skipped", figures=meter_figures(i), start=None, stop=None,
            message="needs a GPU")  # fmt: skip
    for i in range(100):  # the usual of the default meter: four figures
        add(i, outcome="passed", figures=default_meter_figures(i))
    for i in range(100):  # four figures, but six in one result
        add(i, outcome="passed", figures=meter_figures(i) if i == 60 else default_meter_figures(i))
    for i in range(100):  # one figure only (each of them a column)
        add(i, outcome="passed", figures={"cpu_time_s": i / 3})
    odd_figures: list[dict[str, Any]] = [
        {"cpu_time_s": 0.5, "container.db.cpu_percent_peak": 12.5},  # other figures
        {**meter_figures(1), "container.db.rss_bytes_peak": 3.0},  # six and another
        {"cpu_time_s": 0.25, "read_bytes": 0, "write_bytes": 0},  # not Linux: some
        {**meter_figures(2), "write_chars": "many"},  # a text under a column's name
        {**meter_figures(3), "rss_peak_bytes": None},  # a None
        {**meter_figures(4), "cpu_time_s": 3},  # an int where a float is usual
        {k: meter_figures(5)[k] for k in reversed(METER)},  # the six, in another order
    ]
    odd_ids = ["t.py::test[\"quoted\"]", "t.py::test[back\\slash]", "t.py::test[ü ✓]",
               "t.py::test[nul\x00]", "t.py::test[\udcff]",
               "t.py::test[tab\tnew\nline]"]  # fmt: skip
    for i in range(37):  # a short last chunk of odd results
        add(i, outcome=("passed", "error", "xfailed", "xpassed")[i % 4],
            figures=odd_figures[i % len(odd_figures)],
            nodeid=odd_ids[i] if i < len(odd_ids) else f"t.py::odd_{i}",
            message={7: "nul\x00 and \udcff", 10: "", 11: "0"}.get(i),
            worker="gw\x001" if i == 8 else None,
            reruns=2 if i == 9 else 0)  # fmt: skip
    return records


def reference_store(path: Path, run: RunInfo, tests: list[TestRecord]) -> None:
    """``tests`` stored the straightforward way: a row per result from result_values."""
    from pytest_p3monitor.store.sql import (
        RESULT_COLUMNS,
        clean_text,
        compact_json,
        result_values,
        run_params,
    )

    open_store(str(path)).close()
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute(
        "INSERT INTO p3m_runs (run_id, started_at, finished_at, commit_sha, branch, ci_provider,"
        " ci_run_id, ci_job, ci_url, hostname, python, pytest, workers, exit_status, tests,"
        " passed, failed, errors, skipped, xfailed, xpassed, reruns, test_execution_time_s,"
        " metrics) VALUES (" + ", ".join(["?"] * 24) + ")",
        run_params(run, tests, compact_json({"health_score": 80})),
    )
    for t in tests:
        conn.execute(
            "INSERT INTO p3m_tests (nodeid, file, line) VALUES (?, ?, ?)",
            (clean_text(t.nodeid), clean_text(t.file), t.line),
        )
        conn.execute(
            f"INSERT INTO p3m_results (test, run, {RESULT_COLUMNS}) VALUES"
            " ((SELECT id FROM p3m_tests WHERE nodeid = ?), 1"
            + ", ?" * len(RESULT_COLUMNS.split(", "))
            + ")",
            (clean_text(t.nodeid), *result_values(t)),
        )
    conn.close()


def stored(path: Path) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """Every run (but its seq) and every result of a store, each value with its SQL type."""
    from pytest_p3monitor.store.sql import RESULT_COLUMNS

    conn = sqlite3.connect(path)
    try:
        runs = [
            row[1:] for row in conn.execute("SELECT *, typeof(test_execution_time_s) FROM p3m_runs")
        ]
        columns = ["t.nodeid", "t.file", "t.line"] + [
            f"r.{name}" for name in RESULT_COLUMNS.split(", ")
        ]
        typed = ", ".join(f"{c}, typeof({c})" for c in columns)
        results = conn.execute(
            f"SELECT {typed} FROM p3m_results r JOIN p3m_tests t ON t.id = r.test ORDER BY t.nodeid"
        ).fetchall()
        return runs, results
    finally:
        conn.close()


def test_a_run_is_stored_as_result_values_says(store: Store, tmp_path: Path) -> None:
    """Whatever shape its chunks take, a run is stored value for value (and type for type)
    as a row per result from result_values and run_params would store it."""
    tests = varied_records()
    run = RunInfo(run_id="r", started_at=1.0, branch="main")
    store.save_run(run, tests, {"health_score": 80})
    reference_store(tmp_path / "reference.db", run, tests)
    assert stored(tmp_path / "s" / "results.db") == stored(tmp_path / "reference.db")
    ((seq, *_),) = list(store.recent_runs())
    back = {t.nodeid: t for t in store.run_tests(seq)}  # type: ignore[attr-defined]
    assert back["t.py::test_0"] == tests[0]
    assert back["t.py::test[ü ✓]"].figures == tests[802].figures  # int, and in column order
    assert back["t.py::test_500"] == tests[500]  # the default meter's four figures
    assert back["t.py::test_660"].figures == meter_figures(60)
    assert back["t.py::test_350"].figures["read_bytes"] is True


def test_a_run_without_start_times_counts_its_durations(store: Store, tmp_path: Path) -> None:
    tests = [TestRecord(nodeid=f"t.py::{i}", call_s=0.1 * i, figures=meter_figures(i))
             for i in range(150)]  # fmt: skip
    run = RunInfo(run_id="r", started_at=1.0)
    store.save_run(run, tests, {"health_score": 80})
    reference_store(tmp_path / "reference.db", run, tests)
    assert stored(tmp_path / "s" / "results.db") == stored(tmp_path / "reference.db")


def test_an_empty_run_is_stored(store: Store) -> None:
    store.save_run(RunInfo(run_id="empty", started_at=1.0), [], {})
    (row,) = store.recent_runs()
    assert (row.tests, row.passed, row.test_execution_time_s) == (0, 0, 0)


def test_a_failed_write_stores_nothing(store: Store, tmp_path: Path) -> None:
    """Two results of one node id cannot both be stored: the run is not stored at all."""
    tests = [TestRecord(nodeid=f"t.py::{i % 150}") for i in range(200)]
    with pytest.raises(StoreError):
        store.save_run(RunInfo(run_id="twice", started_at=1.0), tests, {})
    db = tmp_path / "s" / "results.db"
    assert store_rows(db, "SELECT count(*) FROM p3m_runs") == [(0,)]
    assert store_rows(db, "SELECT count(*) FROM p3m_results") == [(0,)]


def test_a_suite_saved_again_reuses_its_test_ids(store: Store, tmp_path: Path) -> None:
    db = tmp_path / "s" / "results.db"
    suite = [TestRecord(nodeid=f"t.py::test_{i}", figures=meter_figures(i)) for i in range(250)]
    store.save_run(RunInfo(run_id="a", started_at=1.0), suite, {})
    assert store_rows(db, "SELECT count(*) FROM p3m_suites") == [(1,)]
    # Its ids, the same suite again, and the suite in another order: each result is
    # stored under its own test.
    store.save_run(RunInfo(run_id="b", started_at=2.0), suite, {})
    store.save_run(RunInfo(run_id="c", started_at=3.0), suite[::-1], {})
    for seq in (1, 2, 3):
        assert sorted(store.run_tests(seq), key=lambda t: t.nodeid) == sorted(  # type: ignore[attr-defined]
            suite, key=lambda t: t.nodeid
        )
    # (the suite in another order has the same sizes: it took the first one's place)
    assert store_rows(db, "SELECT count(*) FROM p3m_suites") == [(1,)]
    assert store_rows(db, "SELECT count(*) FROM p3m_tests") == [(250,)]
    # Pruning deletes tests (an id may then be given again): it forgets the suites.
    store.prune(older_than=3.5)
    assert store_rows(db, "SELECT count(*) FROM p3m_suites") == [(0,)]
    other = [TestRecord(nodeid=f"t.py::other_{i}") for i in range(10)]
    store.save_run(RunInfo(run_id="d", started_at=4.0), other, {})
    store.save_run(RunInfo(run_id="e", started_at=5.0), suite, {})
    (newest, *_) = store.recent_runs()
    assert sorted(store.run_tests(newest.run_seq), key=lambda t: t.nodeid) == sorted(  # type: ignore[attr-defined]
        suite, key=lambda t: t.nodeid
    )


def test_only_the_last_suites_are_kept(store: Store, tmp_path: Path) -> None:
    from pytest_p3monitor.store.sqlite_save import SUITES_KEPT

    for run in range(SUITES_KEPT + 3):
        tests = [TestRecord(nodeid=f"t.py::test_{i}") for i in range(run + 1)]
        store.save_run(RunInfo(run_id=f"r{run}", started_at=float(run)), tests, {})
    db = tmp_path / "s" / "results.db"
    assert store_rows(db, "SELECT count(*) FROM p3m_suites") == [(SUITES_KEPT,)]


def test_schema_3_store_migrates_and_keeps_its_runs(tmp_path: Path) -> None:
    path = tmp_path / "v3.db"
    conn = _store_at_version(path, 3)
    conn.close()
    assert SCHEMA_VERSION == 5
    tests = [TestRecord(nodeid=f"t.py::test_{i}", figures=meter_figures(i)) for i in range(120)]
    # a run stored by schema 3 (the way it stored them: the same rows)
    reference_store(path, RunInfo(run_id="old", started_at=1.0), tests)
    store = open_store(str(path))
    try:
        store.save_run(RunInfo(run_id="new", started_at=2.0), tests, {})
        old, new = sorted(store.recent_runs(), key=lambda r: r.run_seq)
        assert store.run_tests(old.run_seq) == store.run_tests(new.run_seq)  # type: ignore[attr-defined]
    finally:
        store.close()
    assert store_rows(path, "SELECT value FROM p3m_meta") == [("5",)]
    assert store_rows(path, "SELECT count(*) FROM p3m_suites") == [(1,)]


def test_schema_4_store_drops_the_results_index_by_test_and_reads_the_same(
    tmp_path: Path,
) -> None:
    path = tmp_path / "v4.db"
    _store_at_version(path, 4).close()
    index = "SELECT name FROM sqlite_master WHERE name = 'p3m_results_test'"
    assert store_rows(path, index) == [("p3m_results_test",)]
    tests = [TestRecord(nodeid=f"t.py::test_{i}", outcome="passed") for i in range(5)]
    reference_store(path, RunInfo(run_id="old", started_at=1.0), tests)
    store = open_store(str(path))
    try:
        store.save_run(RunInfo(run_id="new", started_at=2.0), tests[:3], {})
        assert [r.run_id for r in store.test_history("t.py::test_0")] == ["old", "new"]
        assert [r.run_id for r in store.test_history("t.py::test_4")] == ["old"]
    finally:
        store.close()
    assert store_rows(path, index) == []
    assert store_rows(path, "SELECT value FROM p3m_meta") == [("5",)]


def test_history_reaches_back_past_the_runs_a_test_missed(store: Store) -> None:
    """A test's last results, however many runs ago: the runs are read newest first, a
    page at a time, until every test asked for has its ``limit`` results."""
    for seq in range(1, 301):
        tests = [TestRecord(nodeid="t.py::always", outcome="passed")]
        if seq <= 3 or seq % 100 == 0:
            outcome = "failed" if seq == 2 else "passed"
            tests.append(TestRecord(nodeid="t.py::rare", outcome=outcome))
        branch = "main" if seq % 2 else "dev"
        store.save_run(RunInfo(run_id=f"r{seq}", started_at=float(seq), branch=branch), tests, {})
    rare = store.test_history("t.py::rare", limit=4)
    assert [r.run_id for r in rare] == ["r3", "r100", "r200", "r300"]  # oldest first
    assert [r.outcome for r in store.test_history("t.py::rare", limit=6)] == [
        "passed", "failed", "passed", "passed", "passed", "passed"
    ]  # fmt: skip
    assert [r.run_id for r in store.test_history("t.py::rare", branch="main")] == ["r1", "r3"]
    assert [r.run_id for r in store.test_history("t.py::always", limit=3)] == [
        "r298", "r299", "r300"
    ]  # fmt: skip
    both = dict(store.histories(3, nodeids=["t.py::rare", "t.py::nowhere", "t.py::always"]))
    assert list(both) == ["t.py::rare", "t.py::always"]
    assert [r.run_id for r in both["t.py::rare"]] == ["r100", "r200", "r300"]
    assert store.test_history("t.py::always", limit=0) == []


@pytest.mark.parametrize(
    "figures", [meter_figures, default_meter_figures, lambda i: {"cpu_time_s": i / 3}, lambda i: {}]
)
def test_the_meters_figures_take_the_one_loop_path(figures: Callable[[int], Any]) -> None:
    """The results a session usually has, with the meter's figures (four by default, six
    with p3monitor_io_chars) or none, are read in one loop, not a call per result: a
    call of result_values per result cost the default session a fifth of its store write."""
    from pytest_p3monitor.store import sqlite_save

    tests = [TestRecord(nodeid=f"t.py::test_{i}", figures=figures(i)) for i in range(100)]
    usual = sqlite_save._usual_values(tests)
    assert usual is not None
    values, columns, _ = usual
    assert columns[len(sqlite_save._USUAL_COLUMNS) :] == tuple(figures(1))
    assert len(values) == 1 + len(tests) * (1 + len(columns))


def test_a_chunk_fits_the_parameter_limit_of_sqlite_before_3_32(tmp_path: Path) -> None:
    """SQLite before 3.32 takes at most 999 parameters a statement: 50 of the widest
    results (every column bound for each) fit."""
    from pytest_p3monitor.store import sqlite_save

    if not hasattr(sqlite3.Connection, "setlimit"):
        pytest.skip("Connection.setlimit needs Python 3.11")
    path = tmp_path / "limit.db"
    open_store(str(path)).close()
    columns = tuple(sqlite_save._ALL_COLUMNS)
    insert = sqlite_save._results_insert((), columns, (), 50)
    conn = sqlite3.connect(path, isolation_level=None)
    conn.setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, 999)
    conn.execute("BEGIN")
    params: list[Any] = [1]
    for i in range(50):
        params += (i, "passed", 0.5, 1.0, 0.5, None, None, 0, None, None, None, *([None] * 6))
    conn.execute(insert, params)
    assert conn.execute("SELECT count(*) FROM p3m_results").fetchone() == (50,)
    conn.execute("ROLLBACK")
    conn.close()


def test_node_ids_are_looked_up_without_the_json_functions(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A SQLite built without JSON1: each node id is looked up on its own."""
    from pytest_p3monitor.store import sqlite_save

    monkeypatch.setattr(sqlite_save, "_TEST_IDS", "SELECT no_such_function(?)")
    tests = [TestRecord(nodeid=f"t.py::test_{i}", figures=meter_figures(i)) for i in range(130)]
    store.save_run(RunInfo(run_id="a", started_at=1.0), tests[:70], {})
    store.save_run(RunInfo(run_id="b", started_at=2.0), tests, {})
    newest = store.recent_runs()[0]
    assert sorted(store.run_tests(newest.run_seq), key=lambda t: t.nodeid) == sorted(  # type: ignore[attr-defined]
        tests, key=lambda t: t.nodeid
    )


def test_trend_runs_without_the_json_functions(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A SQLite built without JSON1: every run's metrics are parsed in Python, same rows."""
    from pytest_p3monitor.store import sqlite
    from pytest_p3monitor.trends import run_peaks

    process = {"memory_percent_peak": 31.5, "rss_bytes_peak": 2048, "samples": 4}
    all_metrics: list[dict[str, Any]] = [
        {"health_score": 80, "metrics": {"resource_usage": {"process": process}}},
        {"metrics": {"resource_usage": {"process": {"memory_percent_peak": "n/a"}}}},
        {"health_score": 70},
    ]
    for i, metrics in enumerate(all_metrics):
        store.save_run(RunInfo(run_id=f"r{i}", started_at=1000.0 + i), [], metrics)
    expected = store.trend_runs()
    monkeypatch.setattr(
        sqlite, "_TREND_COLUMNS", sqlite._TREND_COLUMNS + ", no_such_function(metrics)"
    )
    slim = store.trend_runs(since=1000.0)
    assert slim == expected
    assert [r.run.run_id for r in slim] == ["r2", "r1", "r0"]
    assert [run_peaks(r) for r in slim] == [(None, None), (None, None), (31.5, 2048.0)]
    peaks = {"memory_percent_peak": 31.5, "rss_bytes_peak": 2048}
    assert slim[2].metrics == {"metrics": {"resource_usage": {"process": peaks}}}
    assert slim[1].metrics == {
        "metrics": {"resource_usage": {"process": {"memory_percent_peak": "n/a"}}}
    }
