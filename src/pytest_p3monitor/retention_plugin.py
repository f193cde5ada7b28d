"""Retention: with ini ``p3monitor_retention_days = 90``, each session prunes older runs.

The prune happens at the end of the session, after this run was stored, in the same
store (``p3monitor prune --older-than 90d`` does the same by hand). It is skipped when the
run could not be stored: the store already had its one warning.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import pytest

from .config import parse_with, positive_float, setting
from .store import StoreError
from .warnings import StoreWarning

if TYPE_CHECKING:
    from .session import MonitorSession

INI = "p3monitor_retention_days"
HELP = "delete stored runs older than this many days at the end of each session (default: keep all)"


class RetentionPlugin:
    """Prunes the results store at the end of the session when a retention is set."""

    def __init__(self, config: pytest.Config, monitor: MonitorSession) -> None:
        self.days: float | None = parse_with(
            setting(config, INI), positive_float, None, "a number of days, such as 90"
        )
        self.pruned: int | None = None
        #: Registered only with a retention set (see ``plugin.FEATURES``).
        self.active = self.days is not None

    def cutoff(self, now: float) -> float:
        """Runs that started before this time (epoch seconds) are pruned."""
        if self.days is None:
            raise ValueError("no retention set")
        return now - self.days * 86400.0

    def pytest_p3monitor_report(self, monitor: MonitorSession, report: dict[str, Any]) -> None:
        if self.days is None or monitor.stored_in is None:
            return
        store = monitor.open_store()
        if store is None:
            return
        try:
            # never this session's own run, however short the retention
            self.pruned = store.prune(min(self.cutoff(time.time()), monitor.run.started_at))
        except StoreError as exc:
            monitor.warn(f"pruning runs older than {self.days:g} days failed: {exc}", StoreWarning)

    def pytest_p3monitor_terminal_summary(
        self,
        monitor: MonitorSession,
        report: dict[str, Any],
        terminalreporter: pytest.TerminalReporter,
    ) -> None:
        if self.pruned:
            noun = "run" if self.pruned == 1 else "runs"
            terminalreporter.write_line(
                f"retention: deleted {self.pruned} {noun} older than {self.days:g} days"
            )
