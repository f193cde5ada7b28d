"""Each JUnit XML test case carries the test's p3monitor figures as properties."""

from __future__ import annotations

import json
import math
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pytest_p3monitor.exporters.junit import PREFIX, format_value, properties_for

SUITE = """
    import time

    def test_quick():
        pass

    def test_sleepy():
        time.sleep(0.05)

    def test_broken():
        assert 0
"""


def cases(path: Path) -> dict[str, dict[str, str]]:
    """testcase name -> {property name: value}."""
    root = ET.parse(path).getroot()
    result: dict[str, dict[str, str]] = {}
    for case in root.iter("testcase"):
        props = {p.get("name", ""): p.get("value", "") for p in case.iter("property")}
        result[case.get("name", "")] = props
    return result


# -- pure -------------------------------------------------------------------------------------


def test_properties_for() -> None:
    props = properties_for(
        setup_s=0.25,
        call_s=1.5,
        teardown_s=0.0,
        reruns=2,
        worker="gw1",
        figures={"rss_bytes_peak": 1048576.0, "cpu_percent_peak": 12.345678, "nested": {"a": 1}},
    )
    assert props == [
        ("p3monitor_duration_s", "1.75"),
        ("p3monitor_setup_s", "0.25"),
        ("p3monitor_call_s", "1.5"),
        ("p3monitor_teardown_s", "0"),
        ("p3monitor_reruns", "2"),
        ("p3monitor_worker", "gw1"),
        ("p3monitor_cpu_percent_peak", "12.345678"),
        ("p3monitor_rss_bytes_peak", "1048576"),
    ]


def test_properties_for_leaves_out_what_was_not_measured() -> None:
    props = dict(properties_for(setup_s=0, call_s=0, teardown_s=0, figures={"x": None}))
    assert set(props) == {f"{PREFIX}{n}" for n in ("duration_s", "setup_s", "call_s", "teardown_s")}


@pytest.mark.parametrize(
    ("value", "text"),
    [(None, None), (True, "true"), (3, "3"), (2.0, "2"), (0.1234567, "0.123457"), (-0.0, "0"),
     (math.nan, None), (math.inf, None), ("gw0", "gw0"), ("", None)],
)  # fmt: skip
def test_format_value(value: object, text: str | None) -> None:
    assert format_value(value) == text


@given(st.floats(allow_nan=False, allow_infinity=False, min_value=-1e12, max_value=1e12))
def test_format_value_is_close(value: float) -> None:
    text = format_value(value)
    assert text is not None
    assert abs(float(text) - value) <= 5e-7 + 1e-9 * abs(value)


# -- with pytest's junitxml -------------------------------------------------------------------


@pytest.mark.parametrize("family", ["xunit2", "xunit1"])
def test_junitxml_testcases_carry_properties(pytester: pytest.Pytester, family: str) -> None:
    pytester.makeini(f"[pytest]\njunit_family = {family}\n")
    pytester.makepyfile(test_suite=SUITE)
    result = pytester.runpytest("--p3monitor", "--junitxml=junit.xml", "-W", "error")
    result.assert_outcomes(passed=2, failed=1)
    assert "record_property" not in result.stdout.str()
    assert "warning" not in result.stdout.str().lower().split("short test summary")[0]
    found = cases(pytester.path / "junit.xml")
    assert set(found) == {"test_quick", "test_sleepy", "test_broken"}
    for props in found.values():
        for name in ("duration_s", "setup_s", "call_s", "teardown_s"):
            assert f"p3monitor_{name}" in props
        total = sum(float(props[f"p3monitor_{n}"]) for n in ("setup_s", "call_s", "teardown_s"))
        assert float(props["p3monitor_duration_s"]) == pytest.approx(total, abs=3e-6)
    assert float(found["test_sleepy"]["p3monitor_call_s"]) >= 0.05


