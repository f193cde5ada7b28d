"""The pytest process tree (xdist workers, subprocesses the tests start) through psutil.

CPU % is the CPU time the tree used between two samples over the wall time between them
(100 % is one core busy). Processes that live shorter than the sampling interval are never
seen alive, but their CPU time is not lost: once a parent in the tree reaps them it shows
in the parent's ``children_user``/``children_system`` times. A process that *was* seen and
then ends gives the CPU already counted as a credit against that jump, so it is not
counted twice.
"""

from __future__ import annotations

import time
from typing import Any, NamedTuple


class ProcSample(NamedTuple):
    """One sample of the tree; the sampler writes it as a ``proc`` record (``_asdict()``).

    A NamedTuple, not a dataclass: see :mod:`.cgroup` for what importing dataclasses costs
    the sampler process.
    """

    t: float  # epoch seconds
    cpu_percent: float | None  # None on the first sample (no interval yet)
    rss_bytes: int
    processes: int


class ProcessTree:
    """Samples the process ``root_pid`` and all its descendants, minus ``exclude``."""

    def __init__(self, root_pid: int, exclude: frozenset[int] = frozenset()) -> None:
        import psutil  # type: ignore[import-untyped,unused-ignore]  # only in the sampler

        self._psutil: Any = psutil
        self._root = psutil.Process(root_pid)
        self._exclude = exclude
        # (pid, create_time) -> (own cpu seconds, reaped children's cpu seconds)
        self._seen: dict[tuple[int, float], tuple[float, float]] = {}
        self._last_t: float | None = None
        self._last_mono = 0.0
        self._credit = 0.0

    def sample(self, t: float) -> ProcSample | None:
        """One sample at epoch time ``t``; None when the root process is gone."""
        psutil = self._psutil
        mono = time.monotonic()
        try:
            procs = [self._root, *self._root.children(recursive=True)]
        except psutil.Error:
            return None
        current: dict[tuple[int, float], tuple[float, float]] = {}
        rss = 0
        own_delta = 0.0
        children_delta = 0.0
        for proc in procs:
            if proc.pid in self._exclude:
                continue
            try:
                with proc.oneshot():
                    times = proc.cpu_times()
                    mem = proc.memory_info()
                    created = proc.create_time()
            except psutil.Error:
                continue
            own = times.user + times.system
            reaped = getattr(times, "children_user", 0.0) + getattr(times, "children_system", 0.0)
            key = (proc.pid, created)
            current[key] = (own, reaped)
            rss += mem.rss
            previous = self._seen.get(key)
            if previous is not None:
                own_delta += max(own - previous[0], 0.0)
                children_delta += max(reaped - previous[1], 0.0)
            elif self._last_t is not None:
                # Not there at the last sample, so born since (create_time is too coarse to
                # tell: it counts from a boot time in whole seconds): all of its CPU time
                # falls in this interval.
                own_delta += own
                children_delta += reaped
        for key, (own, reaped) in self._seen.items():
            if key not in current:
                self._credit += own + reaped
        used_credit = min(self._credit, children_delta)
        self._credit -= used_credit
        cpu_percent: float | None = None
        if self._last_t is not None and mono > self._last_mono:
            used = own_delta + children_delta - used_credit
            cpu_percent = 100.0 * used / (mono - self._last_mono)
        self._seen = current
        self._last_t = t
        self._last_mono = mono
        return ProcSample(t=t, cpu_percent=cpu_percent, rss_bytes=rss, processes=len(current))
