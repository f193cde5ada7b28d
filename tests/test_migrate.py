"""``p3monitor migrate-store``: SQLite to PostgreSQL and back, nothing lost, idempotent."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from pytest_p3monitor.cli import main
from pytest_p3monitor.cli.migrate import copy_store
from pytest_p3monitor.records import CIInfo, RunInfo, TestRecord
from pytest_p3monitor.store import open_store
from pytest_p3monitor.store.sql import SQLStore

pytest_plugins = ["pg_fixtures"]


def fill(url: str, runs: int, first: int = 0) -> None:
    store = open_store(url)
    for i in range(first, first + runs):
        run = RunInfo(
            run_id=f"run{i}",
            started_at=1_000_000.0 + i,
            commit=f"c{i}",
            branch="main" if i % 2 else "feature/x",
            ci=CIInfo("github", str(i), "tests", f"https://ci/{i}"),
            hostname="runner",
            python="3.11",
            pytest="9",
            workers=i % 3,
            finished_at=1_000_010.0 + i,
            exit_status=i % 2,
        )
        tests = [
            TestRecord(
                nodeid=f"tests/test_{j % 7}.py::test_{j}[ü]",
                outcome="failed" if (i + j) % 5 == 0 else "passed",
                file=f"tests/test_{j % 7}.py",
                line=j,
                setup_s=0.25,
                call_s=0.5 + j,
                teardown_s=0.125,
                start=1_000_000.0 + i + j,
                stop=1_000_001.0 + i + j,
                reruns=(i + j) % 2,
                worker=f"gw{j % 2}",
                message="boom ✗" if (i + j) % 5 == 0 else None,
                figures={"rss_bytes_peak": float(j * 1024)} if j % 2 else {},
            )
            for j in range(25 + i)  # the suite grows
        ]
        store.save_run(run, tests, {"health_score": 90 - i, "phases": {"setup": 1.5}})
    store.close()


def snapshot(url: str) -> list[tuple[Any, ...]]:
    """Every run (without its store-local sequence number) and every result."""
    store = open_store(url, create=False)
    assert isinstance(store, SQLStore)
    try:
        out = []
        for row in reversed(store.recent_runs(limit=10_000)):
            fields = {k: v for k, v in row._asdict().items() if k != "run_seq"}
            out.append((repr(fields), store.run_tests(row.run_seq)))
        return out
    finally:
        store.close()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return str(tmp_path / "results.db")


@pytest.mark.needs_postgres
def test_sqlite_to_postgresql_and_back(
    sqlite_url: str, postgres_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fill(sqlite_url, 12)
    assert main(["migrate-store", "--from", sqlite_url, "--to", postgres_url]) == 0
    out = capsys.readouterr().out
    assert "copied 12 runs" in out and "0 runs were already there" in out
    assert snapshot(postgres_url) == snapshot(sqlite_url)

    back = str(tmp_path / "back.db")
    assert main(["migrate-store", "--from", postgres_url, "--to", back, "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert (data["copied_runs"], data["skipped_runs"]) == (12, 0)
    assert data["copied_results"] == sum(25 + i for i in range(12))
    assert snapshot(back) == snapshot(sqlite_url)


@pytest.mark.needs_postgres
def test_copy_again_copies_only_what_is_missing(sqlite_url: str, postgres_url: str) -> None:
    fill(sqlite_url, 5)
    main(["migrate-store", "--from", sqlite_url, "--to", postgres_url, "-q"])
    fill(sqlite_url, 3, first=5)  # the old store kept running meanwhile
    fill(postgres_url, 2, first=100)  # and the new one got its own runs
    source = open_store(sqlite_url, create=False)
    target = open_store(postgres_url)
    assert isinstance(source, SQLStore) and isinstance(target, SQLStore)
    try:
        counts = copy_store(source, target)
        assert counts == {"runs": 3, "results": 25 + 5 + 25 + 6 + 25 + 7, "skipped": 5}
        assert copy_store(source, target)["runs"] == 0
        assert len(target.run_ids()) == 10
    finally:
        source.close()
        target.close()


def test_sqlite_to_sqlite_in_batches(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from pytest_p3monitor.cli import migrate

    monkeypatch.setattr(migrate, "BATCH", 3)  # several pages of runs
    src, dst = str(tmp_path / "a.db"), str(tmp_path / "b" / "c.db")
    fill(src, 8)
    assert main(["migrate-store", "--from", src, "--to", dst]) == 0
    assert snapshot(dst) == snapshot(src)


def test_missing_source_is_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    dst = tmp_path / "new.db"
    code = main(["migrate-store", "--from", str(tmp_path / "none.db"), "--to", str(dst)])
    assert code == 2
    err = capsys.readouterr().err
    assert "p3monitor: error: --from: no results store at" in err
    assert not dst.exists()


def test_same_store_is_refused(sqlite_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    fill(sqlite_url, 1)
    assert main(["migrate-store", "--from", sqlite_url, "--to", sqlite_url]) == 2
    assert "name the same store" in capsys.readouterr().err


@pytest.mark.needs_postgres
def test_unreachable_target_is_a_clear_error_without_the_password(
    sqlite_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    fill(sqlite_url, 1)
    url = f"postgresql://team:pa55word@127.0.0.1:{port}/results"
    assert main(["migrate-store", "--from", sqlite_url, "--to", url]) == 2
    err = capsys.readouterr().err
    assert "--to: cannot reach the PostgreSQL results store" in err
    assert "pa55word" not in err
