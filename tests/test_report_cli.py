"""``p3monitor report``: one stored run as a table, Markdown, JSON or an HTML dashboard, on
both backends, and its errors."""

from __future__ import annotations

import errno
import json
import os
import re
import time
from pathlib import Path
from typing import Any

import pytest

from pytest_p3monitor.cli import main
from pytest_p3monitor.records import CIInfo, RunInfo, TestRecord
from pytest_p3monitor.report.html import render_html, safe_link, trend_chart
from pytest_p3monitor.report.run_report import build_stored
from pytest_p3monitor.report.text import one_line
from pytest_p3monitor.store import open_store
from pytest_p3monitor.store.sqlite import SQLiteStore
from pytest_p3monitor.trends import Period

pytest_plugins = ["pg_fixtures"]

NEWEST = "f00dcafe0000000000000000000000aa"
OLDER = "f00dbeef0000000000000000000000bb"
EVIL_TEST = 't.py::test_param[<script>alert("x")</script>&amp]'
EVIL_MESSAGE = "AssertionError: <b>boom</b> & 'more'\nsecond line"
BRANCH = "feature/<i>&"
CI_URL = "https://ci.example/build/7?a=1&b=2"


def _metrics(health_score: float | None = 91.5) -> dict[str, Any]:
    return {
        "health_score": health_score,
        "health": (
            {
                "reliability": 80.0,
                "performance": 100.0,
                "efficiency": 100.0,
                "user_satisfaction": 100.0,
                "score": health_score,
                "weights": {
                    "reliability": 0.4,
                    "performance": 0.3,
                    "efficiency": 0.2,
                    "user_satisfaction": 0.1,
                },
                "kpis": {
                    "success_rate": {
                        "component": "reliability",
                        "value": 75.0,
                        "target": 95.0,
                        "direction": "at_least",
                        "met": False,
                        "score": 25.0,
                    }
                },
            }
            if health_score is not None
            else None
        ),
        "metrics": {
            "performance": {"total_time_s": 42.0, "phases": {"collection": 1.5}},
            "reliability": {"flaky_in_session": []},
            "resource_usage": {
                "process": {
                    "cpu_percent_peak": 180.0,
                    "cpu_percent_mean": 90.0,
                    "rss_bytes_peak": 300 * 1024**2,
                    "memory_percent_peak": 12.5,
                },
                "containers": [
                    {
                        "id": "abc123",
                        "name": "db<1>",
                        "cpu_percent_peak": 55.0,
                        "cpu_percent_mean": 20.0,
                        "memory_bytes_peak": 512 * 1024**2,
                        "memory_percent_peak": 25.0,
                    }
                ],
            },
        },
        "alerts": [
            {
                "rule": "success_rate < 95%",
                "severity": "critical",
                "status": "crossed",
                "message": "success_rate is 75% (threshold: success_rate < 95%)",
            }
        ],
    }


def _tests(started: float, *, fail: bool, rerun: bool) -> list[TestRecord]:
    return [
        TestRecord(
            nodeid="t.py::test_slow", outcome="passed", call_s=3.0, start=started, stop=started + 3
        ),
        TestRecord(
            nodeid="t.py::test_flaky",
            outcome="passed",
            reruns=1 if rerun else 0,
            call_s=0.5,
            start=started + 3,
            stop=started + 3.5,
        ),
        TestRecord(
            nodeid=EVIL_TEST,
            outcome="failed" if fail else "passed",
            call_s=0.25,
            message=EVIL_MESSAGE if fail else None,
            start=started + 3.5,
            stop=started + 3.75,
        ),
        TestRecord(
            nodeid="t.py::test_skip", outcome="skipped", start=started + 4, stop=started + 4
        ),
    ]


