"""The session sampler: a loop that samples on a fixed schedule, and how it is run.

It runs in a separate process by default. A thread inside pytest shares the GIL with the
tests: under a CPU-bound test it wakes late (measured on a 2-core machine, see
``benchmarks/sampler_timing.py``), and its own work slows the tests down. The process
keeps its schedule, costs the tests nothing but its small share of a core, and ends by
itself when pytest goes away (its stdin closes).

Everything it measures is written as JSON lines (one object per sample, warning or
measurement, each with a ``kind``) to a file that pytest reads once, at the end of the
session, as soon as the process says it has written everything (it exits afterwards).
Nothing crosses back during the session: per-test container peaks are computed afterwards
from the samples' timestamps and the tests' start and stop times.
"""

from __future__ import annotations

import json
import os
import selectors
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, NamedTuple

from .settings import CONTAINER_INTERVAL, PROCESS_INTERVAL

if TYPE_CHECKING:
    from .cgroup import Cgroup
    from .containers import ContainerSampler

Emit = Callable[[dict[str, Any]], None]
SamplerMode = Literal["process", "thread"]


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
                    record: dict[str, Any] = {"kind": "proc", **asdict(sample)}
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
        from .settings import parse_probe

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
        from .containers import ContainerSampler
        from .settings import ContainerSelection

        selection = ContainerSelection.from_json(self.config.containers or {})
        if selection.mode == "none":
            return None
        sampler = ContainerSampler(selection, self.warn)
        sampler.connect()
        return sampler if sampler.enabled else None


