"""Per-test figures of the process running the test: CPU time, peak RSS, bytes read/written.

Measured test after test (``start()`` before the first, ``lap()`` at the end of each) for
a few microseconds per test. On Linux the kernel can reset the peak RSS of a process: writing
``5`` to ``/proc/self/clear_refs`` sets ``VmHWM`` back to the current RSS, so ``VmHWM``
after the test is the peak of that test alone. The file descriptors stay open and are read
with ``pread``, which costs about a quarter of an ``open``/``read``/``close``.

Where that is not possible (not Linux, or ``/proc`` is read-only) ``getrusage`` stands in:
``ru_maxrss`` is the peak of the process's whole life, so it is the test's own peak only
when it grew during the test, and an upper bound otherwise.

Bytes read and written are the storage layer's (``getrusage``'s block counts, the
``read_bytes``/``write_bytes`` of ``/proc/self/io``). Every byte passed to ``read()`` and
``write()`` (pipes, sockets and the page cache included: ``rchar``/``wchar``) is counted only
when asked (``chars=True``, ini ``p3monitor_io_chars``): it takes one more read of
``/proc/self/io`` per test, the meter's most expensive system call (5-9 us a test in a
pytest session, against 2-5 us for ``getrusage``; about 1% of a suite of trivial tests).
"""

from __future__ import annotations

import contextlib
import functools
import os
import sys
import time
from collections.abc import Callable, Sequence
from os import pread, write
from typing import Any

#: Figure names (keys of ``TestRecord.figures``), all for one test: setup, call and teardown.
CPU_TIME = "cpu_time_s"
RSS_PEAK = "rss_peak_bytes"
READ_BYTES = "read_bytes"  # storage layer (what reached the disk)
WRITE_BYTES = "write_bytes"
READ_CHARS = "read_chars"  # every read()/write() byte, including cache, pipes, sockets
WRITE_CHARS = "write_chars"

# ru_maxrss is in kilobytes on Linux, bytes on macOS.
_MAXRSS_UNIT = 1 if sys.platform == "darwin" else 1024

# The fields of getrusage's struct_rusage that the meter reads, by index (its documented
# order). A struct sequence is a tuple: an index is a C-level read, while an attribute is a
# lookup through the type, in a cache that the interpreter shares with pytest's own work
# between two tests. In a 5000-test session those lookups missed, and reading the fields by
# index took about 14,000 instructions off each test, a third of the meter's (callgrind).
_UTIME, _STIME, _MAXRSS, _INBLOCK, _OUBLOCK = 0, 1, 2, 9, 10

# Bumped in the child of every os.fork(): a meter opened before it has /proc/self of the
# parent open, and reopens.
_forks = 0


def _forked() -> None:
    global _forks
    _forks += 1


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forked)


def _parse_io(data: bytes) -> tuple[int, int, int, int]:
    """(rchar, wchar, read_bytes, write_bytes) of a ``/proc/PID/io`` text."""
    parts = data.split()
    # The kernel's fixed layout, checked; the general parse below is the fallback.
    if len(parts) >= 12 and parts[0] == b"rchar:" and parts[8] == b"read_bytes:":
        return int(parts[1]), int(parts[3]), int(parts[9]), int(parts[11])
    values = {}
    for line in data.split(b"\n"):
        key, _, value = line.partition(b":")
        if value:
            values[key] = int(value)
    return (
        values.get(b"rchar", 0),
        values.get(b"wchar", 0),
        values.get(b"read_bytes", 0),
        values.get(b"write_bytes", 0),
    )


def _parse_hwm(data: bytes) -> int | None:
    """``VmHWM`` of a ``/proc/PID/status`` text, in bytes."""
    start = data.find(b"VmHWM:")
    if start < 0:
        return None
    end = data.find(b"kB", start)
    try:
        return int(data[start + 6 : end]) * 1024
    except ValueError:
        return None


