"""The session sampler as it runs: in its own process (the default) or in a thread."""

from __future__ import annotations

import itertools
import json
import os
import signal
import statistics
import subprocess
import sys
import textwrap
import time
import warnings
from pathlib import Path

import psutil
import pytest

from pytest_p3monitor.sampling import handle as sampler_handle
from pytest_p3monitor.sampling.handle import SamplerHandle, SamplerMode
from pytest_p3monitor.sampling.sampler import SamplerConfig
from pytest_p3monitor.sampling.settings import docker_host_configured

SRC = str(Path(__file__).resolve().parent.parent / "src")


def _config(**kwargs: object) -> SamplerConfig:
    values: dict[str, object] = {
        "root_pid": os.getpid(),
        "process_interval": 0.1,
        "containers": {"mode": "none", "filters": {}},
    }
    values.update(kwargs)
    return SamplerConfig(**values)  # type: ignore[arg-type]


def _spin(seconds: float) -> None:
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        sum(i * i for i in range(500))


def test_process_sampler_keeps_time_and_sees_the_tree(tmp_path: Path) -> None:
    handle = SamplerHandle.start(_config(disk_path=str(tmp_path)))
    assert handle.mode == "process" and handle.pid is not None
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(1.5)"])
    try:
        wall = time.perf_counter()
        cpu = time.process_time()
        _spin(1.5)  # a CPU-bound "test" in this process
        share = 100 * (time.process_time() - cpu) / (time.perf_counter() - wall)
    finally:
        child.wait()
    pid = handle.pid
    records = handle.stop()
    assert handle.problems == []
    handle.close()
    assert handle.pid is None
    assert not psutil.pid_exists(pid or -1)  # reaped: not even a zombie
    kinds = [r["kind"] for r in records]
    assert kinds[0] == "meta" and kinds[-1] == "end"
    procs = [r for r in records if r["kind"] == "proc"]
    assert len(procs) >= 8
    gaps = [b["t"] - a["t"] for a, b in itertools.pairwise(procs)]
    assert 0.08 < statistics.median(gaps) < 0.2, gaps
    assert max(r["processes"] for r in procs) >= 2  # the child was seen; the sampler is not
    # the busiest interval saw at least about the share of a core this process got
    assert max(r["cpu_percent"] or 0 for r in procs) > 0.6 * share
    assert all(r["rss_bytes"] > 0 for r in procs)
    disks = [r for r in records if r["kind"] == "disk"]
    assert [d["when"] for d in disks] == ["start", "end"]
    assert disks[0]["path"] == str(tmp_path) and disks[0]["free_bytes"] > 0


def test_thread_sampler_records_the_same_kinds() -> None:
    handle = SamplerHandle.start(_config(), mode="thread")
    assert handle.mode == "thread" and handle.pid is None
    time.sleep(0.5)
    records = handle.stop()
    handle.close()  # nothing to reap
    assert {"meta", "proc", "disk", "end"} <= {r["kind"] for r in records}
    assert len([r for r in records if r["kind"] == "proc"]) >= 3


def test_a_short_session_still_gets_a_sample_with_cpu() -> None:
    handle = SamplerHandle.start(_config(process_interval=5.0))
    time.sleep(1.0)  # long enough for the interpreter to start, shorter than the interval
    records = handle.stop()
    handle.close()
    procs = [r for r in records if r["kind"] == "proc"]
    assert len(procs) == 2  # the first, and the final one taken when stopped
    assert procs[-1]["cpu_percent"] is not None


def test_probes_are_measured_at_start_and_end() -> None:
    import socket

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    port = server.getsockname()[1]
    try:
        handle = SamplerHandle.start(_config(probes=[f"127.0.0.1:{port}"]))
        time.sleep(0.5)
        records = handle.stop()
        handle.close()
    finally:
        server.close()
    found = [r for r in records if r["kind"] == "probe"]
    assert [r["when"] for r in found] == ["start", "end"]
    assert all(r["connect_ms"] is not None and r["error"] is None for r in found)


