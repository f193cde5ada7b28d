"""``p3monitor report``: the health report of one stored run, the newest by default.

As text tables, Markdown, the JSON of the ``p3monitor-report/1`` schema, or a self-contained
HTML dashboard. The report is assembled by :mod:`pytest_p3monitor.report.run_report` from the
run, its results, the flaky verdicts of ``p3monitor flaky`` and the trends of
``p3monitor trends``; this module only reads the store and writes the result.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from ..flaky import classify_all
from ..fsutil import atomic_write_text
from ..records import RunRow
from ..report import run_report
from ..runinfo import usable_cpus
from ..store import Store
from .common import CommandError, add_command, guarded, reading_store
from .flaky import DEFAULT_WINDOW as FLAKY_WINDOW
from .health import DEFAULT_WINDOW as HEALTH_WINDOW
from .trends import MAX_RUNS as TREND_RUNS

FORMATS = ("table", "json", "markdown", "html")
#: The first bytes of every SQLite database file.
_SQLITE_MAGIC = b"SQLite format 3\x00"
#: Runs an ambiguous ``--run`` prefix lists.
MATCHES_SHOWN = 5
_DAY = 24 * 3600.0


def add_parser(subparsers: Any) -> None:
    parser = add_command(
        subparsers,
        "report",
        "the health report of one run (the newest by default), or an HTML dashboard of it",
        run,
        formats=FORMATS,
    )
    parser.add_argument(
        "--run",
        default=None,
        metavar="RUN_ID",
        help="the run: its id as `p3monitor runs` prints it, or the start of one "
        "(default: the newest run)",
    )
    parser.add_argument(
        "--output",
        "-o",
        default=None,
        metavar="PATH",
        help="write the report to PATH (in an existing folder) instead of stdout",
    )


def pick_run(store: Store, run_id: str | None) -> RunRow:
    """The newest run, or the one ``run_id`` names (its id or the start of one)."""
    if run_id is None:
        rows = store.recent_runs(limit=1)
        if not rows:
            raise CommandError("no runs stored yet: run pytest --p3monitor first")
        return rows[0]
    wanted = run_id.strip()
    if not wanted:
        raise CommandError("--run is empty: give a run id as `p3monitor runs` prints it")
    rows = store.find_runs(wanted, limit=MATCHES_SHOWN + 1)
    if not rows:
        raise CommandError(
            f"no run {wanted!r} in {store.display_url}: `p3monitor runs` lists the stored "
            "runs; --run takes an id or the start of one"
        )
    if len(rows) > 1:
        shown = ", ".join(r.run.run_id for r in rows[:MATCHES_SHOWN])
        more = " and more" if len(rows) > MATCHES_SHOWN else ""
        raise CommandError(
            f"--run {wanted!r} is the start of several run ids ({shown}{more}): give more of the id"
        )
    return rows[0]


def _check_output(path: Path) -> None:
    """Refuse, before any work, an output the report could not be written to."""
    if path.is_dir():
        raise CommandError(f"--output {path} is a folder: give a file path, e.g. {path}/report")
    if not path.parent.is_dir():
        raise CommandError(
            f"--output {path}: the folder {path.parent} does not exist; create it first "
            "or write elsewhere"
        )
    try:
        with path.open("rb") as existing:
            database = existing.read(16) == _SQLITE_MAGIC
    except OSError:  # not there yet (or unreadable: the write will say)
        database = False
    if database:  # the store itself, say: a report must never replace one
        raise CommandError(
            f"--output {path} is a SQLite database (a results store?): it was left as it "
            "was; write the report to another file"
        )


def render(report: dict[str, Any], fmt: str) -> str:
    """The report in ``fmt`` (one of :data:`FORMATS`), ending with a newline."""
    if fmt == "json":
        return json.dumps(report, indent=2, default=str) + "\n"
    if fmt == "html":
        from ..report.html import render_html

        return render_html(report)
    from ..report.text import render_text

    return render_text(report, "markdown" if fmt == "markdown" else "table")


@guarded
def run(args: argparse.Namespace) -> int:
    output = Path(args.output) if args.output else None
    if output is not None:
        _check_output(output)
    with reading_store(args) as store:
        row = pick_run(store, args.run)
        tests = store.run_tests(row.run_seq)
        # the flaky verdicts of `p3monitor flaky` (its window, every branch)
        flaky = [r for r in classify_all(store.failing_histories(FLAKY_WINDOW)) if r.is_flaky]
        history: list[RunRow] = []
        if not run_report.has_stored_health(row):  # only then is the health computed here
            history = store.runs_before(row.run_seq, HEALTH_WINDOW - 1)
        since = run_report.anchor_time(row) - run_report.TREND_DAYS * _DAY
        trend_rows = store.trend_runs(limit=TREND_RUNS, since=since)
    report = run_report.build_stored(
        row,
        tests,
        history=history,
        trend_rows=trend_rows,
        flaky=flaky,
        cpu_count=usable_cpus(),
    )
    text = render(report, args.format)
    if output is None:
        sys.stdout.write(text)
        return 0
    try:
        atomic_write_text(output, text)
    except OSError as exc:
        raise CommandError(
            f"cannot write the report to {output}: {exc.strerror or exc}; "
            "check the folder's permissions or write elsewhere"
        ) from None
    print(f"report of run {row.run.run_id} written to {output}", file=sys.stderr)
    return 0
