"""The p3monitor command: runs and history, in each format, and its errors."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pytest_p3monitor.cli import main
from pytest_p3monitor.records import RunInfo, TestRecord
from pytest_p3monitor.store.sqlite import SQLiteStore


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "results.db"
    store = SQLiteStore(path)
    now = time.time()
    for i, outcome in enumerate(["passed", "failed", "passed"]):
        run = RunInfo(run_id=f"run{i}", started_at=now - 100 + i, commit=f"c{i}", branch="main")
        run.finished_at = run.started_at + 1
        tests = [
            TestRecord(
                nodeid="t.py::test_a",
                outcome=outcome,
                call_s=0.5,
                message=None if outcome == "passed" else "boom | pipe",
            ),
            TestRecord(nodeid="t.py::test_b", outcome="skipped"),
        ]
        store.save_run(run, tests, {"health_score": 90.0 + i})
    store.close()
    return path


def test_runs_table(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["runs", "--db", str(db)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split()[:3] == ["run", "started", "(UTC)"]
    assert [ln.split()[0] for ln in out[2:]] == ["run2", "run1", "run0"]
    assert out[3].split()[-3:] == ["1", "0", "0.5"]  # failed, success %, time


def test_runs_json(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["runs", "--db", str(db), "--format", "json", "--limit", "2"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [r["id"] for r in data] == ["run2", "run1"]
    assert data[1]["failed"] == 1 and data[1]["success_rate"] == 0.0
    assert data[0]["health_score"] == 92.0


def test_history_formats(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["history", "t.py::test_a", "--db", str(db), "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [(h["commit"], h["outcome"]) for h in data] == [
        ("c0", "passed"),
        ("c1", "failed"),
        ("c2", "passed"),
    ]
    assert main(["history", "t.py::test_a", "--db", str(db), "--format", "markdown"]) == 0
    md = capsys.readouterr().out.splitlines()
    assert md[0].startswith("| run |") and md[1].startswith("|---|")
    assert "boom \\| pipe" in md[3]


def test_unknown_test_and_missing_store(
    db: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["history", "nope", "--db", str(db)]) == 2
    assert "no results for 'nope'" in capsys.readouterr().err
    missing = tmp_path / "none.db"
    assert main(["runs", "--db", str(missing)]) == 2
    assert "no results store at" in capsys.readouterr().err
    assert not missing.exists()


def test_default_store_found_in_a_parent(
    db: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / ".p3monitor").mkdir()
    db.rename(tmp_path / ".p3monitor" / "results.db")
    sub = tmp_path / "a" / "b"
    sub.mkdir(parents=True)
    monkeypatch.chdir(sub)
    monkeypatch.delenv("P3MONITOR_DB", raising=False)
    assert main(["runs", "--format", "json"]) == 0
    assert len(json.loads(capsys.readouterr().out)) == 3


def test_console_script_installed(db: Path) -> None:
    out = subprocess.run(
        [Path(sys.executable).with_name("p3monitor"), "runs", "--db", str(db)],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "run2" in out.stdout
