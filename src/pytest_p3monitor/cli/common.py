"""What every subcommand shares: opening the store, output formats, tables."""

from __future__ import annotations

import argparse
import html
import json
import os
import re
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ..store import DEFAULT_PATH, Store, StoreError, open_store, redact_url, resolve_url
from ..store.sql import clean_text

FORMATS = ("table", "json", "markdown")

Runner = Callable[[argparse.Namespace], int]


def add_command(
    subparsers: Any, name: str, help: str, func: Runner, *, formats: Sequence[str] = FORMATS
) -> argparse.ArgumentParser:
    """A subcommand with the shared ``--db`` and ``--format`` options."""
    parser: argparse.ArgumentParser = subparsers.add_parser(name, help=help, description=help)
    parser.add_argument(
        "--db",
        metavar="URL",
        default=None,
        help="results store: a SQLite path or postgresql://... (default: $P3MONITOR_DB, "
        f"else {DEFAULT_PATH} in this folder or the nearest parent that has one)",
    )
    parser.add_argument("--format", choices=list(formats), default=formats[0], help="output format")
    parser.set_defaults(func=func)
    return parser


def find_default_db(start: Path | None = None) -> Path:
    """``.p3monitor/results.db`` in ``start`` or its nearest parent that has one."""
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        candidate = folder / DEFAULT_PATH
        if candidate.exists():
            return candidate
    return here / DEFAULT_PATH


def store_url(text: str) -> str:
    """A store URL typed on the command line or set in the environment: a relative path
    is relative to the current folder, ``~`` is expanded (as ``pytest --p3monitor`` reads
    ``--p3monitor-db`` and ``P3MONITOR_DB``)."""
    return resolve_url(text, Path.cwd())


def db_url(args: argparse.Namespace) -> str:
    url: str | None = args.db or os.environ.get("P3MONITOR_DB")
    return store_url(url) if url else str(find_default_db())


@contextmanager
def reading_store(args: argparse.Namespace) -> Iterator[Store]:
    """Open the store for reading; a :class:`StoreError` becomes a message and exit 2."""
    url = db_url(args)
    try:
        store = open_store(url, create=False)
    except StoreError as exc:
        raise CommandError(str(exc)) from None
    try:
        yield store
    finally:
        store.close()


#: How store errors name the pytest plugin's settings, where a command has its own option.
_PLUGIN_OPTION = re.compile(
    r"(?:(?<=[Pp]oint )|(?<= in ))--p3monitor-db(?: / P3MONITOR_DB)?(?: / ini p3monitor_db)?"
)


def for_command(text: str, option: str = "--db / P3MONITOR_DB") -> str:
    """A store error's advice (written for ``pytest --p3monitor``) naming the command's own
    option instead of ``--p3monitor-db``."""
    return _PLUGIN_OPTION.sub(option, text)


class CommandError(Exception):
    """A user-facing failure of a subcommand: printed as ``p3monitor: error: ...``."""


def fail(message: str, code: int = 2) -> int:
    print(f"p3monitor: error: {message}", file=sys.stderr)
    return code


#: Arguments that are looked up in the store (branch names, run ids, node ids).
_LOOKED_UP = ("branch", "run", "nodeid")


def guarded(func: Runner) -> Runner:
    """Turn CommandError / StoreError into one line on stderr and exit status 2."""

    def wrapper(args: argparse.Namespace) -> int:
        # Looked up as the store holds them: a value in no encoding (bytes that are not
        # UTF-8, from the shell) cleaned the same way as when it was stored.
        for name in _LOOKED_UP:
            value = getattr(args, name, None)
            if isinstance(value, str):
                setattr(args, name, clean_text(value))
        try:
            return func(args)
        except (CommandError, StoreError) as exc:
            return fail(for_command(str(exc)))

    wrapper.__name__ = func.__name__
    wrapper.__doc__ = func.__doc__
    return wrapper


def print_json(data: Any) -> None:
    json.dump(data, sys.stdout, indent=2, default=str)
    sys.stdout.write("\n")


def cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 1000 else f"{value:.0f}"
    return str(value)


def render_table(headers: Sequence[str], rows: Sequence[Sequence[Any]], fmt: str) -> str:
    """Rows as an aligned text table or a Markdown table."""
    text_rows = [[cell(v) for v in row] for row in rows]
    if fmt == "markdown":

        def esc(s: str) -> str:  # a renderer would take <tag> for HTML: shown as written
            return html.escape(s, quote=False).replace("|", "\\|")

        lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
        lines += ["| " + " | ".join(esc(c) for c in row) + " |" for row in text_rows]
        return "\n".join(lines)
    widths = [len(h) for h in headers]
    for row in text_rows:
        widths = [max(w, len(c)) for w, c in zip(widths, row, strict=True)]
    out = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    out.append("  ".join("-" * w for w in widths))
    out += [
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
        for row in text_rows
    ]
    return "\n".join(out)


def counting(what: str, maximum: int) -> Callable[[str], int]:
    """An argparse type for a count of ``what`` from 1 to ``maximum`` (a bound that keeps
    the value in range for the database and the calendar)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if not 1 <= value <= maximum:
            raise argparse.ArgumentTypeError(
                f"the number of {what} is from 1 to {maximum:,}, not {value:,}"
            )
        return value

    return parse


#: The most runs a command reads or lists (far more than a store keeps in practice, and
#: within what the database's integers hold).
MAX_RUNS = 1_000_000


__all__ = [
    "FORMATS",
    "CommandError",
    "add_command",
    "db_url",
    "fail",
    "for_command",
    "guarded",
    "print_json",
    "reading_store",
    "redact_url",
    "render_table",
    "store_url",
]
