"""The store's contract, on SQLite (the PostgreSQL backend runs the same contract)."""

from __future__ import annotations

import sqlite3
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from pytest_p3monitor.records import RunInfo, TestRecord
from pytest_p3monitor.store import Store, StoreUnavailable, open_store, redact_url
from pytest_p3monitor.store.schema import SCHEMA_VERSION


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
    assert {"p3m_runs_started", "p3m_runs_branch", "p3m_results_test"} <= indexes


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


def test_schema_2_store_migrates_keeping_its_figures(tmp_path: Path) -> None:
    from pytest_p3monitor.store.schema import statements

    path = tmp_path / "old.db"
    conn = sqlite3.connect(path, isolation_level=None)
    for step, stmts in enumerate(statements("sqlite", 0)[:2], start=1):
        for stmt in stmts:
            conn.execute(stmt)
        conn.execute("INSERT OR REPLACE INTO p3m_meta VALUES ('schema_version', ?)", (str(step),))
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

    meter = TestMeter()
    try:
        meter.start()
        figures = meter.stop()
    finally:
        meter.close()
    assert set(figures) == set(FIGURE_COLUMNS)
