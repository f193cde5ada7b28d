"""The resources feature plugin in real pytest sessions (pytester), with and without xdist."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from pytest_p3monitor.resources_plugin import parse_metric, parse_metric_value, summary_lines

MiB = 1024 * 1024


def _run(pytester: pytest.Pytester, *args: str) -> tuple[pytest.RunResult, dict[str, Any]]:
    out = pytester.path / "report.json"
    result = pytester.runpytest(
        "--p3monitor",
        f"--p3monitor-db={pytester.path / 'results.db'}",
        f"--p3monitor-json={out}",
        "-p",
        "no:cacheprovider",
        *args,
    )
    report = json.loads(out.read_text()) if out.exists() else {}
    return result, report


def _tests(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {t["nodeid"].rsplit("::", 1)[-1]: t for t in report["tests"]}


TESTS = """
    import time

    def test_alloc():
        block = bytearray(96 * 1024 * 1024)
        block[::4096] = b"x" * len(block[::4096])
        del block

    def test_write(tmp_path):
        (tmp_path / "out").write_bytes(b"y" * 2_000_000)

    def test_spin():
        end = time.process_time() + 0.8
        while time.process_time() < end:
            pass

    def test_small():
        pass
"""


def test_report_has_resource_usage_and_per_test_figures(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\np3monitor_sample_interval = 0.2\np3monitor_io_chars = true\n")
    pytester.makepyfile(TESTS)
    result, report = _run(pytester)
    result.assert_outcomes(passed=4)
    assert result.ret == 0
    usage = report["metrics"]["resource_usage"]
    process = usage["process"]
    assert process["samples"] >= 3
    spin = _tests(report)["test_spin"]
    # Some 0.2 s window inside the spin saw at least about its average share of a core.
    share = 100.0 * spin["cpu_time_s"] / spin["duration_s"]
    assert process["cpu_percent_peak"] is not None
    assert process["cpu_percent_peak"] > 0.5 * share
    assert process["cpu_percent_mean"] is not None
    assert process["rss_bytes_peak"] >= 96 * MiB
    assert 0 < process["memory_percent_peak"] < 100
    assert usage["sampler"]["mode"] == "process"
    assert usage["sampler"]["process_interval_s"] == 0.2
    assert usage["disk"]["free_bytes_start"] > 0 and usage["disk"]["free_bytes_end"] > 0
    assert usage["containers"] == []

    tests = _tests(report)
    assert tests["test_alloc"]["rss_peak_bytes"] - tests["test_small"]["rss_peak_bytes"] > 80 * MiB
    assert tests["test_write"]["write_chars"] >= 2_000_000
    assert tests["test_spin"]["cpu_time_s"] >= 0.8
    assert tests["test_small"]["cpu_time_s"] < tests["test_spin"]["cpu_time_s"]
    result.stdout.fnmatch_lines(
        ["*resources: pytest processes cpu peak *% mean *%, memory peak *MiB*", "*disk: *free*"]
    )


def test_xdist_workers_send_figures_and_phases(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(
        """
        import pytest

        @pytest.fixture(scope="session")
        def service(p3monitor):
            with p3monitor.phase("service_startup"):
                pass
            yield
            with p3monitor.phase("service_teardown"):
                pass
        """
    )
    pytester.makepyfile(
        """
        import time
        import pytest

        @pytest.mark.parametrize("i", range(6))
        def test_work(i, service, p3monitor):
            with p3monitor.phase("prepare"):
                time.sleep(0.05)
            end = time.process_time() + 0.1
            while time.process_time() < end:
                pass
        """
    )
    pytester.makeini("[pytest]\np3monitor_sample_interval = 0.2\n")
    result, report = _run(pytester, "-n", "2", "-p", "no:benchmark")
    result.assert_outcomes(passed=6)
    tests = report["tests"]
    assert len(tests) == 6
    assert {t["worker"] for t in tests} == {"gw0", "gw1"}
    assert all(t["cpu_time_s"] >= 0.1 and t["rss_peak_bytes"] > 0 for t in tests), tests
    phases = report["metrics"]["performance"]["phases"]
    assert phases["prepare"] == pytest.approx(6 * 0.05, rel=0.5)
    # one session fixture per worker: start-up and teardown both arrive from both workers
    assert phases["service_startup"] >= 0 and phases["service_teardown"] >= 0
    assert report["metrics"]["resource_usage"]["process"]["processes_peak"] >= 3


# Seen from a conftest's tryfirst sessionfinish, which pytest calls after the plugin's
# (registered later) and before the monitor's, which builds the report: has the plugin
# asked the sampler to stop, and not yet waited for it?
CHECK_STOP_REQUESTED = """
import pytest