def _next_slot(scheduled: float, interval: float, now: float) -> float:
    """The first slot ``scheduled + k * interval`` after ``now`` (missed slots are skipped)."""
    following = scheduled + interval
    if following <= now:
        following += ((now - following) // interval + 1) * interval
    return following


# --- running it -------------------------------------------------------------------------------

# Loads the sampling package without pytest_p3monitor/__init__.py (which imports pytest): the
# sampler process then starts in about the time of a bare interpreter plus psutil.
_BOOTSTRAP = (
    "import sys, types\n"
    "pkg = types.ModuleType('pytest_p3monitor')\n"
    "pkg.__path__ = [sys.argv[1]]\n"
    "sys.modules['pytest_p3monitor'] = pkg\n"
    "from pytest_p3monitor.sampling.sampler import main\n"
    "main(sys.argv[2], sys.argv[3])\n"
)

#: What the sampler process writes on its stdout once its records are complete (the file
#: written, flushed and closed). pytest waits for this rather than for the process to exit:
#: the exit (interpreter teardown with psutil and perhaps the docker SDK loaded) took about
#: 30 ms more at the end of every session.
DONE = b"done\n"

# How subprocess itself waits on pipes: poll() has no FD_SETSIZE limit, select() does.
_Selector: type[selectors.BaseSelector] = getattr(
    selectors, "PollSelector", selectors.SelectSelector
)

WaitOutcome = Literal["done", "exited", "timeout"]


def main(config_json: str, output: str) -> None:
    """The sampler process: sample until stdin closes, writing JSON lines to ``output``."""
    config = SamplerConfig(**json.loads(config_json))
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


class SamplerHandle:
    """A running sampler: :meth:`stop` ends it and returns everything it recorded,
    :meth:`close` then reaps the sampler process (which may still be exiting)."""

    def __init__(self, config: SamplerConfig, mode: SamplerMode = "process") -> None:
        self.config = config
        self.mode = mode
        self.started_at = time.time()
        self.stopped = False
        self._records: list[dict[str, Any]] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._dir: tempfile.TemporaryDirectory[str] | None = None
        self.problems: list[str] = []

    @classmethod
    def start(cls, config: SamplerConfig, mode: SamplerMode = "process") -> SamplerHandle:
        handle = cls(config, mode)
        if mode == "process":
            try:
                handle._start_process()
                return handle
            except OSError as exc:
                handle.problems.append(
                    f"could not start the sampler process ({exc}); sampling in a thread instead, "
                    "which may miss its schedule under CPU-bound tests"
                )
                handle.mode = "thread"
        handle._start_thread()
        return handle

    def _start_thread(self) -> None:
        sampler = Sampler(self.config, self._records.append, exclude_self=False)
        self._thread = threading.Thread(
            target=sampler.run, args=(self._stop,), name="p3monitor-sampler", daemon=True
        )
        self._thread.start()

    def _start_process(self) -> None:
        self._dir = tempfile.TemporaryDirectory(prefix="p3monitor-sampler-")
        output = Path(self._dir.name) / "samples.jsonl"
        package_dir = str(Path(__file__).resolve().parent.parent)
        try:
            stderr = open(Path(self._dir.name) / "stderr.log", "wb")  # noqa: SIM115
        except OSError:
            self._dir.cleanup()
            self._dir = None
            raise
        try:
            self._proc = subprocess.Popen(
                [
                    sys.executable,
                    "-c",
                    _BOOTSTRAP,
                    package_dir,
                    json.dumps(self.config._asdict()),
                    str(output),
                ],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=stderr,
                close_fds=True,
            )
        except OSError:
            self._dir.cleanup()
            self._dir = None
            raise
        finally:
            stderr.close()

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def stop(self, timeout: float | None = None) -> list[dict[str, Any]]:
        """Stop sampling (after the end-of-session measurements) and return the records.

        Returns as soon as the sampler process has written them all, without waiting for it
        to exit. A process that does not get there within ``timeout`` seconds is killed (one
        problem); one that exits first with an error is a problem naming its last words.
        """
        if timeout is None:
            timeout = 10.0 + (self.config.probe_timeout + 0.5) * len(self.config.probes)
        self.stopped = True
        if self._thread is not None:
            self._stop.set()
            self._thread.join(timeout)
            return list(self._records)
        if self._proc is None or self._dir is None:
            return []
        proc = self._proc
        try:
            if proc.stdin is not None:
                proc.stdin.close()
        except OSError:
            pass
        outcome = _wait_done(proc, timeout)
        directory = Path(self._dir.name)
        if outcome == "timeout":
            proc.kill()
            proc.wait()
            self.problems.append(
                f"the sampler process did not finish within {timeout:.0f} s and was stopped; "
                "the end-of-session measurements may be missing"
            )
        elif outcome == "exited":
            # It ended before its records were complete (or this platform has no DONE):
            # its exit status says whether it crashed. A crash after DONE lost nothing.
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            if proc.returncode != 0:
                err = (directory / "stderr.log").read_text(errors="replace").strip().splitlines()
                self.problems.append(f"the sampler process failed: {_last_words(err, proc)}")
        records = _read_jsonl(directory / "samples.jsonl")
        # The process may still have the log open: removing the files is fine on POSIX, and
        # elsewhere it has exited by now (no DONE there).
        self._dir.cleanup()
        self._dir = None
        if proc.stdout is not None:
            proc.stdout.close()
        proc.poll()  # reaps it if it has exited already
        return records

    def close(self, timeout: float = 5.0) -> None:
        """Reap the sampler process, waiting up to ``timeout`` seconds for it to exit after
        :meth:`stop` (then killing it). Without this, an exiting process would be left a
        zombie, and its ``Popen`` would warn (ResourceWarning) when collected."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if not self.stopped:  # never stopped: end it without waiting for its records
            for pipe in (proc.stdin, proc.stdout):
                if pipe is not None:
                    pipe.close()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if self._dir is not None:
            self._dir.cleanup()
            self._dir = None


def _wait_done(proc: subprocess.Popen[bytes], timeout: float) -> WaitOutcome:
    """Wait until the sampler process writes DONE ("done"), closes its stdout first
    ("exited": it has ended or is ending) or ``timeout`` seconds pass ("timeout")."""
    if os.name != "posix" or proc.stdout is None:
        # Windows cannot wait on a pipe with a timeout: wait for the exit instead.
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return "timeout"
        return "exited"
    fd = proc.stdout.fileno()
    deadline = time.monotonic() + timeout
    received = b""
    with _Selector() as selector:
        selector.register(fd, selectors.EVENT_READ)
        while DONE not in received:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not selector.select(remaining):
                return "timeout"
            chunk = os.read(fd, 4096)
            if not chunk:
                return "exited"
            received += chunk
    return "done"


def _last_words(stderr_lines: list[str], proc: subprocess.Popen[bytes]) -> str:
    if stderr_lines:
        return stderr_lines[-1]
    code = proc.returncode
    return f"killed by signal {-code}" if code < 0 else f"exit status {code}"


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    records = []
    try:
        with open(path, encoding="utf-8") as f:
            for line in f:
                try:
                    record = json.loads(line)
                except ValueError:
                    continue  # a line cut short by a kill
                if isinstance(record, dict):
                    records.append(record)
    except OSError:
        pass
    return records
