"""Trends: per-day figures and the 24 h / 7 d / 30 d windows (pure)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pytest_p3monitor.records import RunInfo, RunRow
from pytest_p3monitor.trends import daily, percentile, run_peaks, summaries, summarize

NOW = dt.datetime(2026, 11, 29, 12, 0, tzinfo=dt.timezone.utc).timestamp()
HOUR = 3600.0
DAY = 24 * HOUR


def row(
    seq: int,
    started: float,
    *,
    tests: int = 10,
    failed: int = 0,
    skipped: int = 0,
    exec_time: float = 10.0,
    mem: float | None = None,
    rss: float | None = None,
) -> RunRow:
    metrics: dict[str, Any] = {}
    if mem is not None or rss is not None:
        metrics = {
            "metrics": {
                "resource_usage": {"process": {"memory_percent_peak": mem, "rss_bytes_peak": rss}}
            }
        }
    return RunRow(
        run_seq=seq,
        run=RunInfo(run_id=f"r{seq}", started_at=started),
        tests=tests,
        passed=tests - failed - skipped,
        failed=failed,
        errors=0,
        skipped=skipped,
        xfailed=0,
        xpassed=0,
        reruns=0,
        test_execution_time_s=exec_time,
        metrics=metrics,
    )


def test_percentile() -> None:
    assert percentile([1.0], 95) == 1.0
    assert percentile([1.0, 2.0, 3.0, 4.0, 5.0], 50) == 3.0
    assert percentile(list(map(float, range(1, 101))), 95) == pytest.approx(95.05)
    assert percentile([10.0, 0.0], 100) == 10.0
    with pytest.raises(ValueError):
        percentile([], 50)
    with pytest.raises(ValueError):
        percentile([1.0], 101)


def test_run_peaks() -> None:
    assert run_peaks(row(1, NOW, mem=55.5, rss=1e8)) == (55.5, 1e8)
    assert run_peaks(row(1, NOW)) == (None, None)
    odd = row(1, NOW)._replace(metrics={"metrics": {"resource_usage": 3}})
    assert run_peaks(odd) == (None, None)


def test_summarize() -> None:
    rows = [
        row(1, NOW, tests=10, failed=1, exec_time=10.0, mem=40.0),
        row(2, NOW, tests=10, skipped=2, exec_time=20.0, mem=70.0, rss=5e8),
    ]
    period = summarize("x", rows)
    assert period.runs == 2
    assert period.tests == 20
    assert period.success_rate == pytest.approx(100 * 17 / 18)
    assert period.ci_success_rate == 50.0
    assert period.mean_execution_time_s == 15.0
    assert period.p95_execution_time_s == pytest.approx(19.5)
    assert period.peak_memory_percent == 70.0
    assert period.peak_rss_bytes == 5e8
    # a run without tests (nothing collected) has no execution time: not a 0 in the mean
    with_none = summarize("z", [*rows, row(3, NOW, tests=0, exec_time=0.0)])
    assert (with_none.runs, with_none.mean_execution_time_s) == (3, 15.0)
    assert summarize("n", [row(4, NOW, tests=0, exec_time=0.0)]).mean_execution_time_s is None
    empty = summarize("y", [])
    assert empty.runs == 0
    assert empty.success_rate is None
    assert empty.mean_execution_time_s is None


def test_daily_groups_by_utc_day_within_the_window() -> None:
    rows = [
        row(1, NOW - 1 * HOUR, exec_time=10.0),
        row(2, NOW - 2 * HOUR, exec_time=30.0, failed=5),
        row(3, NOW - 1 * DAY, exec_time=5.0),
        row(4, NOW - 40 * DAY),  # outside 30 days
        row(5, NOW + HOUR),  # in the future: ignored
    ]
    days = daily(rows, NOW, days=30)
    assert [d.period for d in days] == ["2026-11-28", "2026-11-29"]
    today = days[1]
    assert today.runs == 2
    assert today.mean_execution_time_s == 20.0
    assert today.success_rate == 75.0
    assert [d.period for d in daily(rows, NOW, days=1)] == ["2026-11-29"]
    with pytest.raises(ValueError):
        daily(rows, NOW, days=0)


def test_summaries_windows() -> None:
    rows = [
        row(1, NOW - 1 * HOUR),
        row(2, NOW - 3 * DAY),
        row(3, NOW - 20 * DAY),
        row(4, NOW - 31 * DAY),
    ]
    out = summaries(rows, NOW)
    assert set(out) == {"last_24h", "last_7d", "last_30d"}
    assert out["last_24h"] is not None
    assert out["last_24h"]["runs"] == 1
    assert out["last_7d"] is not None
    assert out["last_7d"]["runs"] == 2
    assert out["last_30d"] is not None
    assert out["last_30d"]["runs"] == 3
    assert summaries([], NOW) == {"last_24h": None, "last_7d": None, "last_30d": None}


_rows = st.lists(
    st.builds(
        lambda seq, back, tests, failed, t: row(
            seq, NOW - back, tests=tests, failed=min(failed, tests), exec_time=t
        ),
        st.integers(0, 10_000),
        st.floats(min_value=0, max_value=40 * DAY),
        st.integers(0, 50),
        st.integers(0, 50),
        st.floats(min_value=0, max_value=1e4),
    ),
    max_size=30,
)


@given(_rows)
def test_days_partition_the_window(rows: list[RunRow]) -> None:
    days = daily(rows, NOW, days=30)
    window = summaries(rows, NOW)["last_30d"]
    in_days = sum(d.runs for d in days)
    # 30 calendar days, today included, reach back to a midnight between 29x24h and 30x24h
    assert in_days <= (window["runs"] if window else 0)
    assert in_days >= sum(1 for r in rows if NOW - 29 * DAY <= r.run.started_at <= NOW)
    assert [d.period for d in days] == sorted({d.period for d in days})
    for d in days:
        assert d.runs > 0
        if d.success_rate is not None:
            assert 0.0 <= d.success_rate <= 100.0
        # a day of runs that had no tests has no execution time
        measured = d.tests > 0
        assert (d.mean_execution_time_s is not None) == measured
        assert (d.p95_execution_time_s is not None) == measured
        if d.p95_execution_time_s is not None:
            assert d.p95_execution_time_s <= max(r.test_execution_time_s for r in rows) + 1e-9


@given(st.lists(st.floats(min_value=-1e6, max_value=1e6), min_size=1), st.floats(0, 100))
def test_percentile_between_min_and_max(values: list[float], q: float) -> None:
    assert min(values) <= percentile(values, q) <= max(values)
