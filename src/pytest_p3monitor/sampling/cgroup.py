"""The cgroup of a process, v1 or v2: CPU usage, memory, and their limits.

Linux only; everywhere else (or when the files are not readable) :func:`find_cgroup`
returns None and the sampler leaves the cgroup out with one warning.

Memory is counted as the kernel's usage minus the inactive file cache, as ``docker stats``
and the kubelet do: the cache is reclaimable and would otherwise make every cgroup look
full after enough file I/O.

The sampler process imports this module at start-up, so it keeps to what Python loads
anyway: ``NamedTuple`` s rather than dataclasses (importing :mod:`dataclasses` pulls in
:mod:`inspect`: ~37 M instructions, callgrind, when the whole process took ~230 M) and
:mod:`os.path` strings rather than :mod:`pathlib` (~16 M).
"""

from __future__ import annotations

import os
from typing import NamedTuple

#: cgroup v1 writes "no limit" as a huge number (PAGE_COUNTER_MAX pages, rounded).
_V1_UNLIMITED = 1 << 62


class CgroupReading(NamedTuple):
    """One reading of a cgroup's counters. CPU is cumulative; memory is instantaneous."""

    cpu_ns: int | None
    memory_bytes: int | None
    memory_limit_bytes: int | None  # None: no limit set
    cpu_limit_cores: float | None  # None: no quota set


class Cgroup(NamedTuple):
    """Where a process's cgroup lives. ``memory_dir`` / ``cpu_dir`` are None when absent."""

    version: int  # 1 or 2
    memory_dir: str | None
    cpu_dir: str | None  # v1: the cpuacct directory; v2: the unified directory
    cpu_quota_dir: str | None  # v1: the cpu directory (cfs quota); v2: the unified directory

    def read(self) -> CgroupReading:
        """Read the counters now; a file that cannot be read gives None for its figure."""
        if self.version == 2:
            return CgroupReading(
                cpu_ns=_v2_cpu_ns(self.cpu_dir),
                memory_bytes=_memory_bytes(self.memory_dir, "memory.current", "inactive_file"),
                memory_limit_bytes=_v2_limit(self.memory_dir),
                cpu_limit_cores=_v2_cpu_limit(self.cpu_quota_dir),
            )
        return CgroupReading(
            cpu_ns=_read_int(self.cpu_dir, "cpuacct.usage"),
            memory_bytes=_memory_bytes(
                self.memory_dir, "memory.usage_in_bytes", "total_inactive_file"
            ),
            memory_limit_bytes=_v1_limit(self.memory_dir),
            cpu_limit_cores=_v1_cpu_limit(self.cpu_quota_dir),
        )


def parse_proc_cgroup(text: str) -> dict[str, str]:
    """``/proc/PID/cgroup`` as {controller: path}; the v2 entry is under the key ``""``."""
    paths: dict[str, str] = {}
    for line in text.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        _, controllers, path = parts
        if not controllers:
            paths[""] = path
            continue
        for controller in controllers.split(","):
            paths[controller.removeprefix("name=")] = path
    return paths


class Mount(NamedTuple):
    root: str  # the path inside the hierarchy that is mounted
    mount_point: str
    fstype: str
    super_options: frozenset[str]


def parse_mountinfo(text: str) -> list[Mount]:
    """The cgroup and cgroup2 mounts of ``/proc/PID/mountinfo``."""
    mounts = []
    for line in text.splitlines():
        left, sep, right = line.partition(" - ")
        if not sep:
            continue
        fields = left.split()
        tail = right.split()
        if len(fields) < 5 or len(tail) < 3 or tail[0] not in ("cgroup", "cgroup2"):
            continue
        mounts.append(
            Mount(
                root=_unescape(fields[3]),
                mount_point=_unescape(fields[4]),
                fstype=tail[0],
                super_options=frozenset(tail[2].split(",")),
            )
        )
    return mounts


def _unescape(field: str) -> str:
    # mountinfo escapes space, tab, newline and backslash as octal.
    for code, char in (("\\040", " "), ("\\011", "\t"), ("\\012", "\n"), ("\\134", "\\")):
        field = field.replace(code, char)
    return field


def _resolve(mount: Mount, path: str, base: str) -> str:
    """The directory of cgroup ``path`` under ``mount`` (``base`` prefixes it, for tests)."""
    mount_point = os.path.join(base, mount.mount_point.lstrip("/"))
    rel = path
    if mount.root != "/" and (path == mount.root or path.startswith(mount.root + "/")):
        rel = path[len(mount.root) :]
    candidate = os.path.join(mount_point, rel.lstrip("/"))
    # Without a cgroup namespace a container sees its host path; its own cgroup is then
    # mounted at the mount point itself.
    return candidate if os.path.isdir(candidate) else mount_point


