"""Hooks of pytest-p3monitor, for its own feature plugins and for other plugins.

At the end of a session the monitor builds the health report (a JSON-ready dict with
every key of the ``p3monitor-report/1`` schema) and passes it through three steps, in
this order, on the xdist controller (or the only process) alone:

1. ``pytest_p3monitor_measure`` - add figures (resources, phases, flakiness ...);
2. ``pytest_p3monitor_evaluate`` - judge them (rules, alerts, health score ...);
3. the run is saved to the results store, then ``pytest_p3monitor_report`` - send the
   finished report somewhere (JSON file, CI annotations, exporters).

Lines for the terminal summary come from ``pytest_p3monitor_terminal_summary``.

Per-test data during ``measure`` and ``evaluate`` is ``monitor.records`` (node id ->
:class:`~pytest_p3monitor.records.TestRecord`; add per-test figures to ``record.figures``).
The report's ``tests`` list is made from those records after ``evaluate``, for the JSON
file and ``pytest_p3monitor_report``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from .session import MonitorSession


def pytest_p3monitor_measure(monitor: MonitorSession, report: dict[str, Any]) -> None:
    """Add measured figures to ``report`` (mutate it in place)."""


def pytest_p3monitor_evaluate(monitor: MonitorSession, report: dict[str, Any]) -> None:
    """Judge the figures in ``report``: fill ``alerts``, ``health``, ``recommendations`` ...

    Set ``monitor.gate_failures`` entries to fail the session.
    """


def pytest_p3monitor_report(monitor: MonitorSession, report: dict[str, Any]) -> None:
    """The finished report, after the run is stored: write or send it somewhere."""


def pytest_p3monitor_terminal_summary(
    monitor: MonitorSession, report: dict[str, Any], terminalreporter: pytest.TerminalReporter
) -> None:
    """Write lines in the p3monitor section of the terminal summary."""
