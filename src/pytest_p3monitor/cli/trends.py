"""``p3monitor trends``: per day, runs, execution time (mean, p95), success rate, peak
memory; and the last 24 h / 7 d / 30 d, as in the JSON report's ``trends``."""

from __future__ import annotations

import argparse
import time
from typing import Any

from .. import trends
from ..report.text import TREND_HEADERS, trend_row
from .common import add_command, counting, guarded, print_json, reading_store, render_table

DEFAULT_DAYS = 30
#: A hundred years: the most days back a date can be counted from today.
MAX_DAYS = 36_500
#: At most this many runs are read (newest first).
MAX_RUNS = 100_000
_DAY = 24 * 3600.0


def add_parser(subparsers: Any) -> None:
    parser = add_command(
        subparsers,
        "trends",
        "per-day runs, execution time, success rate and peak memory; 24h/7d/30d summaries",
        run,
    )
    parser.add_argument(
        "--days",
        type=counting("days", MAX_DAYS),
        default=DEFAULT_DAYS,
        metavar="N",
        help=f"how many days back, today included (default {DEFAULT_DAYS})",
    )
    parser.add_argument("--branch", default=None, help="only runs of this branch")


@guarded
def run(args: argparse.Namespace) -> int:
    now = time.time()
    since = now - max(args.days, 30) * _DAY
    with reading_store(args) as store:
        rows = store.trend_runs(limit=MAX_RUNS, branch=args.branch, since=since)
    days = trends.daily(rows, now, days=args.days)
    summary = trends.summaries(rows, now)
    if args.format == "json":
        print_json(
            {
                "days": [d.to_dict() for d in days],
                "summary": summary,
                "branch": args.branch,
            }
        )
        return 0
    if not days and not any(summary.values()):
        print(f"no runs stored in the last {args.days} days")
        return 0
    print(render_table(TREND_HEADERS, [trend_row(d) for d in days], args.format))
    print()
    windows = [
        trends.summarize(name, [r for r in rows if r.run.started_at > now - seconds])
        for name, seconds in trends.WINDOWS.items()
    ]
    print(render_table(TREND_HEADERS, [trend_row(w) for w in windows], args.format))
    return 0