@pytest.mark.parametrize("mode", ["process", "thread"])
def test_request_stop_ends_sampling_and_stop_then_only_waits(mode: SamplerMode) -> None:
    handle = SamplerHandle.start(_config(), mode=mode)
    time.sleep(0.5)
    requested = time.time()
    handle.request_stop()
    handle.request_stop()  # again: nothing more
    assert not handle.stopped
    time.sleep(1.0)  # ten intervals: none of them sampled
    records = handle.stop()
    handle.request_stop()  # after stop: nothing either
    handle.close()
    assert handle.problems == []
    kinds = [r["kind"] for r in records]
    assert kinds[0] == "meta" and kinds[-1] == "end"
    assert [r["when"] for r in records if r["kind"] == "disk"] == ["start", "end"]
    procs = [r for r in records if r["kind"] == "proc"]
    assert len(procs) >= 2
    # the final sample (no late_ms: taken when stopped) and the end follow the request
    assert "late_ms" not in procs[-1] and all("late_ms" in r for r in procs[:-1])
    assert procs[-1]["t"] - requested < 0.5
    assert records[-1]["t"] - requested < 0.5
    assert sum(r["t"] > requested for r in procs) == 1


def test_sampler_process_ends_when_pytest_is_killed(tmp_path: Path) -> None:
    script = tmp_path / "parent.py"
    script.write_text(
        textwrap.dedent(
            f"""
            import os, sys, time
            sys.path.insert(0, {SRC!r})
            from pytest_p3monitor.sampling.handle import SamplerHandle, SamplerMode
            from pytest_p3monitor.sampling.sampler import SamplerConfig
            handle = SamplerHandle.start(SamplerConfig(root_pid=os.getpid(),
                containers={{"mode": "none", "filters": {{}}}}))
            print(handle.pid, flush=True)
            time.sleep(60)
            """
        )
    )
    parent = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    assert parent.stdout is not None
    sampler_pid = int(parent.stdout.readline())
    assert psutil.pid_exists(sampler_pid)
    parent.send_signal(signal.SIGKILL)
    parent.wait()
    parent.stdout.close()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if not psutil.pid_exists(sampler_pid):
            break
        if psutil.Process(sampler_pid).status() == psutil.STATUS_ZOMBIE:
            break
        time.sleep(0.1)
    else:
        os.kill(sampler_pid, signal.SIGKILL)
        pytest.fail("the sampler process outlived pytest")