@pytest.hookimpl(tryfirst=True)
def pytest_sessionfinish(session):
    handle = session.config.pluginmanager.get_plugin("p3monitor-resources").handle
    stdin = handle._proc.stdin
    print(f"SAMPLER stop requested={stdin is None or stdin.closed} stopped={handle.stopped}")
"""


@pytest.mark.parametrize(
    ("tests", "args", "exit_code"),
    [
        ("", (), pytest.ExitCode.NO_TESTS_COLLECTED),
        (
            "import pytest\n"
            "def test_a(): pass\n"
            "def test_stop(): pytest.exit('interrupted')\n"
            "def test_c(): pass\n",
            (),
            pytest.ExitCode.INTERRUPTED,
        ),
        ("def test_a(): pass\ndef test_b(): pass\n", ("-n", "2", "-p", "no:benchmark"), 0),
    ],
    ids=["no-tests", "interrupted", "xdist"],
)
def test_the_sampler_is_asked_to_stop_when_the_session_ends(
    pytester: pytest.Pytester, tests: str, args: tuple[str, ...], exit_code: int
) -> None:
    """At sessionfinish, before the report is built: its records are the same as ever."""
    pytester.makeini("[pytest]\np3monitor_sample_interval = 0.2\n")
    pytester.makeconftest(CHECK_STOP_REQUESTED)
    pytester.makepyfile(test_stop_requested=tests)
    result, report = _run(pytester, "-s", *args)
    assert result.ret == exit_code
    result.stdout.fnmatch_lines(["*SAMPLER stop requested=True stopped=False*"])
    usage = report["metrics"]["resource_usage"]
    assert usage["sampler"]["mode"] == "process"
    assert usage["process"]["samples"] >= 1 and usage["process"]["rss_bytes_peak"] > 0
    assert usage["disk"]["free_bytes_start"] > 0 and usage["disk"]["free_bytes_end"] > 0
    assert "warnings" not in usage["sampler"] or usage["sampler"]["warnings"] == []


def test_fixture_works_without_p3monitor_and_starts_nothing(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import sys

        def test_uses_fixture(p3monitor):
            assert p3monitor.recording is False
            with p3monitor.phase("anything"):
                pass
            p3monitor.record("other", 1.0)
            assert "pytest_p3monitor.resources_plugin" not in sys.modules
            assert "pytest_p3monitor.sampling.handle" not in sys.modules
            assert "pytest_p3monitor.sampling.sampler" not in sys.modules
            assert "docker" not in sys.modules and "psutil" not in sys.modules
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)


def test_configure_imports_only_the_light_sampling_modules() -> None:
    """The sampler is imported when the session starts (on the controller only), the
    summaries at its end: an xdist worker and the configure step need neither."""
    code = (
        "import sys, pytest_p3monitor.resources_plugin\n"
        "print(' '.join(sorted(m for m in sys.modules if m.startswith('pytest_p3monitor.samp'))))\n"
        "print('statistics' in sys.modules)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.split("\n")
    assert out[0].split() == [
        "pytest_p3monitor.sampling",
        "pytest_p3monitor.sampling.pertest",
        "pytest_p3monitor.sampling.settings",
    ]
    assert out[1] == "False"


def test_fixture_records_a_failing_phase_and_leaves_the_outcome(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        def test_boom(p3monitor):
            assert p3monitor.recording
            with p3monitor.phase("migrate"):
                raise RuntimeError("boom")

        def test_fine():
            pass
        """
    )
    result, report = _run(pytester)
    result.assert_outcomes(passed=1, failed=1)
    assert result.ret == 1
    assert "migrate" in report["metrics"]["performance"]["phases"]


