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
import os
import sys
import time

try:
    import resource
except ImportError:  # pragma: no cover - Windows
    resource = None  # type: ignore[assignment]

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
    """Measures one test at a time in this process. Not thread-safe (pytest is not either)."""

    __test__ = False  # not a test class, despite the name

    def __init__(self) -> None:
        self._pid = -1
        self._status_fd = -1
        self._io_fd = -1
        self._clear_fd = -1
        self._cpu0 = 0.0
        self._io0: tuple[int, int, int, int] | None = None
        self._own_chars = 0
        self.reset_works = False
        self._open()

    def _open(self) -> None:
        self.close()
        self._pid = os.getpid()
        if not sys.platform.startswith("linux"):
            return
        try:
            self._status_fd = os.open("/proc/self/status", os.O_RDONLY)
            self._io_fd = os.open("/proc/self/io", os.O_RDONLY)
        except OSError:
            self.close()
            self._pid = os.getpid()
            return
        try:
            self._clear_fd = os.open("/proc/self/clear_refs", os.O_WRONLY)
            os.write(self._clear_fd, b"5")
            self.reset_works = _parse_hwm(os.pread(self._status_fd, 4096, 0)) is not None
        except OSError:
            if self._clear_fd >= 0:
                os.close(self._clear_fd)
            self._clear_fd = -1
            self.reset_works = False

    def close(self) -> None:
        for fd in (self._status_fd, self._io_fd, self._clear_fd):
            if fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self._status_fd = self._io_fd = self._clear_fd = -1

    def _read_io(self) -> tuple[int, int, int, int] | None:
        if self._io_fd >= 0:
            try:
                data = os.pread(self._io_fd, 1024, 0)
                # This read itself counts in rchar once it returns: leave it out.
                self._own_chars = len(data)
                return _parse_io(data)
            except (OSError, ValueError):
                return None
        if resource is not None:
            usage = resource.getrusage(resource.RUSAGE_SELF)
            # Block counts are in 512-byte units; character counts are not available.
            return (0, 0, usage.ru_inblock * 512, usage.ru_oublock * 512)
        return None  # pragma: no cover - Windows

    def start(self) -> None:
        """Begin measuring a test."""
        if os.getpid() != self._pid:  # forked: /proc/self was resolved for the parent
            self._open()
        if self.reset_works:
            try:
                os.write(self._clear_fd, b"5")
            except OSError:
                self.reset_works = False
        self._io0 = self._read_io()
        self._cpu0 = time.process_time()

    def stop(self) -> dict[str, float]:
        """The figures of the test since :meth:`start`."""
        cpu = time.process_time() - self._cpu0
        own_chars = self._own_chars
        io1 = self._read_io()
        peak: int | None = None
        if self.reset_works:
            try:
                peak = _parse_hwm(os.pread(self._status_fd, 4096, 0))
            except OSError:
                peak = None
        if peak is None and resource is not None:
            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * _MAXRSS_UNIT
        figures: dict[str, float] = {CPU_TIME: cpu}
        if peak is not None:
            figures[RSS_PEAK] = peak
        io0 = self._io0
        if io1 is not None and io0 is not None:
            figures[READ_BYTES] = io1[2] - io0[2]
            figures[WRITE_BYTES] = io1[3] - io0[3]
            if self._io_fd >= 0:
                figures[READ_CHARS] = io1[0] - io0[0] - own_chars
                figures[WRITE_CHARS] = io1[1] - io0[1]
        return figures
