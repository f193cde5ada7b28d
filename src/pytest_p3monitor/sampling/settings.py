"""What the session sampler is asked to sample: the containers, the probes, the intervals.

Parsed in the pytest process when the session is configured, to fail early on a bad
``--p3monitor-containers`` or ``p3monitor_probes`` value; the sampler process gets the
result as JSON. Kept apart from :mod:`.containers` and :mod:`.probes` (which do the
sampling) so that pytest imports only this: the value types are ``NamedTuple`` s, whose
classes cost a quarter of a dataclass's to create (measured with timeit: ~140 us against
~600 us for a frozen dataclass of two fields), and nothing here imports more than
``typing`` and ``os``.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from types import MappingProxyType
from typing import Any, Literal, NamedTuple

#: Default seconds between samples of the process tree / of the containers.
PROCESS_INTERVAL = 0.5
CONTAINER_INTERVAL = 1.0

#: ``docker ps --filter`` keys the Engine API accepts for listing containers.
FILTER_KEYS = frozenset(
    {
        "ancestor",
        "before",
        "expose",
        "exited",
        "health",
        "id",
        "isolation",
        "is-task",
        "label",
        "name",
        "network",
        "publish",
        "since",
        "status",
        "volume",
    }
)
_CLOSED_VALUES = {
    "status": frozenset(
        {"created", "restarting", "running", "removing", "paused", "exited", "dead"}
    ),
    "health": frozenset({"starting", "healthy", "unhealthy", "none"}),
    "is-task": frozenset({"true", "false"}),
}

Mode = Literal["auto", "none", "all", "filters"]


class ContainerSelection(NamedTuple):
    """Which containers to sample."""

    mode: Mode = "auto"
    filters: Mapping[str, tuple[str, ...]] = MappingProxyType({})

    def describe(self) -> str:
        if self.mode != "filters":
            return self.mode
        return " ".join(f"{k}={v}" for k, values in self.filters.items() for v in values)

    def to_json(self) -> dict[str, Any]:
        return {"mode": self.mode, "filters": {k: list(v) for k, v in self.filters.items()}}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ContainerSelection:
        filters = {str(k): tuple(str(x) for x in v) for k, v in data.get("filters", {}).items()}
        return cls(mode=data.get("mode", "auto"), filters=filters)


def docker_host_configured() -> bool:
    """Whether this machine names a Docker engine (DOCKER_HOST, or the default socket).

    Here rather than in :mod:`.containers` so that the sampler process checks it before
    importing that module: in ``auto`` mode without an engine, neither that module nor the
    docker SDK is loaded.
    """
    return bool(os.environ.get("DOCKER_HOST")) or os.path.exists("/var/run/docker.sock")


def parse_selection(values: Iterable[str]) -> ContainerSelection:
    """Parse the option's values; raise ValueError saying what is wrong and the accepted form."""
    items = [v.strip() for v in values if v.strip()]
    if not items:
        return ContainerSelection("auto")
    words = {item.lower() for item in items if "=" not in item}
    if words & {"none", "all"}:
        if len(items) > 1:
            raise ValueError(f"{' and '.join(sorted(words))} cannot be combined with other values")
        return ContainerSelection("none" if "none" in words else "all")
    filters: dict[str, list[str]] = {}
    for item in items:
        key, sep, value = item.partition("=")
        key = key.strip().lower()
        value = value.strip()
        if not sep or not key or not value:
            raise ValueError(f"{item!r} is not none, all or a filter KEY=VALUE")
        if key not in FILTER_KEYS:
            raise ValueError(
                f"unknown filter key {key!r} in {item!r}; "
                f"known keys: {', '.join(sorted(FILTER_KEYS))}"
            )
        allowed = _CLOSED_VALUES.get(key)
        if allowed is not None and value.lower() not in allowed:
            raise ValueError(f"{item!r}: {key} must be one of {', '.join(sorted(allowed))}")
        filters.setdefault(key, []).append(value)
    return ContainerSelection("filters", {k: tuple(v) for k, v in filters.items()})


class Probe(NamedTuple):
    """A TCP endpoint whose connect latency is measured at the start and end of the session."""

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
            raise ValueError(f"{text!r} has no port")
        if ":" in host:
            raise ValueError(f"{text!r}: write an IPv6 address as [ADDRESS]:PORT")
    if not host or any(c.isspace() for c in host):
        raise ValueError(f"{text!r} has no valid host")
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ValueError(f"{text!r}: the port must be a number from 1 to 65535")
    return Probe(host, int(port_text))
