"""``p3monitor flaky`` over a store written through the Store API."""

from __future__ import annotations

import json
import random
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from pytest_p3monitor import cli
from pytest_p3monitor.records import RunInfo, TestRecord
from pytest_p3monitor.store.base import Store
from pytest_p3monitor.store.sqlite import FAILING_INDEX, SQLiteStore

#: per test: one letter per run (P passed, F failed, R passed on a rerun, S skipped, . absent)
HISTORY = {
    "tests/test_a.py::test_wild": "PFPFPFPFPF",
    "tests/test_a.py::test_mild": "PPPPFPPPPP",
    "tests/test_a.py::test_rerun": "PPPPPPPPPR",
    "tests/test_b.py::test_regressed": "PPPPPPFFFF",
    "tests/test_b.py::test_fixed": "FFFFPPPPPP",
    "tests/test_b.py::test_failing": "FFFFFFFFFF",
    "tests/test_b.py::test_stable": "PPPPPPPPPP",
    "tests/test_b.py::test_skipped": "SSSSSSSSSS",
    "tests/test_b.py::test_new": "........PP",
}
#: the commit of each run: two runs per commit, so same-commit flips show
COMMITS = ["c0", "c0", "c1", "c1", "c2", "c2", "c3", "c3", "c4", "c4"]
LETTERS: dict[str, tuple[Any, int]] = {
    "P": ("passed", 0),
    "F": ("failed", 0),
    "R": ("passed", 1),
    "S": ("skipped", 0),
}


def build(db: Path, history: dict[str, str], commits: list[str], branch: str = "main") -> None:
    with SQLiteStore(db) as store:
        for i, commit in enumerate(commits):
            tests = []
            for nodeid, letters in history.items():
                if letters[i] == ".":
                    continue
                outcome, reruns = LETTERS[letters[i]]
                message = "AssertionError: boom" if outcome == "failed" or reruns else None
                tests.append(TestRecord(nodeid, outcome=outcome, reruns=reruns, message=message))
            run = RunInfo(
                run_id=f"{branch}-{i}",
                started_at=1_700_000_000.0 + 60 * i,
                commit=commit,
                branch=branch,
            )
            store.save_run(run, tests, {})


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "results.db"
    build(path, HISTORY, COMMITS)
    return path


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def as_json(capsys: pytest.CaptureFixture[str], db: Path, *args: str) -> list[dict[str, Any]]:
    code, out, _ = run_cli(capsys, "flaky", "--db", str(db), "--format", "json", *args)
    assert code == 0
    data: list[dict[str, Any]] = json.loads(out)
    return data


