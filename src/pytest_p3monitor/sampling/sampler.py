"""The session sampler: a loop that samples on a fixed schedule, and the process it runs in.

:class:`Sampler` samples the pytest process tree, its cgroup, the disk, the probes and the
containers until told to stop, handing every record (a dict with a ``kind``: a sample, a
warning or a measurement) to a callback. :func:`main` is the sampler process that
:mod:`.handle` starts beside pytest (or, when no process can be started, it runs a
``Sampler`` in a thread instead): it samples until its stdin closes, writes the records
as JSON lines to a file, then writes ``DONE`` on its stdout and ends.

This is the module that process imports first, so it imports only what sampling needs:
pytest's side (starting the process, waiting for ``DONE``, reading the file, and the
modules for that) lives in :mod:`.handle`.
"""

from __future__ import annotations

import contextlib
import gc
import json
import os
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

from .settings import (
    CONTAINER_INTERVAL,
    PROCESS_INTERVAL,
    ContainerSelection,
    docker_host_configured,
    parse_probe,
)

if TYPE_CHECKING:
    from .cgroup import Cgroup
    from .containers import ContainerSampler

Emit = Callable[[dict[str, Any]], None]


class SamplerConfig(NamedTuple):
    """What to sample; JSON-ready, as it crosses into the sampler process.

    A NamedTuple rather than a dataclass: the pytest process creates this class when the
    session starts, in ~0.3 ms where a dataclass took ~0.9 ms.
    """

    root_pid: int
    process_interval: float = PROCESS_INTERVAL
    container_interval: float = CONTAINER_INTERVAL
    containers: Mapping[str, Any] | None = None  # ContainerSelection.to_json(); None: auto
    disk_path: str = "."
    probes: Sequence[str] = ()
    probe_timeout: float = 2.0
    cgroup: bool = True


class Sampler:
    """Samples until ``stop`` is set; everything goes to ``emit``."""

    def __init__(self, config: SamplerConfig, emit: Emit, exclude_self: bool) -> None:
        self.config = config
        self._sink = emit
        self._exclude_self = exclude_self
        self._warned: set[str] = set()
        self._lock = threading.Lock()

    def warn(self, text: str) -> None:
        with self._lock:
            if text in self._warned:
                return
            self._warned.add(text)
        self._emit({"kind": "warning", "text": text})

    def _emit(self, record: dict[str, Any]) -> None:
        with self._lock:
            self._sink(record)

    def run(self, stop: threading.Event) -> None:
        """Sample until ``stop`` is set, then take the end-of-session measurements."""
        from .cgroup import find_cgroup, host_memory_bytes
        from .probes import disk

        cfg = self.config
        self._emit(
            {
                "kind": "meta",
                "t": time.time(),
                "pid": os.getpid(),
                "root_pid": cfg.root_pid,
                "host_memory_bytes": host_memory_bytes(),
                "process_interval": cfg.process_interval,
                "container_interval": cfg.container_interval,
            }
        )
        self._emit({"kind": "disk", "when": "start", "t": time.time(), **disk(cfg.disk_path)})
        # Connecting to Docker (import, version check) and probing can take a while: they
        # live in their own thread so the process samples start on time.
        side = threading.Thread(target=self._side, args=(stop,), name="p3monitor-side")
        side.start()
        try:
            self._process_loop(stop, find_cgroup(cfg.root_pid) if cfg.cgroup else None)
        finally:
            side.join()
            self._emit({"kind": "disk", "when": "end", "t": time.time(), **disk(cfg.disk_path)})
            self._emit({"kind": "end", "t": time.time()})

    def _process_loop(self, stop: threading.Event, cgroup: Cgroup | None) -> None:
        cfg = self.config
        tree = self._process_tree()
        if cfg.cgroup and cgroup is None and sys.platform.startswith("linux"):
            self.warn(
                f"no readable cgroup for process {cfg.root_pid} (/proc/PID/cgroup, "
                "/proc/PID/mountinfo); cgroup figures are left out"
            )
        last_cpu: tuple[int, float] | None = None
        next_slot = time.monotonic()
        final = False
        while not final:
            # One more sample once stopped: the end state, and the CPU of the last interval.
            final = stop.is_set()
            now = time.monotonic()
            late_ms = (now - next_slot) * 1000.0
            next_slot = _next_slot(next_slot, cfg.process_interval, now)
            t = time.time()
            if tree is not None:
                sample = tree.sample(t)
                if sample is not None:
                    record: dict[str, Any] = {"kind": "proc", **sample._asdict()}
                    if not final:  # the final sample is taken when stopped, not on schedule
                        record["late_ms"] = late_ms
                    self._emit(record)
            if cgroup is not None:
                reading = cgroup.read()
                mono = time.monotonic()
                percent = None
                if reading.cpu_ns is not None:
                    if last_cpu is not None and mono > last_cpu[1]:
                        used = reading.cpu_ns - last_cpu[0]
                        percent = 100.0 * used / ((mono - last_cpu[1]) * 1e9)
                    last_cpu = (reading.cpu_ns, mono)
                if reading.memory_bytes is None and reading.cpu_ns is None:
                    self.warn(
                        f"the cgroup files under {cgroup.memory_dir} and {cgroup.cpu_dir} "
                        "could not be read; cgroup figures are left out"
                    )
                    cgroup = None
                else:
                    self._emit(
                        {
                            "kind": "cgroup",
                            "t": t,
                            "version": cgroup.version,
                            "cpu_percent": percent,
                            "memory_bytes": reading.memory_bytes,
                            "memory_limit_bytes": reading.memory_limit_bytes,
                            "cpu_limit_cores": reading.cpu_limit_cores,
                        }
                    )
            if not final:
                stop.wait(max(next_slot - time.monotonic(), 0.0))

    def _side(self, stop: threading.Event) -> None:
        """Probes, the Docker engine and the container samples, on their own schedule."""
        cfg = self.config
        try:
            self._probe("start")
            containers = self._containers()
            self._engine("start", containers)
            next_slot = time.monotonic()
            while containers is not None and containers.enabled and not stop.is_set():
                now = time.monotonic()
                next_slot = _next_slot(next_slot, cfg.container_interval, now)
                for container_sample in containers.sample():
                    self._emit(container_sample.to_json())
                stop.wait(max(next_slot - time.monotonic(), 0.0))
            stop.wait()
            self._engine("end", containers)
            self._probe("end")
            if containers is not None:
                containers.finish()
        except Exception as exc:  # never let a sampling fault pass silently
            self.warn(f"container sampling stopped: {type(exc).__name__}: {exc}")

    def _probe(self, when: str) -> None:
        from .probes import connect_ms

        for text in self.config.probes:
            probe = parse_probe(text)
            ms, error = connect_ms(probe, self.config.probe_timeout)
            self._emit(
                {
                    "kind": "probe",
                    "when": when,
                    "t": time.time(),
                    "target": str(probe),
                    "connect_ms": ms,
                    "error": error,
                }
            )

    def _engine(self, when: str, containers: ContainerSampler | None) -> None:
        if containers is None or not containers.enabled:
            return
        t = time.time()
        try:
            rtt = containers.ping()
        except Exception as exc:
            self.warn(f"the Docker engine stopped answering: {exc}")
            return
        self._emit(
            {
                "kind": "engine",
                "when": when,
                "t": t,
                "api_rtt_ms": rtt,
                "disk_bytes": containers.disk_bytes(),
            }
        )

    def _process_tree(self) -> Any:
        try:
            from .procs import ProcessTree

            exclude = frozenset({os.getpid()}) if self._exclude_self else frozenset()
            return ProcessTree(self.config.root_pid, exclude)
        except Exception as exc:
            self.warn(f"cannot sample the process tree of pid {self.config.root_pid}: {exc}")
            return None

    def _containers(self) -> ContainerSampler | None:
        selection = ContainerSelection.from_json(self.config.containers or {})
        if selection.mode == "none":
            return None
        if selection.mode == "auto" and not docker_host_configured():
            return None  # what ContainerSampler.connect does then, without importing it
        from .containers import ContainerSampler  # imported only when it may sample

        sampler = ContainerSampler(selection, self.warn)
        sampler.connect()
        return sampler if sampler.enabled else None


