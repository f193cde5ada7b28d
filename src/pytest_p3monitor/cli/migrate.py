"""``p3monitor migrate-store --from URL --to URL``: copy a results store to another one.

SQLite to PostgreSQL when a team outgrows one machine, and back. Runs are copied oldest
first, one transaction per run, reading one batch of runs and one run's results at a
time, so memory stays bounded whatever the size of the store. A run already in the
target (same run id) is skipped: running the copy again, or after an interruption,
copies only what is missing. A copy that fails (a damaged source) into a SQLite file it
created removes that file again: no half store is left behind.
"""

from __future__ import annotations

import argparse
import contextlib
import shutil
import sys
import time
from pathlib import Path
from typing import Any

from ..store import Store, StoreError, open_store, sqlite_path
from ..store.sql import SQLStore
from .common import CommandError, for_command, guarded, print_json, store_url

#: runs read from the source per query
BATCH = 200


def add_parser(subparsers: Any) -> None:
    help = "copy every run of one results store into another (SQLite <-> PostgreSQL)"
    parser = subparsers.add_parser(
        "migrate-store",
        help=help,
        description=help + ". Runs already in the target are skipped, so it can be rerun.",
    )
    parser.add_argument(
        "--from",
        dest="source",
        required=True,
        metavar="URL",
        help="the store to copy: a SQLite path or postgresql://...",
    )
    parser.add_argument(
        "--to",
        dest="target",
        required=True,
        metavar="URL",
        help="the store to copy into (created when missing): a SQLite path or postgresql://...",
    )
    parser.add_argument("--format", choices=["table", "json"], default="table")
    parser.add_argument("--quiet", "-q", action="store_true", help="no progress lines on stderr")
    parser.set_defaults(func=run)


def _open(url: str, create: bool, role: str) -> SQLStore:
    url = store_url(url)
    try:
        store: Store = open_store(url, create=create)
    except StoreError as exc:
        raise CommandError(f"{role}: {for_command(str(exc), role)}") from None
    if not isinstance(store, SQLStore):  # pragma: no cover - every backend is SQL today
        store.close()
        raise CommandError(f"{role}: {store.display_url} cannot be copied (not a SQL store)")
    return store


def copy_store(source: SQLStore, target: SQLStore, progress: Any = None) -> dict[str, int]:
    """Copy every run of ``source`` missing from ``target``; return the counts."""
    present = target.run_ids()
    counts = {"runs": 0, "results": 0, "skipped": 0}
    after = 0
    while True:
        batch = source.runs_after(after, BATCH)
        if not batch:
            return counts
        for row in batch:
            after = row.run_seq
            if row.run.run_id in present:
                counts["skipped"] += 1
                continue
            tests = source.run_tests(row.run_seq)
            target.save_run(row.run, tests, row.metrics)
            present.add(row.run.run_id)
            counts["runs"] += 1
            counts["results"] += len(tests)
        if progress is not None:
            progress(counts)


def _new_files(url: str) -> list[Path]:
    """What opening the SQLite store ``url`` would create: its file (and the WAL files
    beside it) and the folders missing above it, deepest first; [] for an existing file
    or a server database."""
    path = sqlite_path(store_url(url))
    if path is None or path.exists():
        return []
    path = path.absolute()
    files = [path, Path(f"{path}-wal"), Path(f"{path}-shm")]
    folder = path.parent
    while not folder.exists():
        files.append(folder)
        folder = folder.parent
    return files


def _remove(paths: list[Path]) -> None:
    """Remove what a failed copy created (the folders with what was made in them)."""
    for path in paths:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            with contextlib.suppress(OSError):
                path.unlink()


@guarded
def run(args: argparse.Namespace) -> int:
    source = _open(args.source, False, "--from")
    created = _new_files(args.target)
    try:
        target = _open(args.target, True, "--to")
    except CommandError:
        source.close()
        _remove(created)
        raise
    started = time.monotonic()

    def progress(counts: dict[str, int]) -> None:
        if not args.quiet and sys.stderr.isatty():
            print(
                f"\rcopied {counts['runs']} runs ({counts['results']} results),"
                f" skipped {counts['skipped']}",
                end="",
                file=sys.stderr,
            )

    try:
        if source.display_url == target.display_url:
            raise CommandError("--from and --to name the same store; nothing to copy")
        counts = copy_store(source, target, progress)
    except (CommandError, StoreError) as exc:
        source.close()
        target.close()
        text = for_command(str(exc), "--from / --to")
        if created:  # a store this command made holds only part of a failed copy
            _remove(created)
            text += f" ({target.display_url} was not created)"
        raise CommandError(text) from None
    finally:
        source.close()
        target.close()
    if not args.quiet and sys.stderr.isatty():
        print(file=sys.stderr)
    seconds = time.monotonic() - started
    if args.format == "json":
        print_json(
            {
                "from": source.display_url,
                "to": target.display_url,
                "copied_runs": counts["runs"],
                "copied_results": counts["results"],
                "skipped_runs": counts["skipped"],
                "seconds": round(seconds, 3),
            }
        )
    else:
        print(
            f"copied {counts['runs']} runs ({counts['results']} results) from "
            f"{source.display_url} to {target.display_url} in {seconds:.1f} s; "
            f"{counts['skipped']} runs were already there"
        )
    return 0
