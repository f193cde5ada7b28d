"""Containers through the Docker Engine API: which ones, and their CPU, memory, network, I/O.

Which containers (parsed in :mod:`.settings`): ``--p3monitor-containers`` / ini
``p3monitor_containers`` take ``none``, ``all``, or Docker filters ``key=value``
(repeatable; the same key repeated means any of the values, different keys must all match,
as with ``docker ps --filter``). Unset means ``auto``: all running containers when a
Docker engine is configured, nothing and no warning otherwise. Containers are listed again
at every sample, so ones started by fixtures during the session are included.

Figures, per ``docker stats`` but computed here so that any engine works:

- CPU % from two samples of ``cpu_stats.cpu_usage.total_usage`` over the wall time
  between them, never from ``precpu_stats`` (podman leaves it empty);
- memory = ``usage`` minus the inactive file cache (v1 ``total_inactive_file``,
  v2 ``inactive_file``), and its percent of ``limit``;
- network rx/tx summed over interfaces; block read/write summed over devices.

Stats are read with ``one_shot=True`` (a real Docker daemon otherwise waits 1-2 s per call
to fill ``precpu_stats``).
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

from ..exporters.redact import redact_text, redact_url
from .settings import ContainerSelection, docker_host_configured

#: Failed stats reads in a row after which a container is warned about.
STATS_FAILURES_WARNED = 3

Warn = Callable[[str], None]


# --- pure figures from one stats answer ---------------------------------------------------


def cpu_ns(stats: Mapping[str, Any]) -> int | None:
    """``cpu_stats.cpu_usage.total_usage`` (nanoseconds of CPU used so far), if present."""
    try:
        value = stats["cpu_stats"]["cpu_usage"]["total_usage"]
    except (KeyError, TypeError):
        return None
    return int(value) if isinstance(value, (int, float)) else None


def cpu_percent(prev_ns: int, prev_t: float, ns: int, t: float) -> float | None:
    """CPU % (100 = one core) between two readings at monotonic times ``prev_t`` < ``t``."""
    if t <= prev_t or ns < prev_ns:  # a counter that went back: the container restarted
        return None
    return 100.0 * (ns - prev_ns) / ((t - prev_t) * 1e9)


def memory_bytes(stats: Mapping[str, Any]) -> int | None:
    """Memory in use: usage minus the inactive file cache (v1 and v2 key names)."""
    memory = stats.get("memory_stats") or {}
    usage = memory.get("usage")
    if not isinstance(usage, (int, float)):
        private = memory.get("privateworkingset")  # Windows containers
        return int(private) if isinstance(private, (int, float)) else None
    detail = memory.get("stats") or {}
    for key in ("total_inactive_file", "inactive_file"):
        inactive = detail.get(key)
        if isinstance(inactive, (int, float)) and inactive <= usage:
            return int(usage - inactive)
    return int(usage)


def memory_limit(stats: Mapping[str, Any]) -> int | None:
    limit = (stats.get("memory_stats") or {}).get("limit")
    return int(limit) if isinstance(limit, (int, float)) and limit > 0 else None


def net_bytes(stats: Mapping[str, Any]) -> tuple[int, int]:
    """(rx, tx) bytes summed over the container's interfaces."""
    rx = tx = 0
    for iface in (stats.get("networks") or {}).values():
        if isinstance(iface, Mapping):
            rx += int(iface.get("rx_bytes") or 0)
            tx += int(iface.get("tx_bytes") or 0)
    return rx, tx


def blkio_bytes(stats: Mapping[str, Any]) -> tuple[int, int]:
    """(read, write) bytes summed over devices (``op`` is "Read" on v1, "read" on v2)."""
    read = write = 0
    entries = (stats.get("blkio_stats") or {}).get("io_service_bytes_recursive") or []
    for entry in entries:
        if not isinstance(entry, Mapping):
            continue
        op = str(entry.get("op", "")).lower()
        value = int(entry.get("value") or 0)
        if op == "read":
            read += value
        elif op == "write":
            write += value
    return read, write


