"""``p3monitor export``: stored runs as JSON / OpenMetrics / CSV, and ``--flush`` of the outbox."""

from __future__ import annotations

import csv
import io
import json
import time
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client.openmetrics.parser import text_string_to_metric_families

from pytest_p3monitor.cli import main
from pytest_p3monitor.cli.export import parse_since, read_ini
from pytest_p3monitor.records import CIInfo, RunInfo, TestRecord
from pytest_p3monitor.store import open_store

from exporter_servers import RecordingServer, refused_url

NOW = 1_800_000_000.0


@pytest.fixture
def server() -> Iterator[RecordingServer]:
    srv = RecordingServer()
    try:
        yield srv
    finally:
        srv.stop()


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    capsys.readouterr()  # drop what came before (inner pytest sessions)
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def save(db: Path, run_id: str, started: float, *, branch: str = "main", failed: int = 0) -> None:
    run = RunInfo(
        run_id=run_id,
        started_at=started,
        finished_at=started + 30,
        branch=branch,
        commit="c0ffee",
        ci=CIInfo(provider="gitlab-ci", run_id="77"),
        exit_status=1 if failed else 0,
    )
    tests = [
        TestRecord(nodeid=f"t.py::test_{i}", outcome="failed" if i < failed else "passed",
                   call_s=0.5)
        for i in range(4)
    ]  # fmt: skip
    metrics = {"health_score": 90.0 - 10 * failed, "metrics": {}, "alerts": []}
    with open_store(str(db)) as store:
        store.save_run(run, tests, metrics)


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "results.db"
    now = time.time()
    save(path, "old", now - 40 * 86400)
    save(path, "week", now - 3 * 86400, branch="feature", failed=1)
    save(path, "new", now - 3600, failed=2)
    return path


# -- --since ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("7d", NOW - 7 * 86400),
        ("12h", NOW - 12 * 3600),
        (" 30m ", NOW - 1800),
        ("2026-01-31", datetime(2026, 1, 31, tzinfo=timezone.utc).timestamp()),
        ("2026-01-31T12:00:00Z", datetime(2026, 1, 31, 12, tzinfo=timezone.utc).timestamp()),
        ("2026-01-31T12:00:00+02:00", datetime(2026, 1, 31, 10, tzinfo=timezone.utc).timestamp()),
    ],
)
def test_parse_since(text: str, expected: float) -> None:
    assert parse_since(text, NOW) == expected


@pytest.mark.parametrize("text", ["yesterday", "", "-3d", "7 days", "2026-13-01", "0d"])
def test_parse_since_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="expected a duration back from now"):
        parse_since(text, NOW)


@given(amount=st.integers(1, 10_000), unit=st.sampled_from("smhdw"))
def test_parse_since_durations(amount: int, unit: str) -> None:
    seconds = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}[unit]
    assert parse_since(f"{amount}{unit}", NOW) == NOW - amount * seconds


@given(st.text(max_size=30))
def test_parse_since_gives_a_time_or_a_clear_error(text: str) -> None:
    value: float | None = None
    message = ""
    try:
        value = parse_since(text, NOW)
    except ValueError as exc:
        message = str(exc)
    assert isinstance(value, float) or "--since" in message


# -- formats ------------------------------------------------------------------------------------


