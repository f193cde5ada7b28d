"""Containers sampled through a real Docker-API engine (podman's service when no Docker).

These never skip under CI=true (see engine_fixtures.py).
"""

from __future__ import annotations

import json
import re
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest

from pytest_p3monitor.phases import ContainerNotReady, P3Monitor, PhaseRecorder, summarize

pytest_plugins = ["engine_fixtures"]

MB = 1000 * 1000

# The inner sessions start their own containers, as a user's fixtures would.
INNER_CONFTEST = """
import docker
import pytest
from docker.types import Ulimit

LABELS = {labels!r}
IMAGE = {image!r}


def start(name, command, **kwargs):
    client = docker.from_env()
    container = client.containers.run(
        IMAGE, command, name=name, detach=True, network_mode="none", labels=LABELS,
        ulimits=[Ulimit(name="nofile", soft=1024, hard=20000),
                 Ulimit(name="nproc", soft=1024, hard=1024)],
        **kwargs,
    )
    client.close()
    return container
"""


@pytest.fixture
def engine_env(
    docker_host: str,
    busybox_image: str,
    session_labels: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> Callable[[pytest.Pytester, str], None]:
    """Point the inner session (and its sampler process) at the engine."""
    monkeypatch.setenv("DOCKER_HOST", docker_host)

    def setup(pytester: pytest.Pytester, label: str) -> None:
        key, _, value = label.partition("=")
        labels = {key: value, **session_labels}
        pytester.makeconftest(INNER_CONFTEST.format(labels=labels, image=busybox_image))

    return setup


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
    return result, json.loads(out.read_text()) if out.exists() else {}


def _sampling_warnings(result: pytest.RunResult) -> list[str]:
    return [line for line in result.outlines if "SamplingWarning" in line]


def _unique() -> str:
    return uuid.uuid4().hex[:10]


def test_containers_started_by_fixtures_are_discovered_with_their_figures(
    pytester: pytest.Pytester, engine_env: Callable[[pytest.Pytester, str], None]
) -> None:
    tag = _unique()
    label = f"p3mtest={tag}"
    engine_env(pytester, label)
    pytester.makepyfile(
        f"""
        import time
        import pytest
        from conftest import start

        @pytest.fixture
        def hogs():
            memory = start("mem-{tag}",
                           ["sh", "-c", "head -c 48000000 /dev/zero > /dev/shm/x; sleep 60"],
                           mem_limit="256m")
            cpu = start("cpu-{tag}", ["sh", "-c", "yes > /dev/null"])
            yield
            memory.remove(force=True)
            cpu.remove(force=True)

        def test_before():
            time.sleep(0.3)

        def test_with_hogs(hogs):
            time.sleep(5.0)  # ~10 container samples: at least 3 even on a loaded runner
        """
    )
    result, report = _run(
        pytester, f"--p3monitor-containers=label={label}", "--p3monitor-sample-interval=0.25"
    )
    result.assert_outcomes(passed=2)
    assert result.ret == 0
    assert _sampling_warnings(result) == []
    containers = {c["name"]: c for c in report["metrics"]["resource_usage"]["containers"]}
    assert set(containers) == {f"mem-{tag}", f"cpu-{tag}"}
    memory = containers[f"mem-{tag}"]
    assert memory["samples"] >= 3
    assert memory["memory_bytes_peak"] >= 45 * MB
    # of the 256 MiB limit: 48 MB is about 18 %
    assert 15 < memory["memory_percent_peak"] < 30
    assert memory["net_rx_bytes"] == 0 and memory["blk_read_bytes"] >= 0
    cpu = containers[f"cpu-{tag}"]
    assert cpu["cpu_percent_peak"] > 20
    assert cpu["cpu_percent_mean"] > 5
    assert len(cpu["id"]) == 64

    tests = {t["nodeid"].rsplit("::", 1)[-1]: t for t in report["tests"]}
    during = tests["test_with_hogs"]
    assert during[f"container.mem-{tag}.memory_bytes_peak"] >= 45 * MB
    assert during["containers_cpu_percent_peak"] > 20
    assert "containers_memory_bytes_peak" not in tests["test_before"]

    network = report["metrics"]["resource_usage"]["network"]
    assert network["docker_api_rtt_ms_start"] is not None
    assert network["docker_api_rtt_ms_end"] is not None
    disk = report["metrics"]["resource_usage"]["disk"]
    assert disk["engine_bytes_start"] > 0 and disk["engine_bytes_end"] > 0
    result.stdout.fnmatch_lines(
        [f"*container mem-{tag}: cpu peak *, memory peak *MiB (*% of limit)*"]
    )


def test_a_container_removed_mid_run_leaves_sampling_going(
    pytester: pytest.Pytester, engine_env: Callable[[pytest.Pytester, str], None]
) -> None:
    tag = _unique()
    label = f"p3mtest={tag}"
    engine_env(pytester, label)
    pytester.makepyfile(
        f"""
        import time
        import docker
        from conftest import start

        def test_start():
            start("gone-{tag}", ["sleep", "60"])
            start("stays-{tag}", ["sleep", "60"])
            time.sleep(1.5)

        def test_remove():
            client = docker.from_env()
            client.containers.get("gone-{tag}").remove(force=True)
            client.close()
            time.sleep(1.5)

        def test_after():
            time.sleep(1.0)
            client = docker.from_env()
            client.containers.get("stays-{tag}").remove(force=True)
            client.close()
        """
    )
    result, report = _run(
        pytester, f"--p3monitor-containers=label={label}", "--p3monitor-sample-interval=0.1"
    )
    result.assert_outcomes(passed=3)
    assert result.ret == 0
    assert len(_sampling_warnings(result)) <= 1  # at most one, if a stats call lost the race
    containers = {c["name"]: c for c in report["metrics"]["resource_usage"]["containers"]}
    gone, stays = containers[f"gone-{tag}"], containers[f"stays-{tag}"]
    assert stays["last_seen"] > gone["last_seen"] + 1.0
    assert stays["samples"] > gone["samples"]


def test_wrong_docker_host_is_one_warning(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DOCKER_HOST", f"unix:///nonexistent/{_unique()}.sock")
    pytester.makepyfile("def test_a(): pass\ndef test_b(): pass")
    result, report = _run(pytester, "--p3monitor-containers=all")
    result.assert_outcomes(passed=2)
    assert result.ret == 0
    warnings = _sampling_warnings(result)
    assert len(warnings) == 1
    result.stdout.fnmatch_lines(["*cannot reach the Docker engine at unix:///nonexistent/*"])
    assert report["metrics"]["resource_usage"]["containers"] == []
    assert report["metrics"]["resource_usage"]["process"]["samples"] >= 1


def test_a_password_in_docker_host_is_not_shown(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DOCKER_HOST", "tcp://ci:Secr3tDH@127.0.0.1:1")
    pytester.makepyfile("def test_a(): pass")
    result, _ = _run(pytester, "--p3monitor-containers=all")
    assert result.ret == 0
    result.stdout.fnmatch_lines(["*cannot reach the Docker engine at tcp://ci:***@127.0.0.1:1*"])
    assert "Secr3tDH" not in result.stdout.str() + result.stderr.str()


def test_a_filter_that_matches_nothing_is_one_warning(
    pytester: pytest.Pytester, engine_env: Callable[[pytest.Pytester, str], None]
) -> None:
    label = f"p3mtest=nothing-{_unique()}"
    engine_env(pytester, label)
    pytester.makepyfile("def test_a(): pass")
    result, report = _run(
        pytester, f"--p3monitor-containers=label={label}", "--p3monitor-sample-interval=0.2"
    )
    assert result.ret == 0
    assert len(_sampling_warnings(result)) == 1
    result.stdout.fnmatch_lines([f"*no running container matched --p3monitor-containers*{label}*"])
    assert report["metrics"]["resource_usage"]["containers"] == []


def test_invalid_filter_is_a_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_a(): pass")
    result = pytester.runpytest(
        "--p3monitor", f"--p3monitor-db={pytester.path / 'r.db'}", "--p3monitor-containers=lable=x"
    )
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert re.search(r"--p3monitor-containers = 'lable=x'.*unknown filter key", result.stderr.str())


def test_wait_for_container_in_a_session(
    pytester: pytest.Pytester, engine_env: Callable[[pytest.Pytester, str], None]
) -> None:
    tag = _unique()
    engine_env(pytester, f"p3mtest={tag}")
    pytester.makepyfile(
        f"""
        import pytest
        from conftest import start

        @pytest.fixture(scope="session")
        def service(p3monitor):
            with p3monitor.phase("docker_run"):
                container = start("svc-{tag}", ["sleep", "60"])
            p3monitor.wait_for_container("svc-{tag}", timeout=20)
            yield
            container.remove(force=True)

        def test_uses_service(service):
            pass
        """
    )
    result, report = _run(pytester, "--p3monitor-containers=none")
    result.assert_outcomes(passed=1)
    performance = report["metrics"]["performance"]
    (service,) = performance["services"]
    assert service["name"] == f"svc-{tag}"
    assert service["ready"] is True and service["restarted"] is False
    assert service["health"] is False
    assert f"service_startup:svc-{tag}" in performance["phases"]
    assert "docker_run" in performance["phases"]


def test_wait_for_container_health_check(
    docker_client: Any,
    run_container: Callable[..., Any],
    healthcheck_now: Callable[[str], None],
) -> None:
    container = run_container(
        ["sleep", "60"],
        healthcheck={"test": ["CMD", "true"], "interval": 500_000_000, "retries": 1},
    )
    recorder = PhaseRecorder()
    fixture = P3Monitor(recorder)
    timer = threading.Timer(0.5, healthcheck_now, (container.id,))
    timer.start()
    try:
        entry = fixture.wait_for_container(container.id, timeout=30, client=docker_client)
    finally:
        timer.join()
    assert entry["ready"] is True and entry["health"] is True and entry["restarted"] is False
    assert entry["seconds"] >= 0.3
    phases, services = summarize(recorder.drain())
    assert services == [entry]
    assert phases == {f"service_startup:{container.name}": entry["seconds"]}


def test_wait_for_container_restarts_once_then_gives_up(
    docker_client: Any, run_container: Callable[..., Any]
) -> None:
    container = run_container(
        ["sleep", "60"],
        healthcheck={"test": ["CMD", "false"], "interval": 500_000_000, "retries": 1},
    )
    container.reload()
    started_before = container.attrs["State"]["StartedAt"]
    recorder = PhaseRecorder()
    start = time.monotonic()
    with pytest.raises(ContainerNotReady, match="nor within 1 s after one restart"):
        P3Monitor(recorder).wait_for_container(container.name, timeout=1, client=docker_client)
    assert time.monotonic() - start >= 2.0
    container.reload()
    assert container.attrs["State"]["StartedAt"] != started_before  # it was restarted
    (entry,) = recorder.drain()
    assert entry["restarted"] is True and entry["ready"] is False and entry["health"] is True


def test_wait_for_container_without_p3monitor_records_nowhere(
    docker_client: Any, run_container: Callable[..., Any]
) -> None:
    container = run_container(["sleep", "60"])
    entry = P3Monitor(None).wait_for_container(container.id, timeout=20, client=docker_client)
    assert entry["ready"] is True and entry["seconds"] < 20
