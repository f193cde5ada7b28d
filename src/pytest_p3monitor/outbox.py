"""The outbox: what could not be delivered is kept here, never lost.

A run that could not be stored (store down, locked, damaged) and a report an endpoint
refused are written as JSON files under ``.p3monitor/outbox/<kind>/``; ``p3monitor export
--flush`` (or the next session, for runs) delivers them and removes each one delivered.
Files are written atomically (temporary file, then rename), so a kill never leaves half
a file behind.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .fsutil import atomic_write_text, make_dir_with_gitignore

DEFAULT_DIR = Path(".p3monitor") / "outbox"


def save(kind: str, name: str, payload: dict[str, Any], base: Path = DEFAULT_DIR) -> Path:
    """Keep ``payload`` as ``base/kind/name.json``; return the path."""
    make_dir_with_gitignore(base)
    target = base / kind / f"{name}.json"
    atomic_write_text(target, json.dumps(payload, default=str))
    return target


def pending(kind: str, base: Path = DEFAULT_DIR) -> list[Path]:
    """The kept files of one kind, oldest first.

    Several sessions may empty one outbox at once: a file another one delivered and
    removed meanwhile is not listed (and :func:`load` of a listed file may still raise
    :class:`FileNotFoundError`, which means the same: not ours to deliver).
    """
    folder = base / kind
    if not folder.is_dir():
        return []
    found: list[tuple[float, str, Path]] = []
    for path in folder.glob("*.json"):
        try:
            found.append((path.stat().st_mtime, path.name, path))
        except FileNotFoundError:
            continue
    found.sort()
    return [path for _, _, path in found]


def load(path: Path) -> dict[str, Any]:
    """A kept entry; :class:`FileNotFoundError` when another session delivered it."""
    data = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict):
        raise ValueError(f"{path} does not hold a JSON object")
    return data


def remove(path: Path) -> None:
    path.unlink(missing_ok=True)