def find_cgroup(pid: int | None = None, base: str = "/") -> Cgroup | None:
    """The cgroup of ``pid`` (default: this process), or None where there is none to read.

    ``base`` is the filesystem root, so that tests can lay out a fake ``/proc`` and ``/sys``.
    """
    proc = os.path.join(base, "proc", str(pid) if pid else "self")
    cgroup_text = _read_text(proc, "cgroup", "utf-8")
    mountinfo_text = _read_text(proc, "mountinfo", "utf-8")
    if cgroup_text is None or mountinfo_text is None:
        return None
    paths = parse_proc_cgroup(cgroup_text)
    mounts = parse_mountinfo(mountinfo_text)

    def v1(controller: str) -> str | None:
        if controller not in paths:
            return None
        for mount in mounts:
            if mount.fstype == "cgroup" and controller in mount.super_options:
                return _resolve(mount, paths[controller], base)
        return None

    memory_v1, cpuacct_v1 = v1("memory"), v1("cpuacct")
    if memory_v1 is not None or cpuacct_v1 is not None:
        return Cgroup(1, memory_v1, cpuacct_v1, v1("cpu"))
    if "" in paths:
        for mount in mounts:
            if mount.fstype == "cgroup2":
                unified = _resolve(mount, paths[""], base)
                return Cgroup(2, unified, unified, unified)
    return None


def _read_text(directory: str | None, name: str, encoding: str = "ascii") -> str | None:
    """The text of file ``name`` in ``directory``; None when it cannot be read or decoded."""
    if directory is None:
        return None
    try:
        with open(os.path.join(directory, name), encoding=encoding) as f:
            return f.read()
    except (OSError, ValueError):
        return None


def _read_int(directory: str | None, name: str) -> int | None:
    text = _read_text(directory, name)
    if text is None:
        return None
    try:
        return int(text.split()[0])
    except (ValueError, IndexError):
        return None


def parse_flat_keyed(text: str) -> dict[str, int]:
    """A ``memory.stat`` / ``cpu.stat`` file as {key: value}, skipping lines that do not parse."""
    values: dict[str, int] = {}
    for line in text.splitlines():
        key, _, value = line.partition(" ")
        try:
            values[key] = int(value)
        except ValueError:
            continue
    return values


def _memory_bytes(directory: str | None, usage_file: str, inactive_key: str) -> int | None:
    usage = _read_int(directory, usage_file)
    if usage is None:
        return None
    stat = parse_flat_keyed(_read_text(directory, "memory.stat") or "")
    inactive = stat.get(inactive_key, stat.get("inactive_file", 0))
    return max(usage - inactive, 0)


def _v1_limit(directory: str | None) -> int | None:
    limits = []
    direct = _read_int(directory, "memory.limit_in_bytes")
    if direct is not None:
        limits.append(direct)
    hierarchical = parse_flat_keyed(_read_text(directory, "memory.stat") or "").get(
        "hierarchical_memory_limit"
    )
    if hierarchical is not None:
        limits.append(hierarchical)
    limits = [limit for limit in limits if 0 < limit < _V1_UNLIMITED]
    return min(limits) if limits else None


def _v2_limit(directory: str | None) -> int | None:
    text = _read_text(directory, "memory.max")
    if text is None or text.strip() == "max":
        return None
    try:
        return int(text)
    except ValueError:
        return None


def _v2_cpu_ns(directory: str | None) -> int | None:
    stat = parse_flat_keyed(_read_text(directory, "cpu.stat") or "")
    usec = stat.get("usage_usec")
    return None if usec is None else usec * 1000


def _v1_cpu_limit(directory: str | None) -> float | None:
    quota = _read_int(directory, "cpu.cfs_quota_us")
    period = _read_int(directory, "cpu.cfs_period_us")
    if quota is None or period is None or quota <= 0 or period <= 0:
        return None
    return quota / period


def _v2_cpu_limit(directory: str | None) -> float | None:
    text = _read_text(directory, "cpu.max")
    if text is None:
        return None
    parts = text.split()
    if len(parts) != 2 or parts[0] == "max":
        return None
    try:
        quota, period = int(parts[0]), int(parts[1])
    except ValueError:
        return None
    return quota / period if quota > 0 and period > 0 else None


def host_memory_bytes(base: str = "/") -> int | None:
    """MemTotal of ``/proc/meminfo`` (bytes), or the sysconf figure elsewhere."""
    text = _read_text(os.path.join(base, "proc"), "meminfo")
    if text is not None:
        for line in text.splitlines():
            if line.startswith("MemTotal:"):
                try:
                    return int(line.split()[1]) * 1024
                except (ValueError, IndexError):
                    break
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None
