"""The ``p3monitor`` command: reads the results store.

Each subcommand is a module of this package with ``add_parser(subparsers)`` and
``run(args) -> int``; :data:`COMMANDS` lists them in the order ``--help`` shows them.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from .. import __version__

COMMANDS: tuple[str, ...] = (
    "runs",
    "history",
    "flaky",
    "prune",
    "migrate",
    "trends",
    "health",
    "report",
    "export",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="p3monitor",
        description="Read the pytest-p3monitor results store: runs, history, flaky tests, "
        "trends, health, run reports and an HTML dashboard, exports.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in COMMANDS:
        module = importlib.import_module(f"{__name__}.{name}")
        module.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code: int = args.func(args)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # e.g. `p3monitor runs | head`
        sys.stderr.close()
        return 0
    return code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
