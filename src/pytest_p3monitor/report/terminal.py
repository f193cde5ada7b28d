"""The p3monitor section of pytest's terminal summary: a few lines, the essentials."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from ..session import MonitorSession

SLOWEST_SHOWN = 3


def fmt_seconds(seconds: float) -> str:
    if seconds < 1:
        return f"{seconds * 1000:.0f}ms"
    if seconds < 120:
        return f"{seconds:.2f}s"
    return f"{seconds / 60:.1f}m"


def fmt_bytes(value: float | None, missing: str = "n/a") -> str:
    """Bytes in binary units, e.g. ``512 B``, ``65.4 MiB``; ``missing`` when unknown."""
    if value is None:
        return missing
    size = float(value)
    for unit in ("B", "KiB", "MiB"):
        if abs(size) < 1024:
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GiB"


def write_summary(monitor: MonitorSession, tr: pytest.TerminalReporter) -> None:
    report = monitor.report
    rel = report["metrics"]["reliability"]
    perf = report["metrics"]["performance"]
    run = report["run"]
    tr.write_sep("-", "p3monitor")
    where = []
    if run["commit"]:
        where.append(f"commit {run['commit'][:12]}")
    if run["branch"]:
        where.append(f"branch {run['branch']}")
    rate = rel["success_rate"]
    rate_text = "n/a" if rate is None else f"{rate:.1f}%"
    tr.write_line(
        f"run {run['id'][:12]}"
        + (f" ({', '.join(where)})" if where else "")
        + f": {rel['tests']} tests, success rate {rate_text}, "
        f"test execution {fmt_seconds(perf['test_execution_time_s'])}"
    )
    if report.get("health_score") is not None:
        tr.write_line(f"health score {report['health_score']:.0f}/100")
    shown = [s for s in perf["slowest"][:SLOWEST_SHOWN] if s["duration_s"] > 0]
    if shown and tr.verbosity >= 0:
        tr.write_line(
            "slowest: " + ", ".join(f"{s['nodeid']} {fmt_seconds(s['duration_s'])}" for s in shown)
        )
    if monitor.stored_in:
        tr.write_line(f"stored in {monitor.stored_in}")
    if monitor.json_path is not None:
        tr.write_line(f"report written to {monitor.json_path}")