def _next_slot(scheduled: float, interval: float, now: float) -> float:
    """The first slot ``scheduled + k * interval`` after ``now`` (missed slots are skipped)."""
    following = scheduled + interval
    if following <= now:
        following += ((now - following) // interval + 1) * interval
    return following


# --- the sampler process ----------------------------------------------------------------------

#: What the sampler process writes on its stdout once its records are complete (the file
#: written, flushed and closed). pytest waits for this rather than for the process to exit,
#: which took about 30 ms more at the end of every session while the process still went
#: through the interpreter's teardown (it skips that now: see ``handle._BOOTSTRAP``).
DONE = b"done\n"


def main(config_json: str, output: str) -> None:
    """The sampler process: sample until stdin closes, writing JSON lines to ``output``."""
    config = SamplerConfig(**json.loads(config_json))
    # Start-up creates objects that live as long as the process (modules, classes,
    # functions): the collector finds nothing to free among them. It is off while the
    # modules the sampler uses are loaded, and what they created is then frozen out of
    # every later collection: ~11 M instructions less per session (callgrind, about 5 %
    # of the process's CPU).
    gc.disable()
    try:
        _load_sampling_modules()
    finally:
        gc.freeze()
        gc.enable()
    # stdout is the pipe on which pytest waits for DONE: anything printed goes to stderr.
    done = sys.stdout.buffer
    sys.stdout = sys.stderr
    stop = threading.Event()

    def watch_stdin() -> None:
        try:
            while sys.stdin.buffer.read(4096):
                pass
        except (OSError, ValueError):
            pass
        stop.set()

    threading.Thread(target=watch_stdin, name="p3monitor-stdin", daemon=True).start()
    with open(output, "a", encoding="utf-8") as out:

        def emit(record: dict[str, Any]) -> None:
            out.write(json.dumps(record, separators=(",", ":")) + "\n")
            if record.get("kind") != "container":
                out.flush()

        Sampler(config, emit, exclude_self=True).run(stop)
    try:
        done.write(DONE)
        done.flush()
    except OSError:  # pytest has gone: nobody is waiting
        pass


def _load_sampling_modules() -> None:
    """Import what :meth:`Sampler.run` imports when it starts, but for :mod:`.containers`
    and the docker SDK (imported by its side thread when containers may be sampled)."""
    from . import cgroup, probes, procs  # noqa: F401

    # Without psutil, Sampler warns that the process tree is not sampled.
    with contextlib.suppress(ImportError):
        import psutil  # type: ignore[import-untyped,unused-ignore]  # noqa: F401