def test_json_lists_flaky_tests_highest_score_first(
    db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    listed = as_json(capsys, db)
    assert [t["nodeid"] for t in listed] == [
        "tests/test_a.py::test_wild",  # flips on every run
        "tests/test_a.py::test_mild",  # failed once: two flips
        "tests/test_a.py::test_rerun",  # one flip, inside its last run
    ]
    assert all(t["status"] == "flaky" for t in listed)
    scores = [t["score"] for t in listed]
    assert scores == sorted(scores, reverse=True)
    wild = listed[0]
    assert (wild["runs"], wild["failures"], wild["flips"]) == (10, 5, 9)
    assert wild["evidence"] == ["same-commit", "intermittent"]
    assert wild["flaky_commits"] == COMMITS[::2]
    assert wild["last_failure"] == "AssertionError: boom"
    rerun = listed[2]
    assert rerun["evidence"] == ["rerun"]
    assert rerun["failures"] == 0
    assert rerun["rerun_passes"] == 1


def test_all_lists_every_test_with_its_status(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    statuses = {t["nodeid"].split("::")[1]: t["status"] for t in as_json(capsys, db, "--all")}
    assert statuses == {
        "test_wild": "flaky",
        "test_mild": "flaky",
        "test_rerun": "flaky",
        "test_regressed": "regressed",
        "test_fixed": "fixed",
        "test_failing": "failing",
        "test_stable": "passing",
        "test_skipped": "skipped",
        "test_new": "insufficient-data",
    }
    for entry in as_json(capsys, db, "--all"):
        assert {"nodeid", "status", "score", "runs", "failures"} <= set(entry)


def test_window(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # the last 4 runs: test_mild's one failure (run 5, on c2) is out of it
    names = [t["nodeid"].split("::")[1] for t in as_json(capsys, db, "--window", "4")]
    assert names == ["test_wild", "test_rerun"]
    every = {t["nodeid"].split("::")[1]: t for t in as_json(capsys, db, "--all", "--window", "4")}
    assert every["test_regressed"]["status"] == "failing"
    assert every["test_mild"]["runs"] == 4


def test_branch(db: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    build(db, {"tests/test_a.py::test_wild": "PPPP"}, ["d0", "d1", "d2", "d3"], branch="dev")
    assert as_json(capsys, db, "--branch", "dev") == []
    dev = as_json(capsys, db, "--branch", "dev", "--all")
    assert [(t["nodeid"], t["status"], t["runs"]) for t in dev] == [
        ("tests/test_a.py::test_wild", "passing", 4)
    ]
    assert len(as_json(capsys, db, "--branch", "main")) == 3


@pytest.mark.parametrize("fmt", ["table", "markdown"])
def test_table_formats(db: Path, capsys: pytest.CaptureFixture[str], fmt: str) -> None:
    code, out, _ = run_cli(capsys, "flaky", "--db", str(db), "--format", fmt)
    assert code == 0
    lines = out.splitlines()
    header = lines[0]
    for column in ("test", "status", "score", "fail rate", "runs", "failures", "evidence"):
        assert column in header
    if fmt == "markdown":
        assert header.startswith("| test |")
        assert lines[1].startswith("|---|")
    body = [line for line in lines[2:] if "tests/" in line]
    assert len(body) == 3
    assert "tests/test_a.py::test_wild" in body[0]
    assert "50%" in body[0]
    assert "both outcomes on 1 commit" in body[1]
    assert "passed on rerun x1" in body[2]
    assert lines[-1] == "3 flaky tests in the last 100 runs"


def test_table_all_counts_tests(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _, out, _ = run_cli(capsys, "flaky", "--db", str(db), "--all")
    assert out.splitlines()[-1] == "3 flaky tests among 9 tests in the last 100 runs"
    assert "regressed" in out


def test_no_flaky_tests(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "results.db"
    build(db, {"t.py::test_ok": "PPP"}, ["a", "a", "b"])
    code, out, _ = run_cli(capsys, "flaky", "--db", str(db))
    assert (code, out) == (0, "no flaky tests in the last 100 runs\n")
    assert as_json(capsys, db) == []


def test_missing_store_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_cli(capsys, "flaky", "--db", str(tmp_path / "nowhere.db"))
    assert code == 2
    assert out == ""
    assert err.startswith("p3monitor: error: no results store at")


@pytest.mark.parametrize("window", ["0", "-3", "many"])
def test_bad_window(tmp_path: Path, capsys: pytest.CaptureFixture[str], window: str) -> None:
    with pytest.raises(SystemExit) as exc:
        cli.main(["flaky", "--db", str(tmp_path / "x.db"), "--window", window])
    assert exc.value.code == 2
    assert "--window" in capsys.readouterr().err


# -- the store's fast path ---------------------------------------------------------------------


@pytest.mark.parametrize("with_index", [False, True])
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_failing_histories_matches_the_generic_filter(
    tmp_path: Path, with_index: bool, seed: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pytest_p3monitor.store import sql, sqlite

    if seed == 3:  # the picked tests' rows and the nodeids' ids in several queries each
        monkeypatch.setattr(sqlite, "_FAILING_CHUNK", 4)
        monkeypatch.setattr(sql, "_IN_CHUNK", 3)
    rng = random.Random(seed)
    db = tmp_path / "results.db"
    nodeids = [f"t.py::test_{i}" for i in range(30)]
    with SQLiteStore(db) as store:
        for i in range(40):
            run = RunInfo(
                run_id=f"r{i}",
                started_at=float(i),
                commit=f"c{i // 3}",
                branch=rng.choice(["main", "dev"]),
            )
            tests = [
                TestRecord(
                    n,
                    outcome=rng.choices(["passed", "failed", "error", "skipped"], [90, 4, 1, 5])[0],  # type: ignore[arg-type]
                    reruns=int(rng.random() < 0.03),
                )
                for n in nodeids
                if rng.random() < 0.9
            ]
            store.save_run(run, tests, {})
    if with_index:
        conn = sqlite3.connect(db)
        conn.execute(
            f"CREATE INDEX IF NOT EXISTS {FAILING_INDEX} ON p3m_results (run, test)"
            " WHERE outcome IN ('failed', 'error') OR reruns > 0"
        )
        conn.commit()
        conn.close()
    with SQLiteStore(db, create=False) as store:
        for window in (1, 5, 39, 40, 100):
            for branch in (None, "main", "dev", "nope"):
                fast = list(store.failing_histories(window, branch))
                generic = list(Store.failing_histories(store, window, branch))
                assert fast == generic
                # each test's last `window` results (by the primary key, several tests a
                # query), against its whole history read by the scan of the window of runs
                everything = dict(store.histories(1000, branch))
                last = {n: rows[-window:] for n, rows in everything.items()}
                assert dict(store.histories(window, branch, list(last))) == last
                assert all(
                    any(r.outcome in ("failed", "error") or r.reruns for r in rows)
                    for _, rows in fast
                )
        assert list(store.failing_histories(100))  # the data has failures at all
