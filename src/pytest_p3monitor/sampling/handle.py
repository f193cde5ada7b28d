"""Running the session sampler from pytest: in a separate process, or in a thread.

It runs in a separate process by default. A thread inside pytest shares the GIL with the
tests: under a CPU-bound test it wakes late (measured on a 2-core machine, see
``benchmarks/sampler_timing.py``), and its own work slows the tests down. The process
keeps its schedule, costs the tests nothing but its small share of a core, and ends by
itself when pytest goes away (its stdin closes).

The process (:func:`.sampler.main`) writes everything it measures as JSON lines to a file
that pytest reads once, at the end of the session: pytest closes the process's stdin as
the session's end begins (:meth:`SamplerHandle.request_stop`), so that the final
measurements overlap pytest's own work, and reads the file as soon as the process says it
has written everything (``DONE``; it exits afterwards). Nothing crosses back during the
session: per-test container peaks are computed afterwards from the samples' timestamps and
the tests' start and stop times. When the process cannot be started, a
:class:`.sampler.Sampler` runs in a thread instead (one problem says so).
"""

from __future__ import annotations

import contextlib
import json
import os
import selectors
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Literal

from .sampler import DONE, Sampler, SamplerConfig

SamplerMode = Literal["process", "thread"]

# Loads the sampling package without pytest_p3monitor/__init__.py (which imports pytest): the
# sampler process then starts in about the time of a bare interpreter plus psutil. Once its
# records are complete (DONE written) it ends with os._exit: the interpreter's teardown
# (with psutil, perhaps the docker SDK, loaded) has nothing left to save, and cost about
# 10 % of the process's CPU (~26 M instructions, callgrind).
_BOOTSTRAP = (
    "import os, sys, types\n"
    "pkg = types.ModuleType('pytest_p3monitor')\n"
    "pkg.__path__ = [sys.argv[1]]\n"
    "sys.modules['pytest_p3monitor'] = pkg\n"
    "from pytest_p3monitor.sampling.sampler import main\n"
    "main(sys.argv[2], sys.argv[3])\n"
    "sys.stderr.flush()\n"
    "os._exit(0)\n"
)

# How subprocess itself waits on pipes: poll() has no FD_SETSIZE limit, select() does.
_Selector: type[selectors.BaseSelector] = getattr(
    selectors, "PollSelector", selectors.SelectSelector
)

WaitOutcome = Literal["done", "exited", "timeout"]


class SamplerHandle:
    """A running sampler: :meth:`request_stop` asks it to take its end-of-session
    measurements (without waiting for them), :meth:`stop` waits for them and returns
    everything it recorded, :meth:`close` then reaps the sampler process (which may still
    be exiting)."""

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
            with open(Path(self._dir.name) / "stderr.log", "wb") as stderr:
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
        except OSError:  # the log or the process: nothing is left behind
            self._dir.cleanup()
            self._dir = None
            raise

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def request_stop(self) -> None:
        """Ask the sampler to stop now, without waiting: it takes its final sample and its
        end-of-session measurements (disk, engine, probes) while pytest goes on, e.g. with
        building the report; :meth:`stop` then only waits for them. Calling it again, or
        after :meth:`stop`, does nothing more."""
        if self._thread is not None:
            self._stop.set()
            return
        stdin = self._proc.stdin if self._proc is not None else None
        if stdin is not None and not stdin.closed:
            with contextlib.suppress(OSError):
                stdin.close()  # the process's stdin reaches its end: it stops

    def stop(self, timeout: float | None = None) -> list[dict[str, Any]]:
        """Stop sampling (after the end-of-session measurements) and return the records.

        Asks the sampler to stop (:meth:`request_stop`) unless that was done already, then
        returns as soon as the sampler process has written all its records, without
        waiting for it to exit. A process that does not get there within ``timeout``
        seconds is killed (one problem); one that exits first with an error is a problem
        naming its last words.
        """
        if timeout is None:
            timeout = 10.0 + (self.config.probe_timeout + 0.5) * len(self.config.probes)
        self.request_stop()
        self.stopped = True
        if self._thread is not None:
            self._thread.join(timeout)
            return list(self._records)
        if self._proc is None or self._dir is None:
            return []
        proc = self._proc
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
            _wait_or_kill(proc, timeout)
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
        _wait_or_kill(proc, timeout)
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


def _wait_or_kill(proc: subprocess.Popen[bytes], timeout: float) -> None:
    """Wait up to ``timeout`` seconds for the process to exit, then kill it; reaped either way."""
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


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