def test_junitxml_carries_the_tests_resource_figures(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_suite=SUITE)
    pytester.runpytest("--p3monitor", "--junitxml=junit.xml", "--p3monitor-json=r.json")
    import json

    tests = {t["nodeid"]: t for t in json.loads((pytester.path / "r.json").read_text())["tests"]}
    own = {
        k
        for k, v in tests["test_suite.py::test_sleepy"].items()
        if isinstance(v, (int, float))
        and k not in ("line", "duration_s", "setup_s", "call_s", "teardown_s", "reruns")
    }
    props = cases(pytester.path / "junit.xml")["test_sleepy"]
    # every per-test figure of the JSON report is a property of the test case too
    assert {f"p3monitor_{k}" for k in own} <= set(props)


def test_junitxml_without_p3monitor_has_no_properties(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_suite=SUITE)
    pytester.runpytest("--junitxml=junit.xml")
    assert all(props == {} for props in cases(pytester.path / "junit.xml").values())


def test_junitxml_keeps_record_property(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\njunit_family = xunit1\n")
    pytester.makepyfile("def test_a(record_property):\n    record_property('mine', 7)\n")
    pytester.runpytest("--p3monitor", "--junitxml=junit.xml")
    props = cases(pytester.path / "junit.xml")["test_a"]
    assert props["mine"] == "7"
    assert "p3monitor_duration_s" in props


def test_junitxml_counts_reruns(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_flips_once="""
        import pathlib

        def test_flaky():
            marker = pathlib.Path("ran-once")
            if not marker.exists():
                marker.write_text("x")
                assert 0, "first time"
        """
    )
    result = pytester.runpytest("--p3monitor", "--junitxml=junit.xml", "--reruns", "2")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*1 passed, 1 rerun*"])
    props = cases(pytester.path / "junit.xml")["test_flaky"]
    assert props["p3monitor_reruns"] == "1"


def test_junitxml_reruns_count_attempts_when_the_teardown_fails_too(
    pytester: pytest.Pytester,
) -> None:
    """Each failed attempt reports its call and its teardown as reruns: two attempts ran
    again, not four."""
    pytester.makepyfile(
        test_td="""
        import pytest

        @pytest.fixture
        def broken_teardown():
            yield
            raise RuntimeError("teardown broke")

        def test_both_fail(broken_teardown):
            assert 0
        """
    )
    pytester.runpytest("--p3monitor", "--junitxml=junit.xml", "--reruns", "2")
    root = ET.parse(pytester.path / "junit.xml").getroot()
    reruns = [
        p.get("value")
        for case in root.iter("testcase")
        for p in case.iter("property")
        if p.get("name") == "p3monitor_reruns"
    ]
    assert reruns[-1] == "2"


def test_junitxml_call_time_counts_subtests_once(pytester: pytest.Pytester) -> None:
    """A subtest's report is part of its test's call: its time is not added again (the
    JSON report and the store say the same)."""
    pytester.makepyfile(
        test_sub="""
        import time

        def test_parts(subtests):
            for i in range(3):
                with subtests.test(i=i):
                    time.sleep(0.05)
        """
    )
    pytester.runpytest("--p3monitor", "--junitxml=junit.xml", "--p3monitor-json=r.json")
    call_s = float(cases(pytester.path / "junit.xml")["test_parts"]["p3monitor_call_s"])
    (entry,) = json.loads((pytester.path / "r.json").read_text())["tests"]
    assert 0.15 <= call_s < 0.29
    assert call_s == pytest.approx(entry["call_s"], abs=0.002)


def test_junitxml_under_xdist(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_suite=SUITE)
    result = pytester.runpytest_subprocess(
        "--p3monitor", "--junitxml=junit.xml", "-n", "2", "-p", "no:cacheprovider"
    )
    result.assert_outcomes(passed=2, failed=1)
    found = cases(pytester.path / "junit.xml")
    assert set(found) == {"test_quick", "test_sleepy", "test_broken"}
    for props in found.values():
        assert props["p3monitor_worker"] in ("gw0", "gw1")
        assert float(props["p3monitor_duration_s"]) >= 0
