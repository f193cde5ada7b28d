"""The monitor of one pytest session: thin hooks around records, the store and the report.

Registered by :mod:`pytest_p3monitor.plugin` only with ``--p3monitor``. On the xdist
controller (or in a session without xdist) it folds every test report into a record, and
at the end builds the report, lets the feature plugins measure and judge, stores the run
and writes the report. In an xdist worker it records nothing: worker-side figures travel
to the controller on the reports.

Nothing the monitor does may change a test's outcome or the exit status, except a gate
the user configured: every failure of its own parts becomes one warning.
"""

from __future__ import annotations

import contextlib
import gc
import os
import platform
import socket
import sys
import time
import uuid
from collections.abc import Callable, Generator, Iterator
from pathlib import Path
from typing import Any

import pytest

from . import outbox
from .collect import RecordBuilder
from .config import Setting, setting
from .exporters.redact import redact_text
from .records import RunInfo, TestRecord
from .report import json_report, terminal
from .runinfo import GitLookup, detect_ci
from .store import (
    Store,
    StoreError,
    open_store,
    redact_url,
    resolve_url,
    sqlite_path,
    store_identity,
)
from .warnings import ExportWarning, P3MonitorWarning, StoreWarning


def _base(s: Setting, config: pytest.Config) -> Path:
    """The folder a relative path of ``s`` is relative to: the ini file's for a path from the
    ini file; the folder pytest was started in for one from the command line or the
    environment (as with any tool, and as the ``p3monitor`` command reads them)."""
    if s.where.startswith("ini") and config.inipath is not None:
        return config.inipath.parent
    return config.invocation_params.dir


def _resolve_path(s: Setting, config: pytest.Config) -> str | None:
    """The absolute path of a path setting (``~`` expanded; see :func:`_base`)."""
    if s.value is None or "://" in s.value:
        return s.value
    return str(_base(s, config) / Path(s.value).expanduser())


