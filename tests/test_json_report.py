"""The report builder's pure parts."""

from __future__ import annotations

import datetime as dt
import math

from hypothesis import given
from hypothesis import strategies as st

from pytest_p3monitor.records import RunInfo, TestRecord
from pytest_p3monitor.report.json_report import (
    SCHEMA,
    SLOWEST,
    build,
    durations_of,
    entries_of,
    iso,
    slowest,
)


@given(st.floats(min_value=0, max_value=4e9, allow_nan=False))
def test_iso_matches_datetime(ts: float) -> None:
    expected = dt.datetime.fromtimestamp(ts, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    assert iso(ts) == expected


def test_build_counts_and_slowest() -> None:
    run = RunInfo(run_id="r", started_at=100.0, finished_at=110.0)
    tests = [
        TestRecord(nodeid="a", outcome="passed", call_s=3.0, start=101.0, stop=104.0),
        TestRecord(nodeid="b", outcome="failed", call_s=1.0, start=101.5, stop=102.5),
        TestRecord(nodeid="c", outcome="skipped", start=105.0, stop=105.0),
        TestRecord(nodeid="d", outcome="xfailed", call_s=0.5, start=105.0, stop=106.0),
    ]
    report = build(run, tests)
    assert report["schema"] == SCHEMA
    perf = report["metrics"]["performance"]
    assert perf["total_time_s"] == 10.0
    assert perf["test_execution_time_s"] == 5.0  # first start to last stop
    assert perf["tests_duration_sum_s"] == 4.5
    assert [s["nodeid"] for s in perf["slowest"][:2]] == ["a", "b"]
    rel = report["metrics"]["reliability"]
    assert (rel["tests"], rel["passed"], rel["failed"], rel["skipped"], rel["xfailed"]) == (
        4, 1, 1, 1, 1,
    )  # fmt: skip
    assert rel["success_rate"] == round(100 * 2 / 3, 4)
    assert report["tests"] == []  # a view of the records, made when the report is consumed
    entries = entries_of(tests)
    assert [e["nodeid"] for e in entries] == ["a", "b", "c", "d"]
    assert entries[0]["start"] == "1970-01-01T00:01:41.000000Z"
    assert entries[0]["duration_s"] == 3.0


def test_fmt_bytes() -> None:
    from pytest_p3monitor.report.terminal import fmt_bytes

    assert fmt_bytes(None) == "n/a"
    assert fmt_bytes(None, "") == ""
    assert fmt_bytes(512) == "512 B"
    assert fmt_bytes(48_000_000) == "45.8 MiB"
    assert fmt_bytes(3 * 2**40) == "3072.0 GiB"


@given(
    st.lists(
        st.sampled_from([0.0, 0.5, 1.0, 1.5, 2.0, math.nan, math.inf]) | st.floats(0, 5),
        max_size=30,
    )
)
def test_slowest_is_the_stable_sort(calls: list[float]) -> None:
    tests = [TestRecord(nodeid=f"t::{i}", call_s=c, setup_s=0.25) for i, c in enumerate(calls)]
    ranked = sorted(tests, key=lambda t: t.duration_s, reverse=True)[:SLOWEST]
    # equal durations in the tests' order (and with a nan, whatever order the sort makes)
    assert [s["nodeid"] for s in slowest(tests)] == [t.nodeid for t in ranked]
    assert [repr(d) for d in durations_of(tests)] == [repr(t.duration_s) for t in tests]


def test_counts_of_a_session_that_all_passed() -> None:
    run = RunInfo(run_id="r", started_at=100.0, finished_at=110.0)
    tests = [TestRecord(nodeid=f"t::{i}", reruns=i % 2) for i in range(5)]
    rel = build(run, tests)["metrics"]["reliability"]
    assert (rel["tests"], rel["passed"], rel["failed"], rel["errors"], rel["reruns"]) == (
        5, 5, 0, 0, 2,
    )  # fmt: skip