@pytest.mark.parametrize("junitxml", [False, True], ids=["plain", "junitxml"])
def test_figures_and_phases_reach_the_record_with_and_without_junitxml(
    pytester: pytest.Pytester, junitxml: bool
) -> None:
    # Without --junitxml the meter puts the figures into the record when the test finishes;
    # with it, on the teardown report (where the JUnit properties read them).
    pytester.makepyfile(
        """
        def test_phased(p3monitor):
            with p3monitor.phase("prepare"):
                pass
        """
    )
    result, report = _run(pytester, *(["--junitxml=junit.xml"] if junitxml else []))
    assert result.ret == 0
    (entry,) = report["tests"]
    assert entry["cpu_time_s"] >= 0 and entry["rss_peak_bytes"] > 0
    assert "write_chars" not in entry  # only with p3monitor_io_chars = true
    assert "prepare" in report["metrics"]["performance"]["phases"]


@pytest.mark.parametrize("xdist", [False, True], ids=["alone", "xdist"])
def test_no_per_test_figures_with_test_resources_false(
    pytester: pytest.Pytester, xdist: bool
) -> None:
    # The session's sampling and the phases go on; no test is metered on its own, and the
    # peak RSS high-water mark is left alone (the meter, which resets it, is never made).
    pytester.makepyfile(
        """
        import pytest

        @pytest.fixture(scope="session", autouse=True)
        def no_meter(pytestconfig):
            yield
            assert pytestconfig.pluginmanager.get_plugin("p3monitor-resources").meter is None

        def test_phased(p3monitor):
            with p3monitor.phase("prepare"):
                pass

        def test_other():
            pass
        """
    )
    pytester.makeini("[pytest]\np3monitor_test_resources = false\np3monitor_io_chars = true\n")
    args = ("-n", "2", "-p", "no:benchmark") if xdist else ()
    result, report = _run(pytester, *args)
    result.assert_outcomes(passed=2)
    assert len(report["tests"]) == 2
    for entry in report["tests"]:
        assert not {"cpu_time_s", "rss_peak_bytes", "read_bytes", "read_chars"} & set(entry)
    assert "prepare" in report["metrics"]["performance"]["phases"]
    assert report["metrics"]["resource_usage"]["process"]["rss_bytes_peak"] > 0


