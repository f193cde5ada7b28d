"""Per-test figures of the process running the test: CPU time, peak RSS, bytes read/written.

Measured around each test (``start()`` before setup, ``stop()`` after teardown) for a few
microseconds per test. On Linux the kernel can reset the peak RSS of a process: writing
``5`` to ``/proc/self/clear_refs`` sets ``VmHWM`` back to the current RSS, so ``VmHWM``
after the test is the peak of that test alone. The file descriptors stay open and are read
with ``pread``, which costs about a quarter of an ``open``/``read``/``close``.

Where that is not possible (not Linux, or ``/proc`` is read-only) ``getrusage`` stands in:
``ru_maxrss`` is the peak of the process's whole life, so it is the test's own peak only
when it grew during the test, and an upper bound otherwise. Bytes read and written then
come from the block counts of ``getrusage``.
"""

from __future__ import annotations

import contextlib
import functools
import os
import sys
import time
from os import getpid, pread, write
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
    """Measures one test at a time in this process. Not thread-safe (pytest is not either).

    After the reset, ``getrusage`` gives the peak too (``ru_maxrss`` is the larger of the
    reset high-water mark and the peaks of threads that have exited, which the reset does
    not touch). When such an old thread peak is above the RSS at the start of a test it
    would hide the test's own peak: then, and only then, ``VmHWM`` is read instead.

    ``start`` and ``stop`` run for every test, so they are written for speed: no helper
    method calls on the way (each costs a frame), the system calls bound as module globals
    (``getrusage`` with its argument as a ``partial``: one C call), ``/proc/self/io`` kept
    raw at the start and both texts parsed at the stop with one ``split`` each, its layout
    checked once in ``_open`` rather than at every read, ``try`` rather than
    ``contextlib.suppress`` (no context manager object per test). Measured with callgrind,
    in user space: start+stop took ~33,000 instructions before this and ~29,000 after; the
    six system calls alone take ~9,500 of them, and the same work written as straight-line
    code without error handling ~26,000.
    """

    __test__ = False  # not a test class, despite the name

    def __init__(self) -> None:
        self._pid = -1
        self._status_fd = self._statm_fd = self._io_fd = self._clear_fd = -1
        self._usage0: Any = None
        self._io0 = b""  # /proc/self/io at the start of the test
        self._io_fixed = False  # whether /proc/self/io starts "rchar: N wchar: N"
        self._stale = False
        self._page = 4096
        self.reset_works = False
        self._open()

    def _open(self) -> None:
        self.close()
        self._pid = os.getpid()
        if not sys.platform.startswith("linux"):
            return
        with contextlib.suppress(OSError, ValueError):
            self._page = os.sysconf("SC_PAGE_SIZE")
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
        """Begin measuring a test."""
        if getpid() != self._pid:  # forked: /proc/self was resolved for the parent
            self._open()
        if self.reset_works:
            try:
                write(self._clear_fd, b"5")
                usage = _rusage()
                # statm: "size resident shared ..." in pages
                resident = int(pread(self._statm_fd, 256, 0).split(None, 2)[1]) * self._page
                self._stale = usage.ru_maxrss * _MAXRSS_UNIT > resident + 262144
            except (OSError, ValueError, IndexError):
                self.reset_works = self._stale = False
                usage = _rusage()
        else:
            usage = _rusage()
        self._usage0 = usage
        if self._io_fd >= 0:
            try:
                self._io0 = pread(self._io_fd, 1024, 0)
            except OSError:
                self._io0 = b""

    def stop(self) -> dict[str, float]:
        """The figures of the test since :meth:`start`."""
        usage = _rusage()
        io0 = self._io0
        io1 = b""
        if io0:
            # try/except rather than contextlib.suppress: no context manager object per test
            try:  # noqa: SIM105
                io1 = pread(self._io_fd, 1024, 0)
            except OSError:
                pass
        before = self._usage0
        if before is None:
            return {}
        figures: dict[str, float] = {
            CPU_TIME: (usage.ru_utime + usage.ru_stime) - (before.ru_utime + before.ru_stime),
            # 512-byte blocks: the same counters as read_bytes/write_bytes of /proc/PID/io
            READ_BYTES: (usage.ru_inblock - before.ru_inblock) * 512,
            WRITE_BYTES: (usage.ru_oublock - before.ru_oublock) * 512,
        }
        peak = usage.ru_maxrss * _MAXRSS_UNIT
        if self._stale and usage.ru_maxrss <= before.ru_maxrss:
            with contextlib.suppress(OSError):
                peak = _parse_hwm(pread(self._status_fd, 4096, 0)) or peak
        if peak:
            figures[RSS_PEAK] = peak
        if io1:
            try:
                if self._io_fixed:
                    _, rchar0, _, wchar0, _ = io0.split(None, 4)
                    _, rchar1, _, wchar1, _ = io1.split(None, 4)
                    read_chars = int(rchar1) - int(rchar0)
                    write_chars = int(wchar1) - int(wchar0)
                else:
                    counts0, counts1 = _parse_io(io0), _parse_io(io1)
                    read_chars = counts1[0] - counts0[0]
                    write_chars = counts1[1] - counts0[1]
            except ValueError:
                pass
            else:
                # The start's read counts in rchar once it has returned: leave it out.
                figures[READ_CHARS] = read_chars - len(io0)
                figures[WRITE_CHARS] = write_chars
        return figures


if sys.platform == "win32":  # pragma: no cover - Windows: only the CPU time

    def _rusage() -> Any:
        return _NoUsage()

else:
    import resource

    # One C call without a Python frame around it.
    _rusage = functools.partial(resource.getrusage, resource.RUSAGE_SELF)


class _NoUsage:  # pragma: no cover - Windows: only the CPU time, from the process clock
    ru_maxrss = 0
    ru_inblock = ru_oublock = 0

    def __getattr__(self, name: str) -> float:
        return time.process_time() if name == "ru_utime" else 0.0