def engine_disk_bytes(df: Mapping[str, Any]) -> int:
    """The engine's disk use from ``GET /system/df``: images, containers' layers, volumes."""
    layers = int(df.get("LayersSize") or 0)
    if not layers:  # podman reports 0 here; sum the images instead
        layers = sum(int(i.get("Size") or 0) for i in df.get("Images") or [])
    containers = sum(int(c.get("SizeRw") or 0) for c in df.get("Containers") or [])
    volumes = 0
    for volume in df.get("Volumes") or []:
        size = (volume.get("UsageData") or {}).get("Size")
        if isinstance(size, (int, float)) and size > 0:
            volumes += int(size)
    cache = int(df.get("BuilderSize") or 0)
    return layers + containers + volumes + cache


class ContainerSample(NamedTuple):
    """One sample of one container (a NamedTuple: see :mod:`.cgroup` on dataclasses)."""

    t: float  # epoch seconds
    id: str
    name: str
    cpu_percent: float | None
    memory_bytes: int | None
    memory_limit_bytes: int | None
    net_rx_bytes: int
    net_tx_bytes: int
    blk_read_bytes: int
    blk_write_bytes: int
    created: float | None  # epoch seconds, when the engine says

    def to_json(self) -> dict[str, Any]:
        return {"kind": "container", **self._asdict()}


def _name(entry: Mapping[str, Any]) -> str:
    names = entry.get("Names") or []
    if names:
        return str(names[0]).lstrip("/")
    return str(entry.get("Id", ""))[:12]


