"""``p3monitor runs``: the most recent runs, newest first."""

from __future__ import annotations

import argparse
from typing import Any

from ..records import RunRow
from ..report.json_report import iso
from .common import (
    MAX_RUNS,
    add_command,
    counting,
    guarded,
    print_json,
    reading_store,
    render_table,
)


def add_parser(subparsers: Any) -> None:
    parser = add_command(subparsers, "runs", "list recent runs, newest first", run)
    parser.add_argument(
        "--limit", type=counting("runs", MAX_RUNS), default=20, help="how many runs (default 20)"
    )
    parser.add_argument("--branch", default=None, help="only runs of this branch")


def run_dict(row: RunRow) -> dict[str, Any]:
    r = row.run
    return {
        "id": r.run_id,
        "started_at": iso(r.started_at),
        "finished_at": iso(r.finished_at),
        "commit": r.commit,
        "branch": r.branch,
        "ci": {"provider": r.ci.provider, "run_id": r.ci.run_id, "job": r.ci.job, "url": r.ci.url},
        "hostname": r.hostname,
        "workers": r.workers,
        "exit_status": r.exit_status,
        "tests": row.tests,
        "passed": row.passed,
        "failed": row.failed,
        "errors": row.errors,
        "skipped": row.skipped,
        "xfailed": row.xfailed,
        "xpassed": row.xpassed,
        "reruns": row.reruns,
        "success_rate": row.success_rate,
        "test_execution_time_s": row.test_execution_time_s,
        "health_score": row.metrics.get("health_score"),
    }


@guarded
def run(args: argparse.Namespace) -> int:
    with reading_store(args) as store:
        rows = store.recent_runs(limit=args.limit, branch=args.branch)
    if args.format == "json":
        print_json([run_dict(r) for r in rows])
        return 0
    if not rows:
        print("no runs stored yet")
        return 0
    headers = ("run", "started (UTC)", "commit", "branch", "tests", "failed", "success %", "time s")
    table = [
        (
            r.run.run_id[:12],
            (iso(r.run.started_at) or "")[:19].replace("T", " "),
            (r.run.commit or "")[:10] or None,
            r.run.branch,
            r.tests,
            r.failed + r.errors,
            None if r.success_rate is None else round(r.success_rate, 1),
            round(r.test_execution_time_s, 2),
        )
        for r in rows
    ]
    print(render_table(headers, table, args.format))
    return 0
