"""The ``p3monitor`` fixture: named phases and service start-up times.

::

    def test_app(p3monitor):
        with p3monitor.phase("docker_build"):
            build_image()
        p3monitor.wait_for_container("app-db", timeout=60)

``phase(name)`` records how long its block took (also when the block raises).
``wait_for_container`` waits until a container's health check says ``healthy`` (or, when
it has none, until it runs), records how long that took, and when it does not get there in
``timeout`` seconds restarts it once and waits again; a second timeout raises
:class:`ContainerNotReady`.

Durations of the same name add up. With ``--p3monitor`` they land in the report under
``metrics.performance.phases`` (and, for containers, ``metrics.performance.services``);
measured in an xdist worker they travel to the controller on the test reports. Without
``--p3monitor`` the fixture works all the same and records nowhere.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

__all__ = ["ContainerNotReady", "P3Monitor", "PhaseRecorder"]


class ContainerNotReady(TimeoutError):
    """A container did not become healthy (or running) in time, even after one restart."""


class PhaseRecorder:
    """The phases and service start-ups measured in this process, until drained.

    ``entries`` is what waits to be drained: checking it (``if recorder.entries``) costs
    nothing, where ``bool(recorder)`` calls a method, after every test.
    """

    def __init__(self) -> None:
        self.entries: list[dict[str, Any]] = []
        self._lock = threading.Lock()

    def add(self, entry: dict[str, Any]) -> None:
        with self._lock:
            self.entries.append(entry)

    def drain(self) -> list[dict[str, Any]]:
        """Everything recorded since the last drain (and forget it)."""
        with self._lock:
            entries, self.entries = self.entries, []
        return entries

    def __bool__(self) -> bool:
        return bool(self.entries)


RECORDER_KEY = pytest.StashKey[PhaseRecorder]()


def fixture_value(config: pytest.Config) -> P3Monitor:
    """What the ``p3monitor`` fixture gives: recording when p3monitor is on, else nowhere."""
    return P3Monitor(config.stash.get(RECORDER_KEY, None))


class P3Monitor:
    """The value of the ``p3monitor`` fixture."""

    def __init__(self, recorder: PhaseRecorder | None) -> None:
        self._recorder = recorder

    @property
    def recording(self) -> bool:
        """Whether what is measured here goes into the session's report."""
        return self._recorder is not None

    def record(self, name: str, seconds: float, **details: Any) -> None:
        """Record a named duration measured some other way."""
        if not name or not isinstance(name, str):
            raise ValueError(f"a phase needs a non-empty name, not {name!r}")
        if self._recorder is not None:
            entry = {"kind": "phase", "name": name, "seconds": float(seconds), "t": time.time()}
            self._recorder.add({**entry, **details})

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        """Record how long the ``with`` block takes, under ``name``."""
        if not name or not isinstance(name, str):
            raise ValueError(f"a phase needs a non-empty name, not {name!r}")
        start = time.perf_counter()
        failed = True
        try:
            yield
            failed = False
        finally:
            seconds = time.perf_counter() - start
            if failed:
                self.record(name, seconds, failed=True)
            else:
                self.record(name, seconds)

    def wait_for_container(
        self,
        name_or_id: str,
        timeout: float = 60.0,
        *,
        client: Any = None,
        poll: float = 0.1,
    ) -> dict[str, Any]:
        """Wait until the container is healthy (or running, without a health check).

        Returns what was recorded: ``name``, ``id``, ``seconds`` (the whole wait, restart
        included), ``ready``, ``health`` (whether it has a health check), ``restarted``.
        ``client`` is a ``docker.DockerClient`` (default: ``docker.from_env()``).
        """
        if timeout <= 0:
            raise ValueError(f"timeout must be positive, not {timeout!r}")
        if client is None:
            import docker

            client = docker.from_env()
        container = client.containers.get(name_or_id)
        start = time.perf_counter()
        ready, has_health = _wait(container, timeout, poll)
        restarted = False
        if not ready:
            restarted = True
            container.restart()
            ready, has_health = _wait(container, timeout, poll)
        seconds = time.perf_counter() - start
        name = str(getattr(container, "name", None) or name_or_id)
        entry = {
            "name": name,
            "id": str(getattr(container, "id", "")),
            "seconds": seconds,
            "ready": ready,
            "health": has_health,
            "restarted": restarted,
        }
        if self._recorder is not None:
            self._recorder.add({"kind": "service", "t": time.time(), **entry})
        if not ready:
            state = "healthy" if has_health else "running"
            raise ContainerNotReady(
                f"container {name} was not {state} within {timeout:g} s, "
                f"nor within {timeout:g} s after one restart"
            )
        return entry


def _wait(container: Any, timeout: float, poll: float) -> tuple[bool, bool]:
    """(ready, has a health check) once ready or after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    has_health = False
    while True:
        container.reload()
        state = container.attrs.get("State") or {}
        # Docker leaves Health out without a health check; podman gives Status "".
        status = (state.get("Health") or {}).get("Status") or ""
        check = (container.attrs.get("Config") or {}).get("Healthcheck") or {}
        configured = bool(check.get("Test")) and check["Test"][:1] != ["NONE"]
        has_health = configured or status not in ("", "none")
        ready = status == "healthy" if has_health else bool(state.get("Running"))
        if ready:
            return True, has_health
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False, has_health
        time.sleep(min(poll, remaining))


def summarize(entries: list[dict[str, Any]]) -> tuple[dict[str, float], list[dict[str, Any]]]:
    """({phase name: total seconds}, [service start-ups]) of recorded entries, in order."""
    phases: dict[str, float] = {}
    services: list[dict[str, Any]] = []
    for entry in sorted(entries, key=lambda e: e.get("t") or 0.0):
        if entry.get("kind") == "service":
            services.append({k: v for k, v in entry.items() if k not in ("kind", "t")})
            key = f"service_startup:{entry.get('name')}"
            phases[key] = phases.get(key, 0.0) + float(entry.get("seconds") or 0.0)
        elif entry.get("kind") == "phase" and entry.get("name"):
            name = str(entry["name"])
            phases[name] = phases.get(name, 0.0) + float(entry.get("seconds") or 0.0)
    return phases, services
