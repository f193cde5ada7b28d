"""``p3monitor prune --older-than 90d``: delete runs older than a duration, on any backend."""

from __future__ import annotations

import argparse
import math
import re
import time
from typing import Any

from ..report.json_report import iso
from .common import add_command, guarded, print_json, reading_store

#: seconds per unit of a duration
UNITS: dict[str, int] = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
MAX_SECONDS = 1000 * 365 * 86400
_DURATION = re.compile(r"(\d+(?:\.\d*)?|\.\d+)\s*([smhdw])")
_FORM = "a number and a unit, such as 90d, 12h, 2w or 30m (units: s, m, h, d, w)"


def parse_duration(text: str) -> float:
    """Seconds in a duration such as ``90d``, ``12h``, ``2w``, ``1.5d`` (more than zero).

    Raises ValueError with the accepted form for anything else.
    """
    match = _DURATION.fullmatch(text.strip().lower())
    if match is None:
        raise ValueError(f"invalid duration {text!r}: expected {_FORM}")
    seconds = float(match.group(1)) * UNITS[match.group(2)]
    if not seconds > 0 or not math.isfinite(seconds):
        raise ValueError(f"invalid duration {text!r}: it must be more than zero")
    if seconds > MAX_SECONDS:
        raise ValueError(f"invalid duration {text!r}: it must be under 1000 years")
    return seconds


def _duration_arg(text: str) -> float:
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_parser(subparsers: Any) -> None:
    parser = add_command(
        subparsers,
        "prune",
        "delete the runs (and their results) older than a duration",
        run,
        formats=("table", "json"),
    )
    parser.add_argument(
        "--older-than",
        type=_duration_arg,
        required=True,
        metavar="DURATION",
        help=f"delete runs that started longer ago than this: {_FORM}",
    )


@guarded
def run(args: argparse.Namespace) -> int:
    cutoff = time.time() - args.older_than
    with reading_store(args) as store:
        deleted = store.prune(cutoff)
        where = store.display_url
    if args.format == "json":
        print_json({"store": where, "older_than": iso(cutoff), "deleted_runs": deleted})
    else:
        noun = "run" if deleted == 1 else "runs"
        print(f"deleted {deleted} {noun} started before {iso(cutoff)} from {where}")
    return 0
