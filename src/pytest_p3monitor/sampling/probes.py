"""Disk free space and TCP connect latency probes (``p3monitor_probes`` in the ini file).

The probes are parsed in :mod:`.settings`; measured here, in the sampler process.
"""

from __future__ import annotations

import shutil
import socket
import time
from typing import Any

from .settings import Probe


def connect_ms(probe: Probe, timeout: float = 2.0) -> tuple[float | None, str | None]:
    """(milliseconds to open a TCP connection, None) or (None, the reason it failed)."""
    start = time.perf_counter()
    try:
        with socket.create_connection((probe.host, probe.port), timeout=timeout):
            return (time.perf_counter() - start) * 1000.0, None
    except OSError as exc:
        reason = exc.strerror or str(exc) or type(exc).__name__
        return None, reason


def disk(path: str) -> dict[str, Any]:
    """Free and total bytes of the filesystem holding ``path``."""
    try:
        usage = shutil.disk_usage(path)
    except OSError as exc:
        return {"path": path, "free_bytes": None, "total_bytes": None, "error": str(exc)}
    return {"path": path, "free_bytes": usage.free, "total_bytes": usage.total}