def seed(url: str) -> None:
    """Five runs of four tests in the last hours: test_flaky passed on a rerun in the second,
    the parametrized test fails in the newest (OLDER is the fourth, NEWEST the fifth)."""
    store = open_store(url)
    now = time.time()
    try:
        for i in range(5):
            run_id = {3: OLDER, 4: NEWEST}.get(i, f"{i:032x}")
            started = now - 3600 + i * 600
            run = RunInfo(
                run_id=run_id,
                started_at=started,
                commit=f"c{i}",
                branch=BRANCH if i == 4 else "main",
                ci=CIInfo("github", f"9{i}", "tests", CI_URL if i == 4 else "javascript:alert(1)"),
                hostname="runner-1",
                python="3.11.7",
                pytest="8.3.3",
                workers=2,
                finished_at=started + 42,
                exit_status=1 if i == 4 else 0,
            )
            store.save_run(run, _tests(started, fail=i == 4, rerun=i == 1), _metrics())
    finally:
        store.close()


@pytest.fixture
def db(store_url: str) -> str:
    """A seeded store on each backend."""
    seed(store_url)
    return store_url


@pytest.fixture
def sqlite_db(tmp_path: Path) -> str:
    url = str(tmp_path / "results.db")
    seed(url)
    return url


def report_json(db: str, capsys: pytest.CaptureFixture[str], *extra: str) -> dict[str, Any]:
    assert main(["report", "--db", db, "--format", "json", *extra]) == 0
    data: dict[str, Any] = json.loads(capsys.readouterr().out)
    return data


# -- on both backends ------------------------------------------------------------------------


