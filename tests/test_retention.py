"""ini ``p3monitor_retention_days``: each session prunes older runs, on both backends."""

from __future__ import annotations

import time

import pytest

from pytest_p3monitor.records import RunInfo, TestRecord
from pytest_p3monitor.store import open_store

pytest_plugins = ["pg_fixtures"]

DAY = 86400.0
SUITE = """
def test_ok():
    pass
"""


def seed(url: str, *ages_days: float) -> None:
    store = open_store(url)
    now = time.time()
    for age in ages_days:
        run = RunInfo(run_id=f"age{age:g}", started_at=now - age * DAY)
        store.save_run(run, [TestRecord(nodeid=f"old.py::test_{age:g}")], {})
    store.close()


def run_ids(url: str) -> set[str]:
    store = open_store(url, create=False)
    try:
        return {r.run.run_id for r in store.recent_runs(limit=100)}
    finally:
        store.close()


def session(pytester: pytest.Pytester, url: str, ini: str | None) -> pytest.RunResult:
    pytester.makepyfile(test_suite=SUITE)
    pytester.makeini(f"[pytest]\n{ini}\n" if ini else "[pytest]\n")
    return pytester.runpytest("--p3monitor", f"--p3monitor-db={url}")


def test_retention_prunes_at_session_end(pytester: pytest.Pytester, store_url: str) -> None:
    seed(store_url, 100, 40, 2)
    result = session(pytester, store_url, "p3monitor_retention_days = 30")
    assert result.ret == pytest.ExitCode.OK
    result.stdout.fnmatch_lines(["*retention: deleted 2 runs older than 30 days*"])
    ids = run_ids(store_url)
    assert "age2" in ids and "age40" not in ids and "age100" not in ids
    assert len(ids) == 2  # the seeded recent run and this session's run


def test_a_retention_shorter_than_the_session_keeps_its_own_run(
    pytester: pytest.Pytester, store_url: str
) -> None:
    seed(store_url, 1)
    pytester.makepyfile(test_slow="import time\ndef test_slow(): time.sleep(0.5)")
    pytester.makeini("[pytest]\np3monitor_retention_days = 0.000001\n")  # 0.09 s
    result = pytester.runpytest("--p3monitor", f"--p3monitor-db={store_url}")
    result.stdout.fnmatch_lines(["*retention: deleted 1 run older than 1e-06 days*"])
    ids = run_ids(store_url)
    assert len(ids) == 1 and "age1" not in ids  # the session's own run stays


def test_fractional_days(pytester: pytest.Pytester, store_url: str) -> None:
    seed(store_url, 1, 0.25)
    result = session(pytester, store_url, "p3monitor_retention_days = 0.5")
    result.stdout.fnmatch_lines(["*retention: deleted 1 run older than 0.5 days*"])
    assert "age0.25" in run_ids(store_url)


def test_without_retention_nothing_is_pruned(pytester: pytest.Pytester, tmp_path: object) -> None:
    url = f"{tmp_path}/results.db"
    seed(url, 3000)
    result = session(pytester, url, None)
    assert result.ret == pytest.ExitCode.OK
    result.stdout.no_fnmatch_line("*retention: deleted*")
    assert "age3000" in run_ids(url)


@pytest.mark.parametrize("value", ["abc", "-3", "0", "nan"])
def test_bad_retention_is_a_usage_error(
    pytester: pytest.Pytester, tmp_path: object, value: str
) -> None:
    result = session(pytester, f"{tmp_path}/results.db", f"p3monitor_retention_days = {value}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [f"*ini p3monitor_retention_days = '{value}' is not valid*a number of days*"]
    )


def test_unusable_store_means_one_warning_and_no_prune(pytester: pytest.Pytester) -> None:
    bad = pytester.path / "results.db"
    bad.write_bytes(b"not a database at all" * 20)
    result = session(pytester, str(bad), "p3monitor_retention_days = 30")
    assert result.ret == pytest.ExitCode.OK
    text = result.stdout.str()
    assert text.count("results store not used") == 1
    assert "pruning" not in text and "retention:" not in text
