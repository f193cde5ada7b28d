"""``p3monitor prune --older-than DURATION`` on both backends, and its duration parser."""

from __future__ import annotations

import json
import re
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pytest_p3monitor.cli import main
from pytest_p3monitor.cli.prune import UNITS, parse_duration
from pytest_p3monitor.records import RunInfo, TestRecord
from pytest_p3monitor.store import Store, open_store

pytest_plugins = ["pg_fixtures"]

DAY = 86400.0


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("90d", 90 * DAY),
        ("12h", 12 * 3600.0),
        ("2w", 14 * DAY),
        ("30m", 1800.0),
        ("45s", 45.0),
        ("1.5d", 1.5 * DAY),
        (" 7 D ", 7 * DAY),
        (".5h", 1800.0),
    ],
)
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("90", "expected a number and a unit"),
        ("d", "expected a number and a unit"),
        ("90x", "expected a number and a unit"),
        ("5 days", "expected a number and a unit"),
        ("-5d", "expected a number and a unit"),
        ("1e3d", "expected a number and a unit"),
        ("", "expected a number and a unit"),
        ("0d", "more than zero"),
        ("0.0h", "more than zero"),
        ("999999w", "under 1000 years"),
    ],
)
def test_bad_durations_say_what_is_expected(text: str, why: str) -> None:
    with pytest.raises(ValueError, match=why) as e:
        parse_duration(text)
    assert repr(text) in str(e.value)


@given(st.integers(1, 10_000), st.sampled_from(sorted(UNITS)))
def test_number_and_unit(n: int, unit: str) -> None:
    assert parse_duration(f"{n}{unit}") == n * UNITS[unit]


@given(st.text(max_size=12))
def test_any_text_is_a_positive_duration_or_a_value_error(text: str) -> None:
    if re.fullmatch(r"\s*[\d.]+\s*[smhdwSMHDW]\s*", text) is None:
        with pytest.raises(ValueError, match="invalid duration"):
            parse_duration(text)
        return
    try:
        seconds = parse_duration(text)
    except ValueError as exc:  # a well-formed text that is zero, too long or not a number
        message = str(exc)
    else:
        assert 0 < seconds <= 1000 * 365 * DAY
        return
    assert "invalid duration" in message


@pytest.fixture
def old_and_new(store_url: str) -> str:
    """A store with runs 100, 50 and 1 day(s) old."""
    store: Store = open_store(store_url)
    now = time.time()
    for age in (100, 50, 1):
        tests = [TestRecord(nodeid=f"t.py::test_{age}"), TestRecord(nodeid="t.py::test_all")]
        store.save_run(RunInfo(run_id=f"age{age}", started_at=now - age * DAY), tests, {})
    store.close()
    return store_url


def run_ids(url: str) -> list[str]:
    store = open_store(url, create=False)
    try:
        return [r.run.run_id for r in store.recent_runs()]
    finally:
        store.close()


def test_prune_older_than(old_and_new: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["prune", "--older-than", "60d", "--db", old_and_new]) == 0
    out = capsys.readouterr().out
    assert out.startswith("deleted 1 run started before ")
    assert run_ids(old_and_new) == ["age1", "age50"]
    assert main(["prune", "--older-than", "2w", "--db", old_and_new, "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["deleted_runs"] == 1
    assert data["older_than"].endswith("Z")
    assert run_ids(old_and_new) == ["age1"]
    assert main(["prune", "--older-than", "2w", "--db", old_and_new]) == 0
    assert capsys.readouterr().out.startswith("deleted 0 runs")


def test_prune_uses_p3monitor_db(
    old_and_new: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("P3MONITOR_DB", old_and_new)
    assert main(["prune", "--older-than", "10d"]) == 0
    assert run_ids(old_and_new) == ["age1"]


def test_bad_duration_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as e:
        main(["prune", "--older-than", "90 days"])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "invalid duration '90 days'" in err
    assert "90d, 12h, 2w" in err


def test_older_than_is_required(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["prune"])
    assert "--older-than" in capsys.readouterr().err


def test_missing_store_is_a_clear_error(
    tmp_path: object, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = f"{tmp_path}/nothing/results.db"
    assert main(["prune", "--older-than", "1d", "--db", missing]) == 2
    assert "no results store" in capsys.readouterr().err
