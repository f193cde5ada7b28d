"""Disk free space and TCP connect latency probes (``p3monitor_probes`` in the ini file)."""

from __future__ import annotations

import shutil
import socket
import time
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Probe:
    host: str
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


def parse_probe(text: str) -> Probe:
    """``host:port`` (``[v6addr]:port`` for IPv6); ValueError saying what is wrong."""
    value = text.strip()
    if value.startswith("["):
        host, sep, rest = value[1:].partition("]")
        if not sep or not rest.startswith(":"):
            raise ValueError(f"{text!r} is not [IPV6]:PORT")
        port_text = rest[1:]
    else:
        host, sep, port_text = value.rpartition(":")
        if not sep:
            raise ValueError(f"{text!r} has no port; expected HOST:PORT")
        if ":" in host:
            raise ValueError(f"{text!r}: write an IPv6 address as [ADDRESS]:PORT")
    if not host or any(c.isspace() for c in host):
        raise ValueError(f"{text!r} has no valid host; expected HOST:PORT")
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ValueError(f"{text!r}: the port must be a number from 1 to 65535")
    return Probe(host, int(port_text))


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