class ContainerSampler:
    """Lists the selected containers and reads their stats, one warning per kind of fault."""

    def __init__(self, selection: ContainerSelection, warn: Warn, timeout: float = 5.0) -> None:
        self.selection = selection
        self._warn = warn
        self._timeout = timeout
        self._api: Any = None
        self._prev: dict[str, tuple[int, float]] = {}
        self._failures: dict[str, int] = {}  # container id -> stats reads failed in a row
        self._warned: set[str] = set()
        self.matched: set[str] = set()
        self.enabled = selection.mode != "none"

    def _warn_once(self, kind: str, text: str) -> None:
        if kind not in self._warned:
            self._warned.add(kind)
            self._warn(text)

    def connect(self) -> float | None:
        """Connect to the engine; the API round trip (ms) of a ping, or None (and disabled)."""
        if not self.enabled:
            return None
        if self.selection.mode == "auto" and not docker_host_configured():
            self.enabled = False
            return None
        where = redact_url(os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock")
        source = "DOCKER_HOST" if os.environ.get("DOCKER_HOST") else "the default socket"
        try:
            self._api = _api_client(self._timeout)
            return self.ping()
        except Exception as exc:
            self.enabled = False
            self.close()
            if self.selection.mode != "auto" or os.environ.get("DOCKER_HOST"):
                self._warn_once(
                    "connect",
                    f"cannot reach the Docker engine at {where} ({source}): "
                    f"{redact_text(_short(exc))}; containers are not sampled. Set DOCKER_HOST to a "
                    "running engine, or --p3monitor-containers=none.",
                )
            return None

    def close(self) -> None:
        api, self._api = self._api, None
        if api is not None:
            with contextlib.suppress(Exception):
                api.close()

    def ping(self) -> float | None:
        """The Docker API round trip of one ping, in milliseconds."""
        if self._api is None:
            return None
        start = time.perf_counter()
        self._api.ping()
        return (time.perf_counter() - start) * 1000.0

    def disk_bytes(self) -> int | None:
        if self._api is None:
            return None
        try:
            return engine_disk_bytes(self._api.df())
        except Exception as exc:
            self._warn_once("df", f"could not read the Docker engine's disk use: {_short(exc)}")
            return None

    def _list(self) -> list[Mapping[str, Any]]:
        filters: dict[str, list[str]] = {}
        if self.selection.mode == "filters":
            filters = {k: list(v) for k, v in self.selection.filters.items()}
        return list(self._api.containers(filters=filters or None))

    def sample(self) -> list[ContainerSample]:
        """Stats of every selected running container now."""
        if not self.enabled or self._api is None:
            return []
        try:
            entries = self._list()
        except Exception as exc:
            self._warn_once(
                "list", f"listing containers failed: {_short(exc)}; retrying at the next sample"
            )
            return []
        samples = []
        alive = set()
        for entry in entries:
            container_id = str(entry.get("Id", ""))
            if not container_id:
                continue
            try:
                stats = self._api.stats(container_id, stream=False, one_shot=True)
            except Exception as exc:
                # An engine answers an empty body for a container that is starting or
                # stopping: one failed read is no news, a container that keeps failing is.
                failures = self._failures[container_id] = self._failures.get(container_id, 0) + 1
                if failures >= STATS_FAILURES_WARNED or _status(exc) in (404, 409):
                    self._gone(entry, exc)
                continue
            self._failures.pop(container_id, None)
            now_mono = time.monotonic()
            t = time.time()
            if not isinstance(stats, Mapping) or not stats:
                continue
            alive.add(container_id)
            self.matched.add(container_id)
            ns = cpu_ns(stats)
            percent = None
            previous = self._prev.get(container_id)
            if ns is not None:
                if previous is not None:
                    percent = cpu_percent(previous[0], previous[1], ns, now_mono)
                self._prev[container_id] = (ns, now_mono)
            rx, tx = net_bytes(stats)
            read, write = blkio_bytes(stats)
            created = entry.get("Created")
            samples.append(
                ContainerSample(
                    t=t,
                    id=container_id,
                    name=_name(entry),
                    cpu_percent=percent,
                    memory_bytes=memory_bytes(stats),
                    memory_limit_bytes=memory_limit(stats),
                    net_rx_bytes=rx,
                    net_tx_bytes=tx,
                    blk_read_bytes=read,
                    blk_write_bytes=write,
                    created=float(created) if isinstance(created, (int, float)) else None,
                )
            )
        for gone in set(self._prev) - alive:
            del self._prev[gone]
        return samples

    def _gone(self, entry: Mapping[str, Any], exc: BaseException) -> None:
        if _status(exc) in (404, 409):
            self._warn_once(
                "gone",
                f"container {_name(entry)} went away while it was being sampled; its figures "
                "cover the time until then, and the other containers are still sampled",
            )
        else:
            self._warn_once(
                "stats", f"reading stats of container {_name(entry)} failed: {_short(exc)}"
            )

    def finish(self) -> None:
        """End of session: warn about a filter that never matched anything; disconnect."""
        if self.enabled and self.selection.mode == "filters" and not self.matched:
            self._warn_once(
                "nomatch",
                "no running container matched --p3monitor-containers "
                f"{self.selection.describe()} during the session; no container was sampled",
            )
        self.close()


def _api_client(timeout: float) -> Any:
    """A ``docker.APIClient`` from the environment, speaking the engine's API version.

    Like ``docker.from_env()``, but a failed version check closes its connection instead of
    leaving it for the garbage collector (an unclosed-socket warning in the test session).
    """
    import docker
    from docker.utils import kwargs_from_env

    kwargs = kwargs_from_env()
    _check_reachable(str(kwargs.get("base_url") or "unix:///var/run/docker.sock"), timeout)
    probe = docker.APIClient(
        version=docker.constants.DEFAULT_DOCKER_API_VERSION, timeout=timeout, **kwargs
    )
    try:
        version = probe.version(api_version=False)["ApiVersion"]
    finally:
        probe.close()
    return docker.APIClient(version=str(version), timeout=timeout, **kwargs)


def _check_reachable(base_url: str, timeout: float) -> None:
    """Connect to the engine's socket once, closing it; OSError saying why not.

    The docker SDK leaves the socket of a failed connection open; checking first keeps
    an unreachable engine from costing an unclosed-socket warning.
    """
    import socket
    from urllib.parse import urlsplit

    if base_url.startswith(("unix://", "http+unix://")):
        path = base_url.split("://", 1)[1]
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout)
            try:
                sock.connect(path)
            except OSError as exc:
                raise OSError(f"{exc.strerror or exc} ({path})") from None
        return
    if base_url.startswith(("tcp://", "http://", "https://")):
        parts = urlsplit(base_url.replace("tcp://", "http://", 1))
        port = parts.port or (2376 if parts.scheme == "https" else 2375)
        with socket.create_connection((parts.hostname or "localhost", port), timeout=timeout):
            return


def _status(exc: BaseException) -> int | None:
    """The HTTP status of a failed Docker API call, if it got that far."""
    status = getattr(getattr(exc, "response", None), "status_code", None)
    return status if isinstance(status, int) else None


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    first = text[0] if text else type(exc).__name__
    return first if len(first) <= 200 else first[:197] + "..."
