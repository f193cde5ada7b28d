"""``p3monitor flaky``: the flaky tests of the store, highest score first.

The store's histories are streamed one test at a time and classified on the fly
(:mod:`pytest_p3monitor.flaky`); only the verdicts to print are kept.
"""

from __future__ import annotations

import argparse
from typing import Any

from ..flaky import FlakyResult, classify_all, rank
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

DEFAULT_WINDOW = 100
MESSAGE_WIDTH = 60


def add_parser(subparsers: Any) -> None:
    parser = add_command(
        subparsers, "flaky", "flaky tests from the history, highest score first", run
    )
    parser.add_argument(
        "--window",
        type=counting("runs", MAX_RUNS),
        default=DEFAULT_WINDOW,
        metavar="N",
        help=f"how many recent runs to judge each test on (default {DEFAULT_WINDOW})",
    )
    parser.add_argument("--branch", default=None, help="only runs of this branch")
    parser.add_argument(
        "--all",
        action="store_true",
        help="list every test seen in the window with its status, not only the flaky ones",
    )


def _evidence(result: FlakyResult) -> str:
    parts: list[str] = []
    for kind in result.evidence:
        if kind == "rerun":
            parts.append(f"passed on rerun x{result.rerun_passes}")
        elif kind == "same-commit":
            n = len(result.flaky_commits)
            parts.append(f"both outcomes on {n} commit{'s' if n != 1 else ''}")
        else:
            parts.append("keeps flipping")
    return "; ".join(parts)


def table_rows(results: list[FlakyResult]) -> list[tuple[Any, ...]]:
    rows: list[tuple[Any, ...]] = []
    for r in results:
        message = r.last_failure or ""
        if len(message) > MESSAGE_WIDTH:
            message = message[: MESSAGE_WIDTH - 1] + "…"
        rows.append(
            (
                r.nodeid,
                r.status,
                f"{r.score:.2f}",
                f"{100 * r.fail_rate:.0f}%",
                r.runs,
                r.failures,
                r.flips,
                _evidence(r) or None,
                (iso(r.last_seen_flaky) or "")[:16].replace("T", " ") or None,
                message or None,
            )
        )
    return rows


HEADERS = (
    "test",
    "status",
    "score",
    "fail rate",
    "runs",
    "failures",
    "flips",
    "evidence",
    "last seen flaky (UTC)",
    "last failure",
)


@guarded
def run(args: argparse.Namespace) -> int:
    kept: list[FlakyResult] = []
    with reading_store(args) as store:
        # Only a test that failed or needed a rerun in the window can be flaky: without
        # --all the store picks those, and the rest of the history is never read.
        if args.all:
            histories = store.histories(args.window, args.branch)
        else:
            histories = store.failing_histories(args.window, args.branch)
        for result in classify_all(histories):
            if args.all or result.status == "flaky":
                kept.append(result)
    results = rank(kept)
    if args.format == "json":
        print_json([r.to_dict() for r in results])
        return 0
    where = f"the last {args.window} runs" + (f" of branch {args.branch}" if args.branch else "")
    flaky = sum(1 for r in results if r.status == "flaky")
    if not results:
        print(f"no flaky tests in {where}")
        return 0
    print(render_table(HEADERS, table_rows(results), args.format))
    tail = f" among {len(results)} tests" if args.all else ""
    print(f"\n{flaky} flaky test{'s' if flaky != 1 else ''}{tail} in {where}")
    return 0