def test_table_of_the_newest_run(db: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", "--db", db]) == 0
    captured = capsys.readouterr()
    assert captured.err == ""
    out = captured.out
    lines = out.splitlines()
    assert lines[0] == f"run {NEWEST}: health score 91.5/100"
    assert f"  commit c4, branch {BRANCH}" in lines
    assert f"  CI github, job tests, run 94, {CI_URL}" in lines
    assert any(ln.startswith("  started ") and "duration 42s, exit status 1" in ln for ln in lines)
    assert "  python 3.11.7, pytest 8.3.3, workers 2, host runner-1" in lines
    # reliability: 4 tests, 2 passed, 1 failed, 1 skipped; 2 of 3 executed passed
    assert any(ln.split() == ["4", "2", "1", "0", "1", "0", "0", "0", "66.7%"] for ln in lines)
    assert any(ln.split()[:3] == ["t.py::test_slow", "passed", "3s"] for ln in lines)
    # the failure, on one line, its second line marked as cut
    assert f"{EVIL_TEST}  failed   0       AssertionError: <b>boom</b> & 'more' …" in out
    # the flaky test of the history, and how it did in this run
    assert any(ln.startswith("t.py::test_flaky ") and ln.endswith(" passed") for ln in lines)
    assert any(ln.split()[:2] == ["last_24h", "5"] for ln in lines)
    assert any(ln.startswith("container db<1>") for ln in lines)
    assert "critical: success_rate is 75% (threshold: success_rate < 95%)" in lines


def test_json_follows_the_report_schema(db: str, capsys: pytest.CaptureFixture[str]) -> None:
    data = report_json(db, capsys)
    assert set(data) >= {
        "schema",
        "timestamp",
        "run",
        "health_score",
        "health",
        "metrics",
        "tests",
        "flaky",
        "trends",
        "alerts",
        "recommendations",
    }
    assert data["schema"] == "p3monitor-report/1"
    run = data["run"]
    assert set(run) >= {
        "id",
        "commit",
        "branch",
        "ci",
        "started_at",
        "finished_at",
        "hostname",
        "python",
        "pytest",
        "workers",
    }
    assert run["id"] == NEWEST and run["branch"] == BRANCH and run["exit_status"] == 1
    assert run["ci"] == {"provider": "github", "run_id": "94", "job": "tests", "url": CI_URL}
    assert data["timestamp"] == run["finished_at"]
    assert data["health_score"] == 91.5 and data["health_source"] == "stored"
    assert set(data["health"]) >= {
        "reliability",
        "performance",
        "efficiency",
        "user_satisfaction",
        "weights",
    }
    perf = data["metrics"]["performance"]
    assert set(perf) >= {"total_time_s", "test_execution_time_s", "phases", "slowest"}
    assert perf["total_time_s"] == 42.0 and perf["phases"] == {"collection": 1.5}
    assert perf["slowest"][0] == {"nodeid": "t.py::test_slow", "duration_s": 3.0}
    rel = data["metrics"]["reliability"]
    assert {k: rel[k] for k in ("tests", "passed", "failed", "skipped", "errors", "reruns")} == {
        "tests": 4,
        "passed": 2,
        "failed": 1,
        "skipped": 1,
        "errors": 0,
        "reruns": 0,
    }
    assert set(rel) >= {"xfailed", "xpassed", "success_rate", "flaky_in_session"}
    usage = data["metrics"]["resource_usage"]
    assert usage["process"]["rss_bytes_peak"] == 300 * 1024**2
    assert usage["containers"][0]["name"] == "db<1>"
    tests = {t["nodeid"]: t for t in data["tests"]}
    assert len(data["tests"]) == 4
    assert tests[EVIL_TEST]["outcome"] == "failed"
    assert tests[EVIL_TEST]["message"] == EVIL_MESSAGE
    assert set(tests[EVIL_TEST]) >= {
        "duration_s",
        "setup_s",
        "call_s",
        "teardown_s",
        "reruns",
        "worker",
    }
    assert [f["nodeid"] for f in data["flaky"]] == ["t.py::test_flaky"]
    assert data["flaky"][0]["status"] == "flaky"
    assert data["flaky"][0]["session"] == {"outcome": "passed", "reruns": 0}
    assert set(data["trends"]) == {"last_24h", "last_7d", "last_30d"}
    assert data["trends"]["last_24h"]["runs"] == 5
    # five runs in the last hour: one UTC day, or two just after midnight
    assert sum(d["runs"] for d in data["trend_days"]) == 5
    assert len(data["trend_days"]) in (1, 2)
    assert data["alerts"][0]["severity"] == "critical"
    assert data["recommendations"] == []


def test_run_picks_another_run_by_id_or_its_start(
    db: str, capsys: pytest.CaptureFixture[str]
) -> None:
    data = report_json(db, capsys, "--run", OLDER)
    assert data["run"]["id"] == OLDER and data["run"]["branch"] == "main"
    assert data["metrics"]["reliability"]["failed"] == 0
    # trends stop at the run reported on: the newest run is after it
    assert data["trends"]["last_24h"]["runs"] == 4
    assert report_json(db, capsys, "--run", OLDER[:12])["run"]["id"] == OLDER
    assert report_json(db, capsys, "--run", "f00dc")["run"]["id"] == NEWEST


def test_ambiguous_and_unknown_run(db: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", "--db", db, "--run", "f00d"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("p3monitor: error: --run 'f00d' is the start of several run ids")
    assert NEWEST in captured.err and OLDER in captured.err
    assert "give more of the id" in captured.err
    assert main(["report", "--db", db, "--run", "F00D%"]) == 2
    err = capsys.readouterr().err
    assert "no run 'F00D%' in " in err
    assert "`p3monitor runs` lists the stored runs" in err
    assert "Traceback" not in err


def test_html_dashboard(db: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", "--db", db, "--format", "html"]) == 0
    page = capsys.readouterr().out
    assert page.startswith("<!DOCTYPE html>")
    assert page.rstrip().endswith("</html>")
    assert f"<code>{NEWEST}</code>" in page
    assert '<span class="num">92</span>' in page  # 91.5, rounded
    # cards, tables, the chart
    for title in ("Reliability", "Performance", "Resources (efficiency)"):
        assert f"<h3>{title}</h3>" in page
    assert "<h2>Failed and errored tests (1)</h2>" in page
    assert "<h2>Flaky tests known from history (1)</h2>" in page
    assert "<h2>Slowest tests</h2>" in page
    assert '<svg class="chart"' in page and page.count("<rect ") == 30
    # escaped: the node id, the message, the branch, the container name
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&amp;amp]" in page
    assert "AssertionError: &lt;b&gt;boom&lt;/b&gt; &amp; &#x27;more&#x27;\nsecond line" in page
    assert "<code>feature/&lt;i&gt;&amp;</code>" in page
    assert "container db&lt;1&gt;" in page
    assert "<script" not in page and "<b>" not in page and "<i>" not in page
    # the https CI URL is a link, escaped
    assert '<a href="https://ci.example/build/7?a=1&amp;b=2" rel="noopener noreferrer">' in page
    # self-contained: no script, stylesheet, image or font from elsewhere
    assert not re.search(r"<(script|link|img|iframe)\b|\bsrc=|@import|url\(", page)
    assert re.findall(r"https?://[^\s\"<]+", page) == [CI_URL.replace("&", "&amp;")] * 2


def test_html_of_a_run_whose_ci_url_is_not_http(
    db: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["report", "--db", db, "--format", "html", "--run", OLDER]) == 0
    page = capsys.readouterr().out
    assert "<dd>javascript:alert(1)</dd>" in page
    assert "<a " not in page
    assert "<h2>Failed and errored tests (0)</h2>" in page


def test_markdown(db: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", "--db", db, "--format", "markdown"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"## run {NEWEST}: health score 91.5/100\n")
    assert "- commit c4, branch feature/&lt;i&gt;&amp;" in out  # shown as written
    assert "### failed and errored tests" in out
    assert "| test | outcome | reruns | message |" in out
    assert "| t.py::test_slow | passed | 3s |" in out


# -- SQLite only: store-less paths and files --------------------------------------------------


def test_output_writes_the_file_only(
    sqlite_db: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "out" / "report.html"
    target.parent.mkdir()
    assert main(["report", "--db", sqlite_db, "--format", "html", "-o", str(target)]) == 0
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == f"report of run {NEWEST} written to {target}\n"
    assert target.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
    assert sorted(p.name for p in target.parent.iterdir()) == ["report.html"]
    assert main(["report", "--db", sqlite_db, "--format", "json", "--output", str(target)]) == 0
    assert json.loads(target.read_text(encoding="utf-8"))["run"]["id"] == NEWEST


def test_output_that_cannot_be_written(
    sqlite_db: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "no" / "such" / "report.html"
    assert main(["report", "--db", sqlite_db, "--output", str(missing)]) == 2
    err = capsys.readouterr().err
    assert f"the folder {missing.parent} does not exist" in err
    assert not (tmp_path / "no").exists()
    assert main(["report", "--db", sqlite_db, "--output", str(tmp_path)]) == 2
    assert "is a folder" in capsys.readouterr().err
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    assert main(["report", "--db", sqlite_db, "--output", str(a_file / "r.html")]) == 2
    assert f"the folder {a_file} does not exist" in capsys.readouterr().err


def test_output_never_replaces_a_database(
    sqlite_db: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`-o` naming the store itself (or any SQLite file) once replaced it with the report."""
    before = Path(sqlite_db).read_bytes()
    assert main(["report", "--db", sqlite_db, "--format", "html", "-o", sqlite_db]) == 2
    assert "is a SQLite database (a results store?): it was left as it was" in (
        capsys.readouterr().err
    )
    assert Path(sqlite_db).read_bytes() == before
    assert main(["runs", "--db", sqlite_db]) == 0


def test_output_with_the_longest_file_name(
    sqlite_db: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / ("r" * 250)  # the temporary file's name once went over 255
    assert main(["report", "--db", sqlite_db, "-o", str(target)]) == 0
    assert target.read_text(encoding="utf-8").startswith("run ")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["results.db", target.name])


def test_arguments_in_no_encoding_are_looked_up_cleaned(
    sqlite_db: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Bytes that are not UTF-8 from the shell (surrogates) were a traceback."""
    assert main(["report", "--db", sqlite_db, "--run", "\udcff"]) == 2
    assert "no run '?'" in capsys.readouterr().err
    assert main(["trends", "--db", sqlite_db, "--branch", "\udcff"]) == 0
    assert main(["runs", "--db", sqlite_db, "--branch", "\udcff"]) == 0


def test_markdown_shows_html_in_messages_as_written(
    sqlite_db: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["report", "--db", sqlite_db, "--format", "markdown"]) == 0
    out = capsys.readouterr().out
    assert "&lt;b&gt;boom&lt;/b&gt; &amp; 'more'" in out  # renders as written
    assert "<" not in out


def test_output_write_failure(
    sqlite_db: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    def full(path: Path, text: str) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr("pytest_p3monitor.cli.report.atomic_write_text", full)
    target = tmp_path / "r.html"
    assert main(["report", "--db", sqlite_db, "--format", "html", "-o", str(target)]) == 2
    captured = capsys.readouterr()
    assert captured.err == (
        f"p3monitor: error: cannot write the report to {target}: No space left on device; "
        "check the folder's permissions or write elsewhere\n"
    )
    assert captured.out == "" and not target.exists()


def test_empty_missing_and_foreign_stores(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    empty = tmp_path / "empty.db"
    SQLiteStore(empty).close()
    assert main(["report", "--db", str(empty)]) == 2
    assert (
        capsys.readouterr().err
        == "p3monitor: error: no runs stored yet: run pytest --p3monitor first\n"
    )
    missing = tmp_path / "none.db"
    assert main(["report", "--db", str(missing), "--format", "html"]) == 2
    assert "no results store at" in capsys.readouterr().err
    assert not missing.exists()
    foreign = tmp_path / "notes.db"
    foreign.write_bytes(b"not a database at all")
    assert main(["report", "--db", str(foreign)]) == 2
    err = capsys.readouterr().err
    assert "is not a SQLite database; it was left as it is" in err
    assert foreign.read_bytes() == b"not a database at all"


def test_bad_format(sqlite_db: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as excinfo:
        main(["report", "--db", sqlite_db, "--format", "pdf"])
    assert excinfo.value.code == 2
    assert "invalid choice: 'pdf'" in capsys.readouterr().err


def test_a_run_without_stored_health_gets_it_computed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = str(tmp_path / "bare.db")
    store = open_store(path)
    now = time.time()
    for i in range(3):
        run = RunInfo(run_id=f"bare{i}", started_at=now - 100 + i, finished_at=now - 90 + i)
        store.save_run(run, _tests(now, fail=False, rerun=False), {})
    store.close()
    data = report_json(path, capsys)
    assert data["health_source"] == "computed"
    assert data["health_score"] is not None
    assert data["health"]["kpis"]["success_rate"]["value"] == 100.0
    assert data["alerts"] == [] and data["flaky"] == []
    assert data["metrics"]["resource_usage"]["process"]["rss_bytes_peak"] is None
    assert main(["report", "--db", path]) == 0
    out = capsys.readouterr().out
    assert "health (computed from the store: the run has none of its own)" in out
    assert "resource peaks\n\nnot sampled" in out


def test_computed_health_counts_the_runs_own_flaky_tests(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """As `p3monitor health`: a flaky test the run did not have is not in its flaky_rate."""
    path = str(tmp_path / "bare.db")
    store = open_store(path)
    now = time.time()
    for i in range(4):
        run = RunInfo(run_id=f"bare{i}", started_at=now - 100 + i, finished_at=now - 90 + i)
        tests = [TestRecord(nodeid="t.py::test_ok", outcome="passed")]
        if i < 3:  # passed on a rerun, three times: flaky
            tests.append(TestRecord(nodeid="t.py::test_flip", outcome="passed", reruns=1))
        store.save_run(run, tests, {})
    store.close()
    data = report_json(path, capsys)
    assert data["health_source"] == "computed"
    assert [f["nodeid"] for f in data["flaky"]] == ["t.py::test_flip"]  # the store's
    assert data["health"]["kpis"]["test_stability"]["value"] == 100.0  # the run's: none


def test_report_of_real_sessions(
    pytester: pytest.Pytester, capsys: pytest.CaptureFixture[str]
) -> None:
    pytester.makepyfile(
        test_app="""
        def test_ok():
            pass

        def test_broken():
            assert 1 + 1 == 3, "arithmetic & <html> broke"
        """
    )
    db = pytester.path / "results.db"
    for _ in range(2):
        result = pytester.runpytest("--p3monitor", f"--p3monitor-db={db}", "-p", "no:cacheprovider")
        result.assert_outcomes(passed=1, failed=1)
    capsys.readouterr()  # the sessions' own output
    data = report_json(str(db), capsys)
    stored = SQLiteStore(db)
    try:
        newest = stored.recent_runs(limit=1)[0]
    finally:
        stored.close()
    assert data["run"]["id"] == newest.run.run_id
    assert data["health_source"] == "stored"
    assert data["health_score"] == newest.metrics["health_score"]
    assert data["metrics"]["reliability"]["failed"] == 1
    broken = next(t for t in data["tests"] if t["nodeid"].endswith("test_broken"))
    assert "arithmetic & <html> broke" in broken["message"]
    assert data["trends"]["last_24h"]["runs"] == 2
    assert data["metrics"]["resource_usage"]["process"]["rss_bytes_peak"] > 0
    assert main(["report", "--db", str(db), "--format", "html"]) == 0
    page = capsys.readouterr().out
    assert "arithmetic &amp; &lt;html&gt; broke" in page


# -- the pure parts ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://ci.example/x?a=1&b=2", '<a href="https://ci.example/x?a=1&amp;b=2"'),
        ("HTTP://ci.example/", '<a href="HTTP://ci.example/"'),
        ("javascript:alert(1)", "javascript:alert(1)"),
        ("ftp://host/file", "ftp://host/file"),
        ('https://x.example/"><script>', '<a href="https://x.example/&quot;&gt;&lt;script&gt;"'),
        ("http:///nohost", "http:///nohost"),
        ("/builds/7", "/builds/7"),
        (None, ""),
    ],
)
def test_safe_link(url: str | None, expected: str) -> None:
    assert safe_link(url).startswith(expected)
    if not expected.startswith("<a "):
        assert "<a " not in safe_link(url)


def test_trend_chart_has_a_mark_per_day() -> None:
    days = [
        Period("2026-11-20", 2, 20, 100.0, 100.0, 10.0, 12.0, None, None),
        Period("2026-11-29", 1, 10, 50.0, 0.0, 20.0, 20.0, None, None),
    ]
    svg = trend_chart(days, "2026-11-29T10:00:00Z")
    assert svg.count("<rect ") == 30
    assert svg.count("no runs</title>") == 28
    assert "2026-11-29: 1 run, mean 20s, runs passed 0.0%" in svg
    assert 'fill="#cf222e"' in svg and 'fill="#2da44e"' in svg
    assert trend_chart(days, "not a date") == ""


def test_one_line() -> None:
    assert one_line(None) is None
    assert one_line("  \n ") is None
    assert one_line("a   b") == "a b"
    assert one_line("first\nsecond") == "first …"
    assert one_line("x" * 150, 10) == "x" * 9 + "…"


def test_build_and_render_a_run_without_results() -> None:
    from pytest_p3monitor.records import RunRow

    row = RunRow(1, RunInfo("r0", 1_700_000_000.0), 0, 0, 0, 0, 0, 0, 0, 0, 0.0, {})
    report = build_stored(row, [])
    assert report["tests"] == [] and report["health_score"] is None
    assert report["trends"]["last_24h"]["runs"] == 1
    page = render_html(report)
    assert "<h2>Failed and errored tests (0)</h2>" in page
    assert '<span class="num">n/a</span>' in page
