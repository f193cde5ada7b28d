"""Unit and property tests of the sampling package: parsing, figures, summaries."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import types
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pytest_p3monitor.sampling import cgroup, containers, probes, settings, summary
from pytest_p3monitor.sampling import sampler as sampler_module
from pytest_p3monitor.sampling.pertest import (
    CPU_TIME,
    READ_CHARS,
    RSS_PEAK,
    WRITE_BYTES,
    WRITE_CHARS,
    TestMeter,
    _parse_hwm,
    _parse_io,
)
from pytest_p3monitor.sampling.procs import ProcessTree
from pytest_p3monitor.sampling.sampler import SamplerConfig, _next_slot

linux = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux /proc only")


# --- per-test meter ---------------------------------------------------------------------------


def test_parse_io_fixed_layout_and_fallback() -> None:
    text = (
        b"rchar: 10\nwchar: 20\nsyscr: 1\nsyscw: 2\nread_bytes: 4096\nwrite_bytes: 8192\n"
        b"cancelled_write_bytes: 0\n"
    )
    assert _parse_io(text) == (10, 20, 4096, 8192)
    assert _parse_io(b"wchar: 5\nrchar: 7\n") == (7, 5, 0, 0)


def test_parse_hwm() -> None:
    assert _parse_hwm(b"Name:\tpython\nVmHWM:\t   2048 kB\nVmRSS:\t 100 kB\n") == 2048 * 1024
    assert _parse_hwm(b"Name:\tpython\n") is None


@linux
def test_meter_peak_resets_between_tests() -> None:
    meter = TestMeter()
    assert meter.reset_works, "clear_refs should work on this Linux machine"
    # How a session uses it: start before the first test, a lap at the end of each.
    meter.start()
    block = bytearray(80 * 1024 * 1024)
    block[::4096] = b"x" * len(block[::4096])  # touch every page
    del block
    big = meter.lap()
    small = meter.lap()
    assert big[RSS_PEAK] - small[RSS_PEAK] > 60 * 1024 * 1024
    assert big[CPU_TIME] > small[CPU_TIME] >= 0


@linux
def test_meter_resets_the_mark_only_when_the_rss_came_down(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """While the RSS is at its mark the reset is skipped (it would change nothing); once
    the RSS has come down from it, the mark is reset. The readings are faked: a real
    process's RSS moves by a page now and then on its own."""
    import resource

    from pytest_p3monitor.sampling import pertest

    meter = TestMeter()
    page = meter._page
    now = {"resident_pages": 10_000, "mark_kb": 10_000 * page // 1024}

    def usage() -> resource.struct_rusage:  # times and block counts 0, ru_maxrss the mark
        return resource.struct_rusage((0.0, 0.0, now["mark_kb"], *[0] * 13))

    real_pread = pertest.pread

    def fake_pread(fd: int, size: int, offset: int) -> bytes:
        if fd == meter._statm_fd:
            return f"50000 {now['resident_pages']} 300 1 0 20000 0\n".encode()
        return real_pread(fd, size, offset)

    resets: list[bytes] = []
    monkeypatch.setattr(pertest, "_rusage", usage)
    monkeypatch.setattr(pertest, "pread", fake_pread)
    monkeypatch.setattr(pertest, "write", lambda fd, data: resets.append(data) or len(data))
    meter.start()
    grew = meter.lap()
    assert resets == [], "the RSS is at its mark: no reset"
    assert grew[RSS_PEAK] == now["mark_kb"] * 1024
    now["resident_pages"] = 9_000  # the test freed memory: the RSS is below the mark
    meter.lap()
    assert resets == [b"5"]
    now["resident_pages"] = 12_000  # grew past it again
    now["mark_kb"] = 12_000 * page // 1024
    meter.lap()
    assert resets == [b"5"]


@linux
def test_meter_peaks_stay_each_tests_own_when_memory_is_kept() -> None:
    meter = TestMeter()
    meter.start()
    kept = bytearray(60 * 1024 * 1024)  # grows the RSS and keeps it
    kept[::4096] = b"x" * len(kept[::4096])
    grew = meter.lap()
    spike = bytearray(40 * 1024 * 1024)  # up and down again
    spike[::4096] = b"x" * len(spike[::4096])
    del spike
    spiked = meter.lap()
    calm = meter.lap()
    assert spiked[RSS_PEAK] - grew[RSS_PEAK] > 30 * 1024 * 1024
    assert spiked[RSS_PEAK] - calm[RSS_PEAK] > 30 * 1024 * 1024
    assert calm[RSS_PEAK] >= grew[RSS_PEAK] - 10 * 1024 * 1024
    del kept


@linux
def test_meter_peak_after_a_big_thread_exited() -> None:
    """A thread's exit pins its peak in getrusage; the meter must not report it later."""
    import threading

    def hog() -> None:
        block = bytearray(150 * 1024 * 1024)
        block[::4096] = b"x" * len(block[::4096])
        del block

    resident = int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    thread = threading.Thread(target=hog)
    thread.start()
    thread.join()
    meter = TestMeter()
    meter.start()
    small = meter.lap()
    block = bytearray(30 * 1024 * 1024)
    block[::4096] = b"x" * len(block[::4096])
    del block
    grown = meter.lap()
    assert small[RSS_PEAK] < resident + 100 * 1024 * 1024
    assert 20 * 1024 * 1024 < grown[RSS_PEAK] - small[RSS_PEAK] < 60 * 1024 * 1024


@linux
def test_meter_counts_writes_and_not_its_own_reads(tmp_path: Path) -> None:
    meter = TestMeter(chars=True)
    meter.start()
    idle = meter.lap()
    assert idle[READ_CHARS] == 0
    with open(tmp_path / "f", "wb") as f:
        f.write(b"x" * 300_000)
        f.flush()
        os.fsync(f.fileno())
    wrote = meter.lap()
    assert 300_000 <= wrote[WRITE_CHARS] < 310_000
    assert wrote[WRITE_BYTES] >= 290_000


@linux
def test_meter_reads_an_unusual_io_layout_with_the_general_parser(tmp_path: Path) -> None:
    meter = TestMeter(chars=True)
    assert meter._io_fixed  # the kernel's layout: the fast path
    meter._io_fixed = False
    meter.start()
    (tmp_path / "f").write_bytes(b"x" * 100_000)
    wrote = meter.lap()
    assert 100_000 <= wrote[WRITE_CHARS] < 110_000
    assert wrote[READ_CHARS] == 0


@linux
def test_meter_counts_read_and_write_calls_only_when_asked(tmp_path: Path) -> None:
    meter = TestMeter()
    assert meter._io_fd == -1  # no /proc/self/io read per test
    meter.start()
    (tmp_path / "f").write_bytes(b"x" * 100_000)
    figures = meter.lap()
    assert READ_CHARS not in figures and WRITE_CHARS not in figures
    assert figures[RSS_PEAK] > 0 and figures[CPU_TIME] >= 0


def test_meter_gives_nothing_before_it_starts() -> None:
    assert TestMeter().lap() == {}


def test_meter_without_proc_falls_back_to_getrusage(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "platform", "darwin-test")
    meter = TestMeter()
    assert not meter.reset_works
    meter.start()
    figures = meter.lap()
    assert figures[RSS_PEAK] > 0  # the lifetime peak: an upper bound
    assert READ_CHARS not in figures


@linux
def test_meter_reopens_after_fork() -> None:
    meter = TestMeter()
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        meter.start()
        block = bytearray(40 * 1024 * 1024)
        block[::4096] = b"x" * len(block[::4096])
        figures = meter.lap()
        os.write(write, str(int(figures[RSS_PEAK])).encode())
        os._exit(0)
    os.close(write)
    os.waitpid(pid, 0)
    child_peak = int(os.read(read, 100))
    os.close(read)
    assert child_peak > 40 * 1024 * 1024


# --- cgroup -----------------------------------------------------------------------------------


def _write(base: Path, rel: str, text: str) -> None:
    path = base / rel.lstrip("/")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


V1_MOUNTINFO = """\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct
35 31 0:32 /docker /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
"""


def test_cgroup_v1(tmp_path: Path) -> None:
    _write(tmp_path, "proc/42/cgroup", "4:memory:/docker/abc\n2:cpu,cpuacct:/ci\n0::/\n")
    _write(tmp_path, "proc/42/mountinfo", V1_MOUNTINFO)
    mem = "sys/fs/cgroup/memory/abc"
    _write(tmp_path, f"{mem}/memory.usage_in_bytes", "1000000\n")
    _write(tmp_path, f"{mem}/memory.limit_in_bytes", "4000000\n")
    _write(
        tmp_path,
        f"{mem}/memory.stat",
        "cache 5\ninactive_file 1\ntotal_inactive_file 200000\nhierarchical_memory_limit 3000000\n",
    )
    cpu = "sys/fs/cgroup/cpu,cpuacct/ci"
    _write(tmp_path, f"{cpu}/cpuacct.usage", "123456789\n")
    _write(tmp_path, f"{cpu}/cpu.cfs_quota_us", "150000\n")
    _write(tmp_path, f"{cpu}/cpu.cfs_period_us", "100000\n")

    found = cgroup.find_cgroup(42, base=str(tmp_path))
    assert found is not None and found.version == 1
    assert found.memory_dir == str(tmp_path / mem)
    reading = found.read()
    assert reading == cgroup.CgroupReading(
        cpu_ns=123456789,
        memory_bytes=800000,
        memory_limit_bytes=3000000,
        cpu_limit_cores=1.5,
    )


def test_cgroup_v1_unlimited_and_path_outside_namespace(tmp_path: Path) -> None:
    # No cgroup namespace: the host path is not below the mount; the mount itself is ours.
    _write(tmp_path, "proc/7/cgroup", "4:memory:/kubepods/pod1\n")
    _write(tmp_path, "proc/7/mountinfo", V1_MOUNTINFO.replace("/docker", "/"))
    _write(tmp_path, "sys/fs/cgroup/memory/memory.usage_in_bytes", "500")
    _write(tmp_path, "sys/fs/cgroup/memory/memory.limit_in_bytes", "9223372036854771712")
    found = cgroup.find_cgroup(7, base=str(tmp_path))
    assert found is not None
    assert found.memory_dir == str(tmp_path / "sys/fs/cgroup/memory")
    reading = found.read()
    assert reading.memory_bytes == 500
    assert reading.memory_limit_bytes is None
    assert reading.cpu_ns is None  # no cpuacct in /proc/7/cgroup


def test_cgroup_v2(tmp_path: Path) -> None:
    _write(tmp_path, "proc/9/cgroup", "0::/ci/job\n")
    _write(tmp_path, "proc/9/mountinfo", "30 1 0:26 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n")
    base = "sys/fs/cgroup/ci/job"
    _write(tmp_path, f"{base}/memory.current", "2000000\n")
    _write(tmp_path, f"{base}/memory.max", "8000000\n")
    _write(tmp_path, f"{base}/memory.stat", "anon 1\nfile 9\ninactive_file 500000\n")
    _write(tmp_path, f"{base}/cpu.stat", "usage_usec 2500\nuser_usec 2000\n")
    _write(tmp_path, f"{base}/cpu.max", "200000 100000\n")
    found = cgroup.find_cgroup(9, base=str(tmp_path))
    assert found is not None and found.version == 2
    assert found.read() == cgroup.CgroupReading(
        cpu_ns=2_500_000, memory_bytes=1_500_000, memory_limit_bytes=8_000_000, cpu_limit_cores=2.0
    )
    _write(tmp_path, f"{base}/memory.max", "max\n")
    _write(tmp_path, f"{base}/cpu.max", "max 100000\n")
    reading = found.read()
    assert reading.memory_limit_bytes is None and reading.cpu_limit_cores is None


def test_cgroup_missing_files(tmp_path: Path) -> None:
    assert cgroup.find_cgroup(1, base=str(tmp_path)) is None
    _write(tmp_path, "proc/3/cgroup", "0::/gone\n")
    _write(tmp_path, "proc/3/mountinfo", "30 1 0:26 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n")
    found = cgroup.find_cgroup(3, base=str(tmp_path))
    assert found is not None
    assert found.read() == cgroup.CgroupReading(None, None, None, None)


@linux
def test_cgroup_of_this_machine() -> None:
    found = cgroup.find_cgroup()
    if found is None:
        pytest.skip("no cgroup readable here")
    reading = found.read()
    assert reading.memory_bytes is None or reading.memory_bytes > 0
    assert cgroup.host_memory_bytes() or 0 > 0


def test_host_memory_bytes_from_meminfo(tmp_path: Path) -> None:
    _write(tmp_path, "proc/meminfo", "MemTotal:       16384 kB\nMemFree:  1 kB\n")
    assert cgroup.host_memory_bytes(str(tmp_path)) == 16384 * 1024


def test_parse_mountinfo_unescapes() -> None:
    line = r"40 31 0:37 / /sys/fs/cgroup/a\040b rw - cgroup cgroup rw,memory"
    (mount,) = cgroup.parse_mountinfo(line + "\n22 1 0:21 / /proc rw - proc proc rw\n")
    assert mount.mount_point == "/sys/fs/cgroup/a b"
    assert "memory" in mount.super_options


@given(st.dictionaries(st.from_regex(r"[a-z_]{1,12}", fullmatch=True), st.integers(0, 2**62)))
def test_parse_flat_keyed_roundtrip(values: dict[str, int]) -> None:
    text = "".join(f"{k} {v}\n" for k, v in values.items())
    assert cgroup.parse_flat_keyed(text) == values


# --- containers: selection and figures --------------------------------------------------------


def test_selection_modes() -> None:
    assert settings.parse_selection([]).mode == "auto"
    assert settings.parse_selection(["none"]).mode == "none"
    assert settings.parse_selection([" ALL "]).mode == "all"
    sel = settings.parse_selection(
        ["label=com.docker.compose.project=app", "label=tier=db", "name=web", "status=running"]
    )
    assert sel.mode == "filters"
    assert sel.filters == {
        "label": ("com.docker.compose.project=app", "tier=db"),
        "name": ("web",),
        "status": ("running",),
    }
    assert settings.ContainerSelection.from_json(sel.to_json()) == sel


@pytest.mark.parametrize(
    ("values", "message"),
    [
        (["all", "label=a"], "cannot be combined"),
        (["none", "all"], "cannot be combined"),
        (["colour=red"], "unknown filter key 'colour'"),
        (["label"], "is not none, all or a filter KEY=VALUE"),
        (["label="], "is not none, all or a filter KEY=VALUE"),
        (["status=sleeping"], "status must be one of"),
        (["some"], "is not none, all or a filter"),
    ],
)
def test_selection_errors(values: list[str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        settings.parse_selection(values)


V1_STATS: dict[str, Any] = {
    "cpu_stats": {"cpu_usage": {"total_usage": 5_000_000_000}},
    "precpu_stats": {"cpu_usage": {"total_usage": 0}},
    "memory_stats": {
        "usage": 100_000_000,
        "limit": 400_000_000,
        "stats": {"total_inactive_file": 20_000_000, "inactive_file": 1},
    },
    "networks": {"eth0": {"rx_bytes": 100, "tx_bytes": 10}, "eth1": {"rx_bytes": 5, "tx_bytes": 1}},
    "blkio_stats": {
        "io_service_bytes_recursive": [
            {"major": 8, "minor": 0, "op": "Read", "value": 4096},
            {"major": 8, "minor": 0, "op": "Write", "value": 8192},
            {"major": 8, "minor": 16, "op": "Read", "value": 1},
            {"major": 8, "minor": 0, "op": "Total", "value": 12288},
        ]
    },
}


def test_container_figures_v1() -> None:
    assert containers.cpu_ns(V1_STATS) == 5_000_000_000
    assert containers.memory_bytes(V1_STATS) == 80_000_000
    assert containers.memory_limit(V1_STATS) == 400_000_000
    assert containers.net_bytes(V1_STATS) == (105, 11)
    assert containers.blkio_bytes(V1_STATS) == (4097, 8192)


def test_container_figures_v2_podman_and_missing() -> None:
    v2 = {
        "memory_stats": {"usage": 50, "limit": 100, "stats": {"inactive_file": 10}},
        "blkio_stats": {"io_service_bytes_recursive": [{"op": "read", "value": 7}]},
    }
    assert containers.memory_bytes(v2) == 40
    assert containers.blkio_bytes(v2) == (7, 0)
    podman = {"memory_stats": {"usage": 60_784_640, "limit": 25_276_510_208}, "networks": None}
    assert containers.memory_bytes(podman) == 60_784_640
    assert containers.net_bytes(podman) == (0, 0)
    assert containers.cpu_ns({}) is None
    assert containers.memory_bytes({}) is None
    assert containers.blkio_bytes({"blkio_stats": {"io_service_bytes_recursive": None}}) == (0, 0)


def test_cpu_percent_from_two_samples() -> None:
    assert containers.cpu_percent(0, 10.0, 1_000_000_000, 11.0) == pytest.approx(100.0)
    assert containers.cpu_percent(0, 10.0, 500_000_000, 12.0) == pytest.approx(25.0)
    assert containers.cpu_percent(100, 10.0, 50, 11.0) is None  # restarted: counter went back
    assert containers.cpu_percent(0, 10.0, 50, 10.0) is None


@given(st.integers(0, 10**15), st.integers(0, 10**12), st.floats(0, 1e6), st.floats(0.001, 1e4))
def test_cpu_percent_property(ns0: int, used: int, t0: float, dt: float) -> None:
    percent = containers.cpu_percent(ns0, t0, ns0 + used, t0 + dt)
    if t0 + dt > t0:
        assert percent is not None
        assert percent >= 0
        assert percent == pytest.approx(100.0 * used / (((t0 + dt) - t0) * 1e9))


def test_engine_disk_bytes() -> None:
    docker_df = {
        "LayersSize": 1000,
        "Images": [{"Size": 600}, {"Size": 700}],
        "Containers": [{"SizeRw": 10}, {"SizeRw": None}],
        "Volumes": [{"UsageData": {"Size": 5}}, {"UsageData": {"Size": -1}}],
        "BuilderSize": 3,
    }
    assert containers.engine_disk_bytes(docker_df) == 1018
    podman_df = {"LayersSize": 0, "Images": [{"Size": 1997895}], "Containers": [{"SizeRw": 12}]}
    assert containers.engine_disk_bytes(podman_df) == 1997907


class FakeAPI:
    """The few docker.APIClient calls the sampler uses."""

    def __init__(self) -> None:
        self.listed: list[dict[str, Any]] = []
        self.stats_by_id: dict[str, Any] = {}
        self.filters_seen: list[Any] = []

    def containers(self, filters: Any = None) -> list[dict[str, Any]]:
        self.filters_seen.append(filters)
        return self.listed

    def stats(self, container: str, stream: bool, one_shot: bool) -> Any:
        assert stream is False and one_shot is True
        value = self.stats_by_id[container]
        if isinstance(value, Exception):
            raise value
        return value

    def ping(self) -> bool:
        return True

    def df(self) -> dict[str, Any]:
        return {"LayersSize": 42}


class NotFound(Exception):
    def __init__(self) -> None:
        super().__init__("404 Client Error: no such container")
        self.response = type("R", (), {"status_code": 404})()


def _sampler(selection: settings.ContainerSelection) -> tuple[Any, FakeAPI, list[str]]:
    warnings: list[str] = []
    sampler = containers.ContainerSampler(selection, warnings.append)
    api = FakeAPI()
    sampler._api = api
    return sampler, api, warnings


def test_container_sample_record() -> None:
    """The ``container`` record the sampler writes: the sample's fields and the kind."""
    sample = containers.ContainerSample(
        t=1.5,
        id="a" * 64,
        name="db",
        cpu_percent=12.5,
        memory_bytes=100,
        memory_limit_bytes=None,
        net_rx_bytes=1,
        net_tx_bytes=2,
        blk_read_bytes=3,
        blk_write_bytes=4,
        created=100.0,
    )
    assert sample.to_json() == {
        "kind": "container",
        "t": 1.5,
        "id": "a" * 64,
        "name": "db",
        "cpu_percent": 12.5,
        "memory_bytes": 100,
        "memory_limit_bytes": None,
        "net_rx_bytes": 1,
        "net_tx_bytes": 2,
        "blk_read_bytes": 3,
        "blk_write_bytes": 4,
        "created": 100.0,
    }


def test_container_sampler_cpu_from_two_samples_and_gone_once() -> None:
    selection = settings.parse_selection(["label=app=x"])
    sampler, api, warnings = _sampler(selection)
    api.listed = [{"Id": "a" * 64, "Names": ["/db"], "Created": 100}, {"Id": "b" * 64}]
    api.stats_by_id = {"a" * 64: V1_STATS, "b" * 64: V1_STATS}
    first = sampler.sample()
    assert [s.name for s in first] == ["db", "b" * 12]
    assert first[0].cpu_percent is None  # no interval yet
    assert first[0].memory_bytes == 80_000_000
    assert api.filters_seen[-1] == {"label": ["app=x"]}
    time.sleep(0.01)
    later = dict(V1_STATS, cpu_stats={"cpu_usage": {"total_usage": 5_010_000_000}})
    api.stats_by_id = {"a" * 64: later, "b" * 64: NotFound()}
    second = sampler.sample()
    assert len(second) == 1
    assert second[0].cpu_percent is not None and second[0].cpu_percent > 0
    api.stats_by_id = {"a" * 64: NotFound(), "b" * 64: NotFound()}
    assert sampler.sample() == []
    assert len(warnings) == 1
    assert "went away" in warnings[0]
    sampler.finish()
    assert len(warnings) == 1  # it matched something


def test_container_sampler_one_bad_stats_read_is_no_news() -> None:
    """Engines answer an empty body for a container that is starting: no warning."""
    sampler, api, warnings = _sampler(settings.parse_selection(["all"]))
    api.listed = [{"Id": "a" * 64, "Names": ["/web"]}]
    empty_body = ValueError("Expecting value: line 1 column 1 (char 0)")
    api.stats_by_id = {"a" * 64: empty_body}
    for _ in range(containers.STATS_FAILURES_WARNED - 1):
        assert sampler.sample() == []
    api.stats_by_id = {"a" * 64: V1_STATS}
    assert len(sampler.sample()) == 1
    assert warnings == []
    api.stats_by_id = {"a" * 64: empty_body}
    for _ in range(containers.STATS_FAILURES_WARNED + 2):
        sampler.sample()
    assert len(warnings) == 1
    assert "reading stats of container web failed: Expecting value" in warnings[0]


def test_container_sampler_no_match_warns_at_finish() -> None:
    sampler, _, warnings = _sampler(settings.parse_selection(["name=nothing-like-this"]))
    for _ in range(3):
        assert sampler.sample() == []
    sampler.finish()
    sampler.finish()
    assert warnings == [
        "no running container matched --p3monitor-containers name=nothing-like-this during "
        "the session; no container was sampled"
    ]


def test_container_sampler_list_failure_warns_once() -> None:
    sampler, api, warnings = _sampler(settings.parse_selection(["all"]))

    def broken(filters: Any = None) -> list[Any]:
        raise ConnectionError("engine restarting")

    api.containers = broken  # type: ignore[method-assign]
    assert sampler.sample() == [] and sampler.sample() == []
    assert len(warnings) == 1 and "engine restarting" in warnings[0]


def test_container_sampler_wrong_docker_host(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/p3monitor.sock")
    warnings: list[str] = []
    sampler = containers.ContainerSampler(settings.parse_selection([]), warnings.append, 2.0)
    assert sampler.connect() is None
    assert not sampler.enabled
    assert len(warnings) == 1
    assert "unix:///nonexistent/p3monitor.sock (DOCKER_HOST)" in warnings[0]


def test_sampler_auto_without_engine_does_not_import_containers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(sampler_module, "docker_host_configured", lambda: False)
    # None in sys.modules: importing the module would raise ImportError.
    monkeypatch.setitem(sys.modules, "pytest_p3monitor.sampling.containers", None)
    warnings: list[str] = []
    config = SamplerConfig(root_pid=os.getpid(), containers={"mode": "auto", "filters": {}})
    sampler = sampler_module.Sampler(config, lambda record: None, exclude_self=False)
    monkeypatch.setattr(sampler, "warn", warnings.append)
    assert sampler._containers() is None
    assert warnings == []


def test_container_sampler_auto_without_engine_is_silent(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DOCKER_HOST", raising=False)
    monkeypatch.setattr(containers, "docker_host_configured", lambda: False)
    warnings: list[str] = []
    sampler = containers.ContainerSampler(settings.parse_selection([]), warnings.append)
    assert sampler.connect() is None
    assert warnings == [] and not sampler.enabled


# --- probes -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "probe"),
    [
        ("db:5432", settings.Probe("db", 5432)),
        (" localhost:80 ", settings.Probe("localhost", 80)),
        ("[::1]:6379", settings.Probe("::1", 6379)),
        ("10.0.0.1:65535", settings.Probe("10.0.0.1", 65535)),
    ],
)
def test_parse_probe(text: str, probe: settings.Probe) -> None:
    assert settings.parse_probe(text) == probe
    assert settings.parse_probe(str(probe)) == probe


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("db", "has no port"),
        ("db:", "port must be a number"),
        ("db:0", "port must be a number"),
        ("db:70000", "port must be a number"),
        (":80", "no valid host"),
        ("::1:80", "IPv6"),
        ("[::1]80", "is not \\[IPV6\\]:PORT"),
    ],
)
def test_parse_probe_errors(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        settings.parse_probe(text)


def test_connect_ms_to_a_listening_and_a_closed_port() -> None:
    import socket

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    port = server.getsockname()[1]
    ms, error = probes.connect_ms(settings.Probe("127.0.0.1", port))
    assert error is None and ms is not None and 0 <= ms < 2000
    server.close()
    ms, error = probes.connect_ms(settings.Probe("127.0.0.1", port), timeout=1.0)
    assert ms is None and error


def test_disk() -> None:
    found = probes.disk(".")
    assert found["free_bytes"] > 0 and found["total_bytes"] >= found["free_bytes"]
    usage = shutil.disk_usage(".")
    assert found["total_bytes"] == usage.total
    assert abs(found["free_bytes"] - usage.free) < 64 * 2**20  # others may write meanwhile
    missing = probes.disk("/nonexistent/p3monitor")
    assert missing["free_bytes"] is None and missing["total_bytes"] is None
    assert missing["error"]


def test_disk_without_statvfs(monkeypatch: pytest.MonkeyPatch) -> None:
    """Where os has no statvfs (Windows), shutil.disk_usage gives the figures."""
    usage = types.SimpleNamespace(total=1000, used=300, free=700)
    monkeypatch.setattr(probes, "os", types.SimpleNamespace())  # no statvfs here
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage)
    assert probes.disk("C:\\") == {"path": "C:\\", "free_bytes": 700, "total_bytes": 1000}


# --- process tree -----------------------------------------------------------------------------


def test_process_tree_sees_a_busy_child_and_short_lived_ones() -> None:
    tree = ProcessTree(os.getpid())
    first = tree.sample(time.time())
    assert first is not None and first.cpu_percent is None and first.processes >= 1
    busy = subprocess.Popen(
        [sys.executable, "-c", "import time\nt = time.time()\nwhile time.time() - t < 1.2: pass"]
    )
    try:
        time.sleep(1.0)
        during = tree.sample(time.time())
    finally:
        busy.wait()
    assert during is not None
    assert during.processes >= 2
    # A busy child is one core's worth when the machine is free; a loaded CI machine gives
    # it less (27% seen with five busy processes on two cores). Idle, the tree shows ~0%.
    assert during.cpu_percent is not None and during.cpu_percent > 10
    # Children that live and die between two samples still count, through their parent.
    tree.sample(time.time())
    for _ in range(3):
        subprocess.run(
            [
                sys.executable,
                "-c",
                "import time\nt = time.time()\nwhile time.time() - t < 0.15: pass",
            ],
            check=True,
        )
    after = tree.sample(time.time())
    assert after is not None and after.cpu_percent is not None and after.cpu_percent > 10


def test_process_tree_of_a_gone_process() -> None:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    tree = ProcessTree(proc.pid)
    proc.wait()
    time.sleep(0.05)
    assert tree.sample(time.time()) is None


# --- summaries --------------------------------------------------------------------------------


def test_next_slot_keeps_the_grid() -> None:
    assert _next_slot(10.0, 0.5, 10.1) == 10.5
    assert _next_slot(10.0, 0.5, 11.2) == pytest.approx(11.5)  # missed slots skipped
    assert _next_slot(10.0, 0.5, 10.5) == pytest.approx(11.0)


@given(
    st.floats(0, 1e6, allow_nan=False),
    st.floats(0.01, 10),
    st.floats(0, 1e3, allow_nan=False),
)
def test_next_slot_property(scheduled: float, interval: float, late: float) -> None:
    now = scheduled + late
    following = _next_slot(scheduled, interval, now)
    assert following > now - 1e-6
    assert following - now <= interval + 1e-6


def test_weighted_mean() -> None:
    points = [(0.0, None), (1.0, 100.0), (3.0, 10.0)]
    assert summary.weighted_mean(points) == pytest.approx((100 * 1 + 10 * 2) / 3)
    assert summary.weighted_mean([(0.0, 50.0)]) == 50.0
    assert summary.weighted_mean([]) is None


@given(st.lists(st.tuples(st.floats(0.001, 10), st.floats(0, 1000)), min_size=1, max_size=30))
def test_weighted_mean_between_min_and_max(steps: list[tuple[float, float]]) -> None:
    t = 0.0
    points: list[tuple[float, float | None]] = [(t, None)]
    for dt, value in steps:
        t += dt
        points.append((t, value))
    mean = summary.weighted_mean(points)
    values = [v for _, v in steps]
    assert mean is not None
    assert min(values) - 1e-6 <= mean <= max(values) + 1e-6


@given(st.lists(st.integers(0, 10**9), min_size=1, max_size=30))
def test_counter_total_monotone_is_last_minus_first(increments: list[int]) -> None:
    values = []
    total = 0
    for inc in increments:
        total += inc
        values.append(total)
    assert summary.counter_total(values) == values[-1] - values[0]
    assert summary.counter_total(values, 0.0) == values[-1]


def test_counter_total_across_a_reset() -> None:
    assert summary.counter_total([100, 150, 20, 70]) == 50 + 20 + 50


def _proc(t: float, cpu: float | None, rss: int, n: int, late: float) -> dict[str, Any]:
    return {"kind": "proc", "t": t, "cpu_percent": cpu, "rss_bytes": rss, "processes": n,
            "late_ms": late}  # fmt: skip


def _cgroup(t: float, cpu: float | None, memory: int) -> dict[str, Any]:
    return {"kind": "cgroup", "t": t, "version": 2, "cpu_percent": cpu, "memory_bytes": memory,
            "memory_limit_bytes": 500, "cpu_limit_cores": 2.0}  # fmt: skip


def _container(
    cid: str, name: str, t: float, cpu: float | None, memory: int, limit: int | None,
    rx: int, tx: int, blk: tuple[int, int], created: float,
) -> dict[str, Any]:  # fmt: skip
    return {"kind": "container", "t": t, "id": cid, "name": name, "cpu_percent": cpu,
            "memory_bytes": memory, "memory_limit_bytes": limit, "net_rx_bytes": rx,
            "net_tx_bytes": tx, "blk_read_bytes": blk[0], "blk_write_bytes": blk[1],
            "created": created}  # fmt: skip


def _records() -> list[dict[str, Any]]:
    return [
        {"kind": "meta", "t": 0.0, "host_memory_bytes": 1000, "process_interval": 0.5},
        _proc(1.0, None, 100, 1, 0.1),
        _proc(2.0, 150.0, 300, 3, 0.3),
        _proc(3.0, 50.0, 200, 2, 5.0),
        _cgroup(1.0, None, 400),
        _cgroup(2.0, 80.0, 450),
        _container("c1", "db", 1.0, None, 10, 100, 1000, 10, (0, 0), 0.5),
        _container("c1", "db", 2.0, 40.0, 50, 100, 1500, 20, (5, 6), 0.5),
        _container("c1", "db", 3.0, 20.0, 30, 100, 1600, 30, (5, 6), 0.5),
        _container("c2", "cache", 2.5, None, 7, None, 0, 0, (0, 0), -50.0),
        {"kind": "disk", "when": "start", "path": "/w", "free_bytes": 900, "total_bytes": 2000},
        {"kind": "disk", "when": "end", "path": "/w", "free_bytes": 800, "total_bytes": 2000},
        {"kind": "engine", "when": "start", "api_rtt_ms": 2.5, "disk_bytes": 77},
        {"kind": "engine", "when": "end", "api_rtt_ms": 3.5, "disk_bytes": 88},
        {"kind": "probe", "when": "start", "target": "db:5432", "connect_ms": 1.0, "error": None},
        {
            "kind": "probe",
            "when": "end",
            "target": "db:5432",
            "connect_ms": None,
            "error": "Connection refused",
        },
        {"kind": "warning", "text": "one"},
        {"kind": "warning", "text": "one"},
        {"kind": "warning", "text": "two"},
    ]


def test_process_and_cgroup_summary() -> None:
    records = _records()
    process = summary.process_summary(records)
    assert process["cpu_percent_peak"] == 150.0
    assert process["cpu_percent_mean"] == pytest.approx(100.0)
    assert process["rss_bytes_peak"] == 300
    # the cgroup limit (500) is below the host's memory (1000): percent of the cgroup limit
    assert process["memory_limit_bytes"] == 500
    assert process["memory_percent_peak"] == pytest.approx(60.0)
    assert process["samples"] == 3 and process["processes_peak"] == 3
    group = summary.cgroup_summary(records)
    assert group is not None
    assert group["memory_percent_peak"] == pytest.approx(90.0)
    assert group["cpu_percent_peak"] == 80.0 and group["cpu_limit_cores"] == 2.0
    assert summary.cgroup_summary([r for r in records if r["kind"] != "cgroup"]) is None


def test_container_summaries() -> None:
    db, cache = summary.container_summaries(_records(), session_start=0.0)
    assert db["name"] == "db" and cache["name"] == "cache"
    assert db["cpu_percent_peak"] == 40.0
    assert db["cpu_percent_mean"] == pytest.approx(30.0)
    assert db["memory_bytes_peak"] == 50 and db["memory_percent_peak"] == pytest.approx(50.0)
    # born during the session (created 0.5 >= 0.0): counters from zero
    assert db["net_rx_bytes"] == 1600 and db["net_tx_bytes"] == 30
    assert db["blk_read_bytes"] == 5 and db["blk_write_bytes"] == 6
    assert db["samples"] == 3
    assert cache["memory_percent_peak"] is None and cache["samples"] == 1
    (db_late,) = summary.container_summaries(_records()[:9], session_start=1.0)
    assert db_late["net_rx_bytes"] == 600  # there before the session: from the first sample


def test_per_test_container_peaks() -> None:
    peaks = summary.per_test_container_peaks(
        _records(),
        [
            ("t::long", 0.9, 2.1),  # samples at 1, 2 and the next one, 3
            ("t::short", 2.2, 2.3),  # none inside: db's next sample (3.0) covers it; cache
            # was first seen at 2.5: started after the test, not counted
            ("t::after", 3.5, 4.0),  # nothing after it
            ("t::unknown", None, None),
        ],
    )
    assert peaks["t::long"]["container.db.cpu_percent_peak"] == 40.0
    assert peaks["t::long"]["container.db.memory_bytes_peak"] == 50
    assert peaks["t::long"]["containers_memory_bytes_peak"] == 50
    assert peaks["t::short"]["container.db.memory_bytes_peak"] == 30
    assert "container.cache.memory_bytes_peak" not in peaks["t::short"]
    assert peaks["t::short"]["containers_memory_bytes_peak"] == 30
    assert peaks["t::short"]["containers_cpu_percent_peak"] == 20.0
    assert "t::after" not in peaks and "t::unknown" not in peaks
    assert summary.per_test_container_peaks([], [("x", 0.0, 1.0)]) == {}


@given(
    st.lists(st.tuples(st.floats(0, 100), st.integers(0, 10**12)), min_size=1, max_size=20),
    st.floats(0, 25),
    st.floats(0, 25),
)
def test_per_test_peaks_bounded_by_session_peaks(
    values: list[tuple[float, int]], a: float, b: float
) -> None:
    records = [
        {
            "kind": "container",
            "t": float(i),
            "id": "c",
            "name": "c",
            "cpu_percent": cpu,
            "memory_bytes": mem,
        }
        for i, (cpu, mem) in enumerate(values)
    ]
    start, stop = min(a, b), max(a, b)
    peaks = summary.per_test_container_peaks(records, [("t", start, stop)]).get("t", {})
    (session,) = summary.container_summaries(records, 0.0)
    if peaks:
        assert peaks["containers_cpu_percent_peak"] <= session["cpu_percent_peak"]
        assert peaks["containers_memory_bytes_peak"] <= session["memory_bytes_peak"]
    if start <= len(values) - 1:
        assert peaks  # a window before the last sample always sees one


def test_disk_network_sampler_warnings() -> None:
    records = _records()
    assert summary.disk_summary(records) == {
        "path": "/w",
        "total_bytes": 2000,
        "free_bytes_start": 900,
        "free_bytes_end": 800,
        "engine_bytes_start": 77,
        "engine_bytes_end": 88,
    }
    network = summary.network_summary(records)
    assert network["docker_api_rtt_ms_start"] == 2.5
    assert network["probes"] == [
        {
            "target": "db:5432",
            "connect_ms_start": 1.0,
            "connect_ms_end": None,
            "error": "Connection refused",
        }
    ]
    sampler = summary.sampler_summary(records, "process")
    assert sampler["process_samples"] == 3 and sampler["late_ms_median"] == 0.3
    assert sampler["process_interval_s"] == 0.5
    assert summary.warnings_of(records) == ["one", "two"]


@given(st.lists(st.floats(-1e9, 1e9, allow_nan=False)))
def test_median_is_the_statistics_median(values: list[float]) -> None:
    import statistics

    expected = statistics.median(values) if values else None
    assert summary.median(values) == expected
