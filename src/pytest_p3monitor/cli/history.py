"""``p3monitor history NODEID``: one test across runs, oldest first."""

from __future__ import annotations

import argparse
from typing import Any

from ..report.json_report import iso
from .common import (
    MAX_RUNS,
    CommandError,
    add_command,
    counting,
    guarded,
    print_json,
    reading_store,
    render_table,
)


def add_parser(subparsers: Any) -> None:
    parser = add_command(subparsers, "history", "one test's results across runs", run)
    parser.add_argument("nodeid", help="the test's node id, as pytest prints it")
    parser.add_argument(
        "--limit", type=counting("runs", MAX_RUNS), default=50, help="how many runs (default 50)"
    )
    parser.add_argument("--branch", default=None, help="only runs of this branch")


@guarded
def run(args: argparse.Namespace) -> int:
    with reading_store(args) as store:
        rows = store.test_history(args.nodeid, limit=args.limit, branch=args.branch)
    if not rows:
        raise CommandError(
            f"no results for {args.nodeid!r} in the store; `p3monitor runs` lists the runs, "
            "and node ids are as pytest prints them (path::name[param])"
        )
    if args.format == "json":
        print_json(
            [
                {
                    "run_id": r.run_id,
                    "started_at": iso(r.started_at),
                    "commit": r.commit,
                    "branch": r.branch,
                    "outcome": r.outcome,
                    "reruns": r.reruns,
                    "duration_s": r.duration_s,
                    "message": r.message,
                }
                for r in rows
            ]
        )
        return 0
    headers = ("run", "started (UTC)", "commit", "branch", "outcome", "reruns", "time s", "message")
    table = [
        (
            r.run_id[:12],
            (iso(r.started_at) or "")[:19].replace("T", " "),
            (r.commit or "")[:10] or None,
            r.branch,
            r.outcome,
            r.reruns,
            round(r.duration_s, 3),
            (r.message or "")[:60] or None,
        )
        for r in rows
    ]
    print(render_table(headers, table, args.format))
    return 0