class TestMeter:
    """Measures the tests of this process one after the other: :meth:`start` before the
    first, :meth:`lap` at the end of each, which gives that test's figures and begins the
    next one's. Not thread-safe (pytest is not either).

    After the reset, ``getrusage`` gives the peak too (``ru_maxrss`` is the larger of the
    reset high-water mark and the peaks of threads that have exited, which the reset does
    not touch). When such an old thread peak is above the RSS at the start of a test it
    would hide the test's own peak: then, and only then, ``VmHWM`` is read instead. Such a
    pinned peak can only be above the RSS after a test whose peak was (``ru_maxrss`` before
    the reset bounds it): only then does the meter call ``getrusage`` again after the
    reset to see it.

    ``lap`` runs for every test, so it is written for speed: one frame (no helper method
    calls), the system calls bound as module globals (``getrusage`` with its argument as a
    ``partial``: one C call), each file read once per test (the end of one test is the
    start of the next), the layout of ``/proc/self/io`` checked once in ``_open`` rather
    than at every read, ``try`` rather than ``contextlib.suppress`` (no context manager
    object per test), no ``getpid`` (a system call since glibc 2.25: a fork is noticed by a
    counter that ``os.register_at_fork`` bumps). Two system calls per test: ``getrusage``
    and ``/proc/self/statm`` (and ``/proc/self/io`` with ``chars``); the reset is one more
    only when the RSS has come down from its high-water mark. While the RSS only grows
    (most tests) the mark *is* the RSS, so the reset would change nothing: the next test's
    peak is the mark then.
    """

    __test__ = False  # not a test class, despite the name

    def __init__(self, chars: bool = False) -> None:
        self.chars = chars  # whether read_chars/write_chars are measured (see the module)
        self._forks = -1
        self._status_fd = self._statm_fd = self._io_fd = self._clear_fd = -1
        # CPU seconds and block counts at the start of the test; cpu None before start()
        self._cpu0: float | None = None
        self._inblock0 = self._oublock0 = 0
        self._maxrss0 = 0  # ru_maxrss after the reset at its start, when it was stale
        self._chars0: tuple[int, int] | None = None  # rchar, wchar at the start of the test
        self._own_reads = 0  # bytes the meter read after that (they count in rchar)
        self._io_fixed = False  # whether /proc/self/io starts "rchar: N wchar: N"
        self._stale = False
        self._page = 4096
        self.reset_works = False
        self._open()

    def _open(self) -> None:
        self.close()
        self._forks = _forks
        if not sys.platform.startswith("linux"):
            return
        with contextlib.suppress(OSError, ValueError):
            self._page = os.sysconf("SC_PAGE_SIZE")
        if self.chars:
            with contextlib.suppress(OSError):
                self._io_fd = os.open("/proc/self/io", os.O_RDONLY)
                parts = os.pread(self._io_fd, 1024, 0).split(None, 4)
                self._io_fixed = parts[0] == b"rchar:" and parts[2] == b"wchar:"
        try:
            self._status_fd = os.open("/proc/self/status", os.O_RDONLY)
            self._statm_fd = os.open("/proc/self/statm", os.O_RDONLY)
            self._clear_fd = os.open("/proc/self/clear_refs", os.O_WRONLY)
            os.write(self._clear_fd, b"5")
            self.reset_works = _parse_hwm(os.pread(self._status_fd, 4096, 0)) is not None
        except OSError:
            self.reset_works = False
        if not self.reset_works:
            for name in ("_status_fd", "_statm_fd", "_clear_fd"):
                fd = getattr(self, name)
                if fd >= 0:
                    with contextlib.suppress(OSError):
                        os.close(fd)
                setattr(self, name, -1)

    def close(self) -> None:
        for fd in (self._status_fd, self._statm_fd, self._io_fd, self._clear_fd):
            if fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self._status_fd = self._statm_fd = self._io_fd = self._clear_fd = -1

    def start(self) -> None:
        """Begin measuring (the first test): what ran before is not counted."""
        self._cpu0 = None
        self.lap()

    def lap(self) -> dict[str, float]:
        """The figures of the test since the previous lap (or :meth:`start`); the next
        test is measured from here. Empty before :meth:`start`."""
        if _forks != self._forks:  # forked: /proc/self was resolved for the parent
            self._open()
            self._cpu0 = None
        usage = _rusage()
        cpu = usage[_UTIME] + usage[_STIME]
        maxrss, inblock, oublock = usage[_MAXRSS], usage[_INBLOCK], usage[_OUBLOCK]
        mark = maxrss * _MAXRSS_UNIT  # the high-water mark now, in bytes
        chars: tuple[int, int] | None = None
        own_reads = 0  # what the meter reads from here on counts in the next test's rchar
        if self._io_fd >= 0:
            try:
                io = pread(self._io_fd, 1024, 0)
                own_reads = len(io)
                if self._io_fixed:
                    _, rchar, _, wchar, _ = io.split(None, 4)
                    chars = int(rchar), int(wchar)
                else:
                    chars = _parse_io(io)[:2]
            except (OSError, ValueError):
                pass
        cpu0 = self._cpu0
        figures: dict[str, float] = {}
        if cpu0 is not None:
            figures = {
                CPU_TIME: cpu - cpu0,
                # 512-byte blocks: the same counters as read_bytes/write_bytes of /proc/PID/io
                READ_BYTES: (inblock - self._inblock0) * 512,
                WRITE_BYTES: (oublock - self._oublock0) * 512,
            }
            peak = mark
            if self._stale and maxrss <= self._maxrss0:
                with contextlib.suppress(OSError):
                    status = pread(self._status_fd, 4096, 0)
                    own_reads += len(status)
                    peak = _parse_hwm(status) or peak
            if peak:
                figures[RSS_PEAK] = peak
            chars0 = self._chars0
            if chars is not None and chars0 is not None:
                # The meter's own reads since then count in rchar: left out.
                figures[READ_CHARS] = chars[0] - chars0[0] - self._own_reads
                figures[WRITE_CHARS] = chars[1] - chars0[1]
        # The next test starts here.
        self._chars0 = chars
        self._cpu0, self._inblock0, self._oublock0 = cpu, inblock, oublock
        if self.reset_works:
            try:
                statm = pread(self._statm_fd, 256, 0)  # "size resident shared ..." in pages
                own_reads += len(statm)
                resident = int(statm.split(None, 2)[1]) * self._page
                if mark > resident:  # the RSS came down from the mark: reset it
                    write(self._clear_fd, b"5")
                    # A thread's pinned peak can hide the next test's only if it is above
                    # the RSS now (give or take 256 KiB), and it is at most the peak before
                    # the reset.
                    above = resident + 262144
                    stale = mark > above
                    if stale:
                        self._maxrss0 = _rusage()[_MAXRSS]  # after the reset
                        stale = self._maxrss0 * _MAXRSS_UNIT > above
                    self._stale = stale
                else:  # the mark is the RSS now (a pinned peak is not above it either)
                    self._stale = False
            except (OSError, ValueError, IndexError):
                self.reset_works = self._stale = False
        self._own_reads = own_reads
        return figures


#: getrusage's fields in its order (struct_rusage): seconds for the times, ints for the rest.
_rusage: Callable[[], Sequence[Any]]

if sys.platform == "win32":  # pragma: no cover - Windows: only the CPU time

    def _rusage() -> Sequence[Any]:
        """getrusage's fields that the meter reads, in its order: the process clock's CPU
        time, and nothing for the rest."""
        return (time.process_time(), 0.0, 0, 0, 0, 0, 0, 0, 0, 0, 0)

else:
    import resource

    # One C call without a Python frame around it.
    _rusage = functools.partial(resource.getrusage, resource.RUSAGE_SELF)