def test_metrics_from_cli_and_environment(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("P3MONITOR_METRIC_IMAGE_PUSH", "3s")
    monkeypatch.setenv("P3MONITOR_METRIC_DOCKER_BUILD", "1")
    pytester.makepyfile("def test_a(): pass")
    result, report = _run(
        pytester, "--p3monitor-metric", "docker_build=42.5", "--p3monitor-metric=pull=800ms"
    )
    assert result.ret == 0
    phases = report["metrics"]["performance"]["phases"]
    assert phases["docker_build"] == 42.5  # the command line beats the environment
    assert phases["pull"] == pytest.approx(0.8)
    assert phases["image_push"] == 3.0
    result.stdout.fnmatch_lines(["*phases: *docker_build 42.50s*"])


@pytest.mark.parametrize(
    ("args", "ini", "env", "expected"),
    [
        (["--p3monitor-metric", "docker_build"], "", {}, "--p3monitor-metric = 'docker_build'"),
        (["--p3monitor-metric", "b=fast"], "", {}, "'fast' is not a number of seconds"),
        (["--p3monitor-metric=docker_build=-5"], "", {}, "'-5' is negative"),
        ([], "", {"P3MONITOR_METRIC_BUILD": "-3m"}, "'-3m' is negative"),
        ([], "", {"P3MONITOR_METRIC_BUILD": "12x"}, "P3MONITOR_METRIC_BUILD = '12x'"),
        ([], "p3monitor_probes = db:5432\n  cache", {}, "ini p3monitor_probes = 'cache'"),
        ([], "p3monitor_probes = db:99999", {}, "the port must be a number from 1 to 65535"),
        (["--p3monitor-containers", "colour=red"], "", {}, "--p3monitor-containers = 'colour"),
        ([], "p3monitor_containers = all\n  label=x", {}, "ini p3monitor_containers"),
        (["--p3monitor-sample-interval", "0"], "", {}, "--p3monitor-sample-interval = '0'"),
        (["--p3monitor-sample-interval=1e11"], "", {}, "must be at most 86400 seconds (a day)"),
        ([], "p3monitor_io_chars = sometimes", {}, "ini p3monitor_io_chars = 'sometimes'"),
        ([], "p3monitor_test_resources = no way", {}, "ini p3monitor_test_resources = 'no way'"),
    ],
)
def test_bad_settings_are_usage_errors_naming_the_source(
    pytester: pytest.Pytester,
    monkeypatch: pytest.MonkeyPatch,
    args: list[str],
    ini: str,
    env: dict[str, str],
    expected: str,
) -> None:
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    pytester.makeini(f"[pytest]\n{ini}\n")
    pytester.makepyfile("def test_a(): pass")
    result = pytester.runpytest("--p3monitor", f"--p3monitor-db={pytester.path / 'r.db'}", *args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert expected in result.stderr.str()


def test_probes_are_reported(pytester: pytest.Pytester) -> None:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    port = server.getsockname()[1]
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    closed_port = closed.getsockname()[1]  # bound, never listening: refused
    try:
        pytester.makeini(
            f"[pytest]\np3monitor_probes =\n  127.0.0.1:{port}\n  127.0.0.1:{closed_port}\n"
        )
        pytester.makepyfile("def test_a(): pass")
        result, report = _run(pytester)
    finally:
        server.close()
        closed.close()
    assert result.ret == 0
    probes = report["metrics"]["resource_usage"]["network"]["probes"]
    by_target = {p["target"]: p for p in probes}
    good = by_target[f"127.0.0.1:{port}"]
    assert good["connect_ms_start"] is not None and good["connect_ms_end"] is not None
    assert good["error"] is None
    bad = by_target[f"127.0.0.1:{closed_port}"]
    assert bad["connect_ms_start"] is None and bad["error"]


def test_resource_figures_are_stored_with_the_run(pytester: pytest.Pytester) -> None:
    from conftest import store_rows

    pytester.makepyfile("def test_a(): pass")
    result, _ = _run(pytester)
    assert result.ret == 0
    db = pytester.path / "results.db"
    tables = {r[0] for r in store_rows(db, "SELECT name FROM sqlite_master WHERE type='table'")}
    run_table = "p3m_runs"
    assert run_table in tables
    (metrics_json,) = store_rows(db, f"SELECT metrics FROM {run_table}")[0]
    metrics = json.loads(metrics_json)
    assert metrics["metrics"]["resource_usage"]["process"]["rss_bytes_peak"] > 0
    # the meter's figures have columns of their own (schema 3); nothing else was measured
    ((cpu, rss, other),) = store_rows(
        db, "SELECT cpu_time_s, rss_peak_bytes, figures FROM p3m_results"
    )
    assert cpu >= 0 and rss > 0
    assert other is None


# --- pure parts -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("12", 12.0), ("12.5s", 12.5), ("800ms", 0.8), ("2m", 120.0), ("1h", 3600.0), (" 3 s ", 3.0)],
)
def test_parse_metric_value(text: str, seconds: float) -> None:
    assert parse_metric_value(text) == pytest.approx(seconds)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "is not a number of seconds"),
        ("abc", "is not a number of seconds"),
        ("12 parsecs", "is not a number of seconds"),
        ("1e", "is not a number of seconds"),
        ("+-1", "is not a number of seconds"),
        ("--1", "is negative"),
        ("-0.5s", "is negative"),
    ],
)
def test_parse_metric_value_errors(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_metric_value(text)


def test_parse_metric() -> None:
    assert parse_metric("docker_build=42") == ("docker_build", 42.0)
    assert parse_metric("ci.cache-restore=3s") == ("ci.cache-restore", 3.0)
    with pytest.raises(ValueError, match="has no '='"):
        parse_metric("docker_build")
    with pytest.raises(ValueError, match="is not a metric name"):
        parse_metric("1st step=3")


def test_summary_lines() -> None:
    report = {
        "metrics": {
            "performance": {"phases": {"docker_build": 42.5}},
            "resource_usage": {
                "process": {
                    "cpu_percent_peak": 187.4,
                    "cpu_percent_mean": 95.0,
                    "rss_bytes_peak": 412 * MiB,
                    "memory_percent_peak": 1.6,
                    "memory_limit_bytes": 24 * 1024 * MiB,
                    "samples": 10,
                },
                "cgroup": {
                    "version": 2,
                    "cpu_percent_peak": 150.0,
                    "memory_bytes_peak": 600 * MiB,
                    "memory_limit_bytes": 1024 * MiB,
                    "memory_percent_peak": 58.6,
                },
                "containers": [
                    {
                        "name": f"c{i}",
                        "cpu_percent_peak": 45.0,
                        "cpu_percent_mean": 3.0,
                        "memory_bytes_peak": 120 * MiB,
                        "memory_percent_peak": 12.0,
                        "net_rx_bytes": 2048,
                        "net_tx_bytes": 10,
                    }
                    for i in range(7)
                ],
                "disk": {
                    "path": "/w",
                    "free_bytes_start": 10 * 1024 * MiB,
                    "free_bytes_end": 9 * 1024 * MiB,
                    "engine_bytes_end": 5 * MiB,
                },
            },
        }
    }
    lines = summary_lines(report)
    assert lines[0] == (
        "resources: pytest processes cpu peak 187% mean 95%, memory peak 412.0 MiB "
        "(1.6% of 24.0 GiB)"
    )
    assert lines[1] == "cgroup v2: cpu peak 150%, memory peak 600.0 MiB (59% of limit 1.0 GiB)"
    assert lines[2] == (
        "container c0: cpu peak 45% mean 3.0%, memory peak 120.0 MiB (12% of limit), "
        "net 2.0 KiB in / 10 B out"
    )
    assert lines[7] == "... and 2 more containers (see the report)"
    assert lines[8] == (
        "disk: 10.0 GiB free at start, 9.0 GiB at end (/w); Docker engine uses 5.0 MiB"
    )
    assert lines[9] == "phases: docker_build 42.50s"
    assert summary_lines({"metrics": {}}) == []


def test_bytes_helper_is_not_needed_for_paths(tmp_path: Path) -> None:
    # A disk path that does not exist reports no free space instead of failing the session.
    from pytest_p3monitor.sampling.probes import disk

    assert disk(str(tmp_path / "missing"))["free_bytes"] is None


# --- the p3monitor fixture's parts, with a fake container -------------------------------------


class FakeContainer:
    """Answers ``reload``/``attrs``/``restart`` from a script of states."""

    def __init__(
        self,
        states: list[dict[str, Any]],
        config: dict[str, Any] | None = None,
        after_restart: list[dict[str, Any]] | None = None,
    ) -> None:
        self.states = states
        self.after_restart = after_restart
        self.name = "svc"
        self.id = "f" * 64
        self.restarts = 0
        self.attrs: dict[str, Any] = {"State": states[0], "Config": config or {}}

    def reload(self) -> None:
        if len(self.states) > 1:
            self.states.pop(0)
        self.attrs["State"] = self.states[0]

    def restart(self) -> None:
        self.restarts += 1
        if self.after_restart is not None:
            self.states = list(self.after_restart)


class FakeClient:
    def __init__(self, container: FakeContainer) -> None:
        self.containers = self
        self.container = container

    def get(self, name_or_id: str) -> FakeContainer:
        return self.container


RUNNING = {"Running": True}
CHECK = {"Healthcheck": {"Test": ["CMD", "true"]}}


@pytest.mark.parametrize(
    ("states", "config", "health"),
    [
        ([{"Running": False}, RUNNING], {}, False),  # Docker: no Health key
        ([{"Running": True, "Health": {"Status": ""}}], {}, False),  # podman without a check
        (
            [
                {"Running": True, "Health": {"Status": "starting"}},
                {"Running": True, "Health": {"Status": "healthy"}},
            ],
            CHECK,
            True,
        ),
        ([RUNNING, {"Running": True, "Health": {"Status": "healthy"}}], CHECK, True),
        ([RUNNING], {"Healthcheck": {"Test": ["NONE"]}}, False),  # check disabled
    ],
)
def test_wait_for_container_states(
    states: list[dict[str, Any]], config: dict[str, Any], health: bool
) -> None:
    from pytest_p3monitor.phases import P3Monitor, PhaseRecorder

    recorder = PhaseRecorder()
    container = FakeContainer(states, config)
    entry = P3Monitor(recorder).wait_for_container("svc", 5, client=FakeClient(container), poll=0)
    assert entry["ready"] is True and entry["health"] is health and entry["restarted"] is False
    assert container.restarts == 0
    assert recorder.drain()[0]["kind"] == "service"


def test_wait_for_container_timeout_restarts_once() -> None:
    from pytest_p3monitor.phases import ContainerNotReady, P3Monitor, PhaseRecorder

    recorder = PhaseRecorder()
    unhealthy = FakeContainer([{"Running": True, "Health": {"Status": "unhealthy"}}], CHECK)
    with pytest.raises(ContainerNotReady, match=r"was not healthy within 0\.2 s"):
        P3Monitor(recorder).wait_for_container("svc", 0.2, client=FakeClient(unhealthy), poll=0.05)
    assert unhealthy.restarts == 1
    (entry,) = recorder.drain()
    assert entry["restarted"] is True and entry["ready"] is False and entry["seconds"] >= 0.4

    stopped_then_up = FakeContainer([{"Running": False}], after_restart=[RUNNING])
    entry = P3Monitor(None).wait_for_container(
        "svc", 0.01, client=FakeClient(stopped_then_up), poll=0.01
    )
    assert entry["restarted"] is True and entry["ready"] is True


def test_phase_bad_names_and_summaries() -> None:
    from pytest_p3monitor.phases import P3Monitor, PhaseRecorder, summarize

    recorder = PhaseRecorder()
    fixture = P3Monitor(recorder)
    with pytest.raises(ValueError, match="non-empty name"), fixture.phase(""):
        pass
    with pytest.raises(ValueError, match="timeout must be positive"):
        fixture.wait_for_container("x", 0)
    fixture.record("build", 2.0)
    fixture.record("build", 3.0)
    with fixture.phase("test"):
        pass
    phases, services = summarize(recorder.drain())
    assert phases["build"] == 5.0 and phases["test"] >= 0 and services == []
    assert not recorder


def test_a_short_subprocess_counts_in_the_process_peak(pytester: pytest.Pytester) -> None:
    """A test's subprocess that ends between two samples: its peak RSS (getrusage of the
    children the session waited for) still counts in the process tree's peak."""
    pytester.makepyfile(
        test_sub="""
        import subprocess, sys

        def test_subprocess():
            subprocess.run([sys.executable, "-c", "x = bytearray(300_000_000)"], check=True)
        """
    )
    result = pytester.runpytest_subprocess(
        "--p3monitor", f"--p3monitor-db={pytester.path / 'r.db'}", "--p3monitor-json=r.json"
    )
    assert result.ret == 0
    report = json.loads((pytester.path / "r.json").read_text())
    assert report["metrics"]["resource_usage"]["process"]["rss_bytes_peak"] >= 300_000_000


def test_a_phase_name_with_a_newline_stays_on_its_line(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_ph="""
        def test_phase(p3monitor):
            with p3monitor.phase("evil\\nfake_metric 1"):
                pass
        """
    )
    result = pytester.runpytest("--p3monitor", f"--p3monitor-db={pytester.path / 'r.db'}")
    assert result.ret == 0
    result.stdout.fnmatch_lines(["phases: evil\\nfake_metric 1 0.00s*"])
    result.stdout.no_fnmatch_line("fake_metric 1*")