@contextlib.contextmanager
def _gc_paused() -> Iterator[None]:
    """No cyclic garbage collection while the session's end allocates its burst.

    The report, the store's rows and the analyses allocate tens of thousands of short-lived,
    acyclic objects at once; each collection they would trigger walks every object of the
    session (the collected items, their reports ...). Collection resumes afterwards, as it
    was (a test suite that turned it off keeps it off).
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


class GateFailure:
    """An entry of pytest's terminal statistics for a crossed fail rule.

    Report-like (plugins such as hypothesis read every entry's ``__dict__``), not a test.
    """

    nodeid = ""
    when = "session"
    outcome = "failed gate"
    longrepr = None

    def __init__(self, message: str) -> None:
        self.message = message


class MonitorSession:
    """State and hooks of one monitored session (see the module docstring)."""

    name = "p3monitor-session"

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.is_worker = hasattr(config, "workerinput")
        self.builder = RecordBuilder()
        self.gate_failures: list[str] = []
        self.report: dict[str, Any] = {}
        self.stored_in: str | None = None
        #: Secrets the feature plugins know of (an endpoint's token ...): kept out of the
        #: failure messages that go to the report and the store, with any credential in a URL.
        self.secrets: list[str] = []
        #: True when a crossed fail rule turned an otherwise passing session into a failure
        self.gate_failed_session = False
        self._warned: set[str] = set()
        self._store: Store | None = None
        self._store_failed = False
        #: why the store is not used (the first fault), told in the one warning of _save
        self._store_fault: str | None = None
        #: True once the run was stored, kept in the outbox or lost (see ``store_failed``)
        self._run_settled = False
        self._git: GitLookup | None = None
        self._workers_up = 0

        root = config.rootpath
        self.db_setting = setting(config, "p3monitor_db", env="P3MONITOR_DB")
        db = self.db_setting
        self.db_url = resolve_url(db.value, _base(db, config)) if db.value else None
        self.store_root = root
        #: the store runs are meant for, as kept runs record it (no password): an absolute
        #: path, or the server URL
        path = sqlite_path(self.db_url, root)
        self.store_target = str(path) if path is not None else redact_url(str(self.db_url))
        self.outbox_dir = root / outbox.DEFAULT_DIR
        json_setting = setting(config, "p3monitor_json")
        json_path = _resolve_path(json_setting, config)
        self.json_path = Path(json_path) if json_path else None

        self.run = RunInfo(run_id=uuid.uuid4().hex, started_at=time.time())
        if self.is_worker:
            return
        # The builder's own ``add`` is the hook (no Python call in between, on the hot
        # path); a worker has none: its reports are folded on the controller.
        self.pytest_runtest_logreport = self.builder.add
        commit = setting(config, "p3monitor_commit", env="P3MONITOR_COMMIT", ini=False).value
        branch = setting(config, "p3monitor_branch", env="P3MONITOR_BRANCH", ini=False).value
        ci, ci_commit, ci_branch = detect_ci(os.environ)
        commit, branch = commit or ci_commit, branch or ci_branch
        self.run.commit, self.run.branch, self.run.ci = commit, branch, ci
        if commit is None or branch is None:  # git says the rest: see settle_run
            self._git = GitLookup(root)
        self.run.hostname = socket.gethostname()
        self.run.python = platform.python_version()
        self.run.pytest = pytest.__version__

    @property
    def records(self) -> dict[str, TestRecord]:
        """Node id -> the record of each test reported so far."""
        return self.builder.records

    def settle_run(self) -> None:
        """Complete the run's commit and branch with git's answer (once; it was asked in
        the background when the session was configured)."""
        git, self._git = self._git, None
        if git is not None:
            commit, branch = git.result()
            self.run.commit = self.run.commit or commit
            self.run.branch = self.run.branch or branch

    # -- services for the feature plugins ---------------------------------------------------
    def warn(self, text: str, category: type[P3MonitorWarning] = P3MonitorWarning) -> None:
        """Issue ``text`` as a warning once per session, however often it is asked."""
        if text in self._warned:
            return
        self._warned.add(text)
        message = text if text.startswith("p3monitor") else f"p3monitor: {text}"
        # Shown in pytest's warnings summary; never raised, whatever the filters say.
        warning = category(message)
        try:
            self.config.issue_config_time_warning(warning, stacklevel=2)
        except Exception:
            print(f"{type(warning).__name__}: {message}", file=sys.stderr)

    def open_store(self) -> Store | None:
        """The results store, opened on first use; None (after one warning) if unusable.

        Only the xdist controller (or a session without xdist) may open it.
        """
        if self.is_worker or self._store_failed:
            return None
        if self._store is None:
            try:
                self._store = open_store(self.db_url, root=self.store_root)
            except StoreError as exc:
                self.store_failed(exc)
                return None
        return self._store

    def store_failed(self, exc: StoreError, what: str = "results store not used") -> None:
        """The store failed (opening, reading or writing it): it is not used again.

        Feature plugins call this with the :class:`StoreError` a read raised. The run then
        goes to the outbox, and one warning says both what is wrong and where the run was
        kept (issued when the run is saved, :meth:`_save`); a fault after that is warned now.
        """
        self._store_failed = True
        if self._store_fault is None:
            self._store_fault = f"{what}: {exc}"
            if self._run_settled:
                self.warn(self._store_fault, StoreWarning)
        store, self._store = self._store, None
        if store is not None:
            with contextlib.suppress(Exception):  # it failed already: closing is a courtesy
                store.close()

    def guarded(
        self,
        what: str,
        func: Callable[[], object],
        category: type[P3MonitorWarning] = P3MonitorWarning,
    ) -> None:
        """Run one step of the plugin's own work; an error in it is one warning, no more."""
        try:
            func()
        except Exception as exc:  # a monitoring fault must never fail the test session
            self.warn(f"{what} failed: {type(exc).__name__}: {exc}", category)

    # -- pytest hooks ------------------------------------------------------------------------
    @pytest.hookimpl(optionalhook=True)
    def pytest_testnodeready(self, node: Any) -> None:
        # The workers running at once, at most: xdist replaces a crashed worker with a new
        # one (down, then ready), which is not one more.
        self._workers_up += 1
        self.run.workers = max(self.run.workers, self._workers_up)

    @pytest.hookimpl(optionalhook=True)
    def pytest_testnodedown(self, node: Any, error: Any) -> None:
        self._workers_up -= 1

    @pytest.hookimpl(wrapper=True, tryfirst=True)
    def pytest_runtestloop(self, session: pytest.Session) -> Generator[None, object, object]:
        # Before any test runs: the feature plugins may read the run's commit from here on.
        self.settle_run()
        try:
            return (yield)
        finally:  # also when the loop was interrupted (Ctrl-C, pytest.exit)
            self.guarded("recording the tests", self.builder.finish)

    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        if self.is_worker:
            return
        with _gc_paused():
            self._finish(session, exitstatus)

    def _finish(self, session: pytest.Session, exitstatus: int) -> None:
        self.settle_run()  # the session may have ended before its test loop
        self.run.finished_at = time.time()
        self.run.exit_status = int(exitstatus)
        records = list(self.records.values())
        for record in records:  # the failures' messages only: a few
            if record.message:
                record.message = redact_text(record.message, self.secrets)
        self.report = report = json_report.build(self.run, records)
        hook = self.config.hook
        self.guarded(
            "measuring", lambda: hook.pytest_p3monitor_measure(monitor=self, report=report)
        )
        self.guarded(
            "evaluating", lambda: hook.pytest_p3monitor_evaluate(monitor=self, report=report)
        )
        if self.gate_failures and session.exitstatus == pytest.ExitCode.OK:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED
            self.gate_failed_session = True
        self.run.exit_status = int(session.exitstatus)
        report["run"]["exit_status"] = self.run.exit_status
        self.guarded("storing the run", lambda: self._save(records, report))
        reporters = hook.pytest_p3monitor_report.get_hookimpls()
        if self.json_path is not None or reporters:
            # The per-test entries, with every figure the features added to the records.
            report["tests"] = json_report.entries_of(records)
        if self.json_path is not None:
            self.guarded("writing the JSON report", self._write_json)
        if reporters:
            self.guarded(
                "reporting", lambda: hook.pytest_p3monitor_report(monitor=self, report=report)
            )
        if self._store is not None:
            # SQLite's last close copies the run into the database file (its write-ahead log
            # goes): pytest returns with the file whole. A fault here is one warning too.
            store, self._store = self._store, None
            self.guarded("closing the results store", store.close, StoreWarning)

    def _save(self, records: list[Any], report: dict[str, Any]) -> None:
        metrics = json_report.stored_metrics(report)
        store = self.open_store()
        if store is not None:
            try:
                store.save_run(self.run, records, metrics)
            except StoreError as exc:
                self.store_failed(exc, "run not stored")
            else:
                self.stored_in = store.display_url
                self._run_settled = True
                self._flush_outbox(store)
                return
        self.stored_in = None
        self._run_settled = True
        self._keep(records, metrics)

    def _keep(self, records: list[Any], metrics: dict[str, Any]) -> None:
        """Keep the run in the outbox; one warning says why and where (or why it is lost)."""
        fault = (self._store_fault or "results store not used").rstrip(". ")
        try:
            kept = outbox.save(
                "runs",
                self.run.run_id,
                {
                    "store": self.store_target,
                    "run": self.run.to_dict(),
                    "tests": [r.to_dict() for r in records],
                    "metrics": metrics,
                },
                base=self.outbox_dir,
            )
        except (OSError, TypeError, ValueError) as exc:
            reason = f"{type(exc).__name__}: {exc}"
            if isinstance(exc, OSError) and exc.strerror:
                reason = f"{exc.strerror}: {exc.filename}" if exc.filename else exc.strerror
            self.warn(
                f"{fault}. The run could not be kept in {self.outbox_dir} either ({reason}): "
                "it is lost. Make that folder writable, or fix the store.",
                StoreWarning,
            )
            return
        self.warn(
            f"{fault}. The run was kept in {kept}: once the store is usable, the next "
            f"session stores it, or `p3monitor export --flush --outbox {self.outbox_dir}`.",
            StoreWarning,
        )

    def _flush_outbox(self, store: Store) -> None:
        """Store runs kept by earlier sessions that could not reach this store.

        A run kept for another store (another ``p3monitor_db``) is left for a session of
        that store, or ``p3monitor export --flush``, to store where it belongs.
        """
        for path in outbox.pending("runs", base=self.outbox_dir):
            try:
                data = outbox.load(path)
                kept_for = data.get("store", self.store_target)
                if store_identity(str(kept_for)) != store_identity(self.store_target):
                    continue
                run = RunInfo.from_dict(data["run"])
                tests = [TestRecord.from_dict(t) for t in data["tests"]]
            except FileNotFoundError:
                continue  # another session took it (and stores it): not ours
            except (OSError, ValueError, KeyError, TypeError) as exc:
                self.warn(f"kept run {path} is unreadable and was left there: {exc}", StoreWarning)
                continue
            try:
                store.save_run(run, tests, data.get("metrics") or {})
            except StoreError as exc:
                self.warn(f"the runs kept in {path.parent} were not stored: {exc}", StoreWarning)
                return
            outbox.remove(path)

    def _write_json(self) -> None:
        if self.json_path is None:
            return
        try:
            json_report.write(self.report, self.json_path)
        except OSError as exc:
            self.json_path = None
            self.warn(f"could not write the JSON report: {exc}", ExportWarning)

    @pytest.hookimpl(trylast=True)
    def pytest_unconfigure(self, config: pytest.Config) -> None:
        # The session is over: let the records go now, freed one by one, rather than have
        # the interpreter's last garbage collection walk them all at exit (18 M fewer
        # instructions for 5000 tests, callgrind).
        self.records.clear()
        self.report = {}

    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        if self.is_worker or not self.report:
            return
        try:
            terminal.write_summary(self, terminalreporter)
            self.config.hook.pytest_p3monitor_terminal_summary(
                monitor=self, report=self.report, terminalreporter=terminalreporter
            )
            if self.gate_failed_session:
                # Shown in pytest's last line, "4 passed, 1 gate failed in 2s", so the line
                # that ends a session with exit status 1 says why. (Worded so that tools
                # parsing that line read "1 gate", never "1 failed".)
                n = len(self.gate_failures)
                key = "gate failed" if n == 1 else "gates failed"
                terminalreporter.stats.setdefault(key, []).extend(
                    GateFailure(line) for line in self.gate_failures
                )
        except Exception as exc:  # never raise out of the terminal summary
            terminalreporter.write_line(f"p3monitor: summary failed: {exc}", yellow=True)