def test_export_json_oldest_first(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = cli(capsys, "export", "--db", str(db), "--format", "json")
    assert code == 0
    data = json.loads(out)
    assert [r["id"] for r in data] == ["old", "week", "new"]
    assert data[2]["failed"] == 2
    assert data[2]["success_rate"] == 50.0
    assert data[2]["metrics"]["health_score"] == 70.0
    assert data[0]["ci"] == {"provider": "gitlab-ci", "run_id": "77", "job": None, "url": None}


def test_export_since_and_branch(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _, out, _ = cli(capsys, "export", "--db", str(db), "--format", "json", "--since", "7d")
    assert [r["id"] for r in json.loads(out)] == ["week", "new"]
    _, out, _ = cli(
        capsys, "export", "--db", str(db), "--format", "json", "--since", "30d", "--branch", "main"
    )
    assert [r["id"] for r in json.loads(out)] == ["new"]
    since = datetime.fromtimestamp(time.time() - 2 * 86400, timezone.utc).date().isoformat()
    _, out, _ = cli(capsys, "export", "--db", str(db), "--format", "json", "--since", since)
    assert [r["id"] for r in json.loads(out)] == ["new"]


def test_export_csv(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = cli(capsys, "export", "--db", str(db), "--format", "csv")
    assert code == 0
    rows = list(csv.DictReader(io.StringIO(out)))
    assert [r["run_id"] for r in rows] == ["old", "week", "new"]
    assert rows[1]["branch"] == "feature"
    assert rows[1]["failed"] == "1"
    assert float(rows[1]["success_rate"]) == 75.0
    assert rows[1]["health_score"] == "80.0"
    assert rows[1]["ci_provider"] == "gitlab-ci"


def test_export_csv_defuses_formulas(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "r.db"
    save(db, "x", time.time(), branch='=HYPERLINK("http://evil.example")')
    _, out, _ = cli(capsys, "export", "--db", str(db), "--format", "csv")
    (row,) = csv.DictReader(io.StringIO(out))
    assert row["branch"] == '\'=HYPERLINK("http://evil.example")'


def test_export_openmetrics(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = cli(capsys, "export", "--db", str(db), "--format", "openmetrics")
    assert code == 0
    assert out.endswith("# EOF\n")
    families = {f.name: f for f in text_string_to_metric_families(out)}
    ratio = families["p3monitor_success_ratio"].samples
    assert [s.value for s in ratio] == [1.0, 0.75, 0.5]
    stamps = [float(s.timestamp) for s in ratio]
    assert stamps == sorted(stamps)
    assert [s.value for s in families["p3monitor_health_score"].samples] == [90.0, 80.0, 70.0]


def test_export_to_a_file(db: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "out" / "runs.csv"
    code, out, err = cli(capsys, "export", "--db", str(db), "--format", "csv", "-o", str(target))
    assert code == 0
    assert out == ""
    assert "3 run(s) written" in err
    assert target.read_text().startswith("run_id,started_at,")


def test_export_bad_since_and_missing_store(
    db: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = cli(capsys, "export", "--db", str(db), "--since", "soon")
    assert code == 2
    assert "invalid --since 'soon'" in err
    code, _, err = cli(capsys, "export", "--db", str(tmp_path / "none.db"), "--format", "json")
    assert code == 2
    assert "p3monitor: error:" in err


def test_export_after_real_sessions(
    pytester: pytest.Pytester, capsys: pytest.CaptureFixture[str]
) -> None:
    pytester.makepyfile("def test_a(): pass\ndef test_b(): assert 0\n")
    for _ in range(2):
        pytester.runpytest("--p3monitor").assert_outcomes(passed=1, failed=1)
    db = pytester.path / ".p3monitor" / "results.db"
    _, out, _ = cli(capsys, "export", "--db", str(db), "--format", "openmetrics")
    families = {f.name: f for f in text_string_to_metric_families(out)}
    assert [s.value for s in families["p3monitor_success_ratio"].samples] == [0.5, 0.5]
    assert len(families["p3monitor_process_memory_peak_bytes"].samples) == 2


# -- the ini of kept entries --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("pytest.ini", "[pytest]\np3monitor_endpoint = http://h/x\naddopts = -q\n"),
        ("tox.ini", "[tox]\n[pytest]\np3monitor_endpoint = http://h/x\n"),
        ("setup.cfg", "[tool:pytest]\np3monitor_endpoint = http://h/x\n"),
        ("pyproject.toml", '[tool.pytest.ini_options]\np3monitor_endpoint = "http://h/x"\n'),
    ],
)
def test_read_ini(tmp_path: Path, name: str, text: str) -> None:
    (tmp_path / name).write_text(text)
    assert read_ini(tmp_path / name) == {"p3monitor_endpoint": "http://h/x"}


def test_read_ini_unreadable(tmp_path: Path) -> None:
    assert read_ini(tmp_path / "missing.ini") == {}
    (tmp_path / "pyproject.toml").write_text("not = [toml")
    assert read_ini(tmp_path / "pyproject.toml") == {}


# -- --flush ------------------------------------------------------------------------------------


def kept(root: Path, kind: str) -> list[Path]:
    return sorted((root / ".p3monitor" / "outbox" / kind).glob("*.json"))


def test_flush_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = cli(capsys, "export", "--flush", "--outbox", str(tmp_path / "none"))
    assert code == 0
    assert "nothing to flush" in out


def test_flush_stores_kept_runs(
    pytester: pytest.Pytester, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester.makepyfile("def test_a(): pass\n")
    (pytester.path / "blocker").write_text("a file where a folder should be")
    result = pytester.runpytest("--p3monitor", "--p3monitor-db", "blocker/results.db")
    assert result.ret == 0
    (path,) = kept(pytester.path, "runs")
    monkeypatch.chdir(pytester.path)
    db = pytester.path / "good.db"
    code, out, _ = cli(capsys, "export", "--flush", "--db", str(db))
    assert code == 0, out
    assert f"stored run {path.stem}" in out
    assert kept(pytester.path, "runs") == []
    _, out, _ = cli(capsys, "export", "--db", str(db), "--format", "json")
    assert [r["id"] for r in json.loads(out)] == [path.stem]
    # a second flush has nothing left to do
    code, out, _ = cli(capsys, "export", "--flush", "--db", str(db))
    assert code == 0
    assert "flushed" in out


def _session_with_failing_endpoint(pytester: pytest.Pytester, url: str) -> Path:
    pytester.makeini(
        f"""
        [pytest]
        p3monitor_endpoint = {url}
        p3monitor_endpoint_auth_env = P3_FLUSH_TOKEN
        p3monitor_endpoint_retries = 0
        p3monitor_export_timeout = 2
        """
    )
    pytester.makepyfile("def test_a(): pass\n")
    result = pytester.runpytest("--p3monitor")
    assert result.ret == 0
    (path,) = kept(pytester.path, "endpoint")
    return path


def test_flush_sends_kept_reports_to_the_ini_endpoint(
    pytester: pytest.Pytester,
    server: RecordingServer,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("P3_FLUSH_TOKEN", "flush-token-123")
    server.mode = "fail"
    path = _session_with_failing_endpoint(pytester, f"{server.url}/reports")
    server.mode = "ok"
    monkeypatch.chdir(pytester.path)
    code, out, _ = cli(capsys, "export", "--flush")
    assert code == 0, out
    assert f"sent kept endpoint entry {path.stem} to {server.url}/reports" in out
    last = server.requests[-1]
    assert last.path == "/reports"
    assert last.headers["Authorization"] == "Bearer flush-token-123"
    assert last.json()["run"]["id"] == path.stem
    assert kept(pytester.path, "endpoint") == []


def test_flush_to_another_endpoint_and_failure_keeps(
    pytester: pytest.Pytester,
    server: RecordingServer,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("P3_FLUSH_TOKEN", "flush-token-123")
    _session_with_failing_endpoint(pytester, refused_url())
    monkeypatch.chdir(pytester.path)
    server.mode = "fail"
    code, out, _ = cli(capsys, "export", "--flush", "--endpoint", server.url, "--timeout", "2")
    assert code == 1
    assert "not sent" in out and "HTTP 500" in out
    assert "1 entry left" in out
    assert len(kept(pytester.path, "endpoint")) == 1
    server.mode = "ok"
    code, out, _ = cli(capsys, "export", "--flush", "--endpoint", f"{server.url}/other")
    assert code == 0, out
    assert server.requests[-1].path == "/other"
    assert kept(pytester.path, "endpoint") == []


def test_flush_without_any_url(
    pytester: pytest.Pytester, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("P3_FLUSH_TOKEN", "t0k3n-abc")
    _session_with_failing_endpoint(pytester, refused_url())
    (pytester.path / "tox.ini").unlink()
    monkeypatch.chdir(pytester.path)
    code, out, _ = cli(capsys, "export", "--flush")
    assert code == 1
    assert "no URL (give --endpoint URL)" in out


def test_flush_kept_webhook_message(
    pytester: pytest.Pytester,
    server: RecordingServer,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pytester.makeini(
        "[pytest]\np3monitor_fail_on = tests > 0\n"
        "p3monitor_webhook = htp:/broken/hooks/SECRETPATH1\n"
    )
    pytester.makepyfile("def test_a(): pass\n")
    assert pytester.runpytest("--p3monitor").ret == 1
    assert len(kept(pytester.path, "webhook")) == 1
    monkeypatch.chdir(pytester.path)
    code, out, _ = cli(capsys, "export", "--flush", "--webhook", f"{server.url}/hooks/SECRETPATH2")
    assert code == 0, out
    assert "SECRETPATH2" not in out
    (request,) = server.requests
    assert "`tests &gt; 0`" in request.json()["text"]