def test_a_sampler_that_cannot_start_falls_back_to_a_thread(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(sys, "executable", "/nonexistent/python")
    handle = SamplerHandle.start(_config())
    assert handle.mode == "thread"
    assert handle.problems and "sampling in a thread instead" in handle.problems[0]
    time.sleep(0.3)
    assert any(r["kind"] == "proc" for r in handle.stop())


def test_a_crashed_sampler_is_reported() -> None:
    handle = SamplerHandle.start(_config(process_interval="soon"))
    time.sleep(0.5)
    handle.stop()
    handle.close()
    assert handle.problems
    assert handle.problems[0].startswith("the sampler process failed")
    assert "TypeError" in handle.problems[0]  # its last words on stderr


def _after_main(monkeypatch: pytest.MonkeyPatch, code: str) -> None:
    """Make the sampler process run ``code`` after ``main`` (after it has said DONE, before
    it ends)."""
    call = "main(sys.argv[2], sys.argv[3])\n"
    assert sampler_handle._BOOTSTRAP.count(call) == 1
    monkeypatch.setattr(
        sampler_handle, "_BOOTSTRAP", sampler_handle._BOOTSTRAP.replace(call, call + code)
    )


def test_stop_returns_once_the_records_are_written_not_at_the_exit(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _after_main(monkeypatch, "import time\ntime.sleep(30)\n")
    handle = SamplerHandle.start(_config())
    time.sleep(0.3)
    pid = handle.pid
    start = time.monotonic()
    records = handle.stop()
    assert time.monotonic() - start < 10  # not the 30 s the process lingers
    assert records[-1]["kind"] == "end" and handle.problems == []
    assert psutil.pid_exists(pid or -1)  # still there: reaped by close()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no ResourceWarning about a running process or pipe
        handle.close(timeout=0.2)  # it is still sleeping: killed, and reaped
    assert not psutil.pid_exists(pid or -1)
    assert handle.problems == []


def test_a_crash_after_the_records_are_written_is_harmless(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _after_main(monkeypatch, "raise SystemExit('crashed on the way out')\n")
    handle = SamplerHandle.start(_config())
    time.sleep(0.3)
    records = handle.stop()
    handle.close()
    assert records[-1]["kind"] == "end"
    assert handle.problems == []


@pytest.mark.parametrize("mode", ["none", "auto"])
def test_the_sampler_process_loads_only_sampling_and_skips_the_teardown(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, mode: str
) -> None:
    if mode == "auto":
        monkeypatch.delenv("DOCKER_HOST", raising=False)
        if docker_host_configured():
            pytest.skip("a Docker engine socket is here: auto mode samples its containers")
    facts = tmp_path / "facts.json"
    teardown = tmp_path / "teardown"
    code = f"""
import atexit, gc, json
atexit.register(open, {str(teardown)!r}, "w")
with open({str(facts)!r}, "w") as f:
    json.dump({{"modules": sorted(sys.modules), "gc": gc.isenabled(),
               "frozen": gc.get_freeze_count()}}, f)
"""
    _after_main(monkeypatch, code)
    handle = SamplerHandle.start(_config(containers={"mode": mode, "filters": {}}))
    time.sleep(0.3)
    records = handle.stop()
    handle.close()  # waits for the exit: the facts are written by then
    assert records[-1]["kind"] == "end" and handle.problems == []
    found = json.loads(facts.read_text())
    modules = set(found["modules"])
    # pytest's side of the sampler (and pytest) stay out of the process, and so does the
    # containers' module when no container can be sampled (none, or auto without an
    # engine); so do the heavier modules the sampler does without (dataclasses pulls in
    # inspect); psutil is loaded
    left_out = {"pytest_p3monitor.sampling.handle", "tempfile", "pytest", "_pytest"}
    left_out |= {"pytest_p3monitor.sampling.containers", "docker"}
    left_out |= {"dataclasses", "inspect", "shutil", "pathlib"}
    assert not left_out & modules
    assert {"psutil", "pytest_p3monitor.sampling.procs"} <= modules
    # the collector is on again after start-up, what start-up created is frozen
    assert found["gc"] and found["frozen"] > 0
    # it ended with os._exit, without the interpreter's teardown (atexit is part of that)
    assert not teardown.exists()


def test_a_sampler_that_never_finishes_is_stopped_after_the_timeout(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A process that ignores its closed stdin and never writes its records.
    monkeypatch.setattr(sampler_handle, "_BOOTSTRAP", "import time\ntime.sleep(30)\n")
    handle = SamplerHandle.start(_config())
    pid = handle.pid
    start = time.monotonic()
    assert handle.stop(timeout=0.5) == []
    assert time.monotonic() - start < 5
    handle.close()
    assert not psutil.pid_exists(pid or -1)
    assert len(handle.problems) == 1
    assert "did not finish within" in handle.problems[0]


def test_a_sampler_killed_before_it_finished_is_reported() -> None:
    handle = SamplerHandle.start(_config())
    time.sleep(0.3)
    os.kill(handle.pid or -1, signal.SIGKILL)
    time.sleep(0.1)
    handle.stop()
    handle.close()
    assert handle.problems == ["the sampler process failed: killed by signal 9"]


def test_close_without_stop_ends_the_sampler() -> None:
    handle = SamplerHandle.start(_config())
    pid = handle.pid
    handle.close()
    assert not psutil.pid_exists(pid or -1)
