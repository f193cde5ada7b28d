"""Files the plugin writes: folders made atomically with a .gitignore, atomic file writes."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

GITIGNORE = "# Created by pytest-p3monitor: its results store and reports.\n*\n"


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def make_dir_with_gitignore(path: Path) -> None:
    """Create ``path`` (and parents) with a ``.gitignore`` inside, atomically.

    Like pytest's cache directory: the folder appears complete or not at all, so two
    sessions creating it at once never see a half-made one.
    """
    if path.is_dir():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".p3monitor-tmp-", dir=path.parent))
    try:
        tmp.chmod(0o777 & ~_umask())
        (tmp / ".gitignore").write_text(GITIGNORE, encoding="utf-8")
        try:
            tmp.rename(path)
        except OSError:
            if not path.is_dir():  # when it is a dir now, another session made it first
                raise
    finally:
        if tmp.exists():
            (tmp / ".gitignore").unlink(missing_ok=True)
            tmp.rmdir()


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file and a rename: a kill never
    leaves half a file behind."""
    path.parent.mkdir(parents=True, exist_ok=True)
    # A short name of its own: the target's name may already be as long as names go.
    fd, tmp = tempfile.mkstemp(prefix=".p3monitor-", suffix=".tmp", dir=path.parent)
    try:
        os.chmod(tmp, 0o666 & ~_umask())
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
