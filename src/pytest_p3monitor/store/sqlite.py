"""The embedded SQLite store (the default, ``.p3monitor/results.db``).

Several pytest sessions may write one file at once (parallel CI jobs on one runner): the
database is in WAL mode, every write is one ``BEGIN IMMEDIATE`` transaction, and a writer
waits for the lock (``busy_timeout``) instead of failing with "database is locked".

A file that is not a SQLite database, a database that is not a p3monitor store, or a
store from a newer schema is never written to: opening it raises a :class:`StoreError`
that says what to do, and the file stays as it was.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ..fsutil import make_dir_with_gitignore
from .base import SchemaTooNew, StoreCorrupt, StoreUnavailable
from .schema import SCHEMA_VERSION, statements
from .sql import SQLStore

_SQLITE_MAGIC = b"SQLite format 3\x00"
#: How long a writer waits for another session's transaction before giving up (ms).
BUSY_TIMEOUT_MS = 120_000


def _check_header(path: Path) -> None:
    try:
        with path.open("rb") as fh:
            head = fh.read(len(_SQLITE_MAGIC))
    except OSError as exc:
        raise StoreUnavailable(f"cannot read the results store {path}: {exc.strerror}") from None
    if head and head != _SQLITE_MAGIC:
        raise StoreCorrupt(
            f"{path} is not a SQLite database; it was left as it is. Move it away or point "
            "--p3monitor-db / P3MONITOR_DB / ini p3monitor_db at another file."
        )


class SQLiteStore(SQLStore):
    """A results store in one SQLite file."""

    paramstyle = "qmark"

    def __init__(self, path: str | os.PathLike[str], *, create: bool = True) -> None:
        self.path = Path(path)
        self.display_url = str(self.path)
        if self.path.exists():
            _check_header(self.path)
        elif not create:
            raise StoreUnavailable(
                f"no results store at {self.path}: run `pytest --p3monitor` first, "
                "or point --db / P3MONITOR_DB at an existing store"
            )
        else:
            try:
                make_dir_with_gitignore(self.path.parent)
            except OSError as exc:
                raise StoreUnavailable(
                    f"cannot create the folder of the results store {self.path}: "
                    f"{exc.strerror or exc}"
                ) from None
        try:
            self.conn = sqlite3.connect(
                self.path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None
            )
        except sqlite3.Error as exc:
            raise StoreUnavailable(f"cannot open the results store {self.path}: {exc}") from None
        try:
            self.conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            self._prepare(create)
        except sqlite3.DatabaseError as exc:
            self.conn.close()
            raise self._classify(exc) from None
        except BaseException:
            self.conn.close()
            raise

    def _classify(self, exc: sqlite3.DatabaseError) -> Exception:
        text = str(exc)
        if isinstance(exc, sqlite3.OperationalError) and (
            "unable to open" in text or "readonly" in text or "disk I/O" in text
        ):
            return StoreUnavailable(
                f"cannot write the results store {self.path} ({text}); check the folder's "
                "permissions or point --p3monitor-db / P3MONITOR_DB at a writable path"
            )
        if isinstance(exc, sqlite3.OperationalError) and "locked" in text:
            return StoreUnavailable(f"the results store {self.path} stayed locked: {text}")
        return StoreCorrupt(
            f"the results store {self.path} is damaged ({text}); it was left as it is. "
            "Move it away to start a new history, or restore it from a backup."
        )

    def _version(self) -> int:
        tables = {
            r[0] for r in self.conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        }
        if "p3m_meta" not in tables:
            if tables - {"sqlite_sequence"}:
                raise StoreCorrupt(
                    f"{self.path} is a SQLite database but not a pytest-p3monitor store; it "
                    "was left as it is. Point --p3monitor-db at another file."
                )
            return 0
        row = self.conn.execute(
            "SELECT value FROM p3m_meta WHERE key = 'schema_version'"
        ).fetchone()
        return int(row[0]) if row else 0

    def _prepare(self, create: bool) -> None:
        version = self._version()
        if version > SCHEMA_VERSION:
            raise SchemaTooNew(
                f"the results store {self.path} has schema version {version}, newer than this "
                f"pytest-p3monitor understands ({SCHEMA_VERSION}); it was left as it is. "
                "Upgrade pytest-p3monitor, or point --p3monitor-db at another file."
            )
        if version == SCHEMA_VERSION:
            return
        if not create:
            raise StoreUnavailable(
                f"the results store {self.path} needs migrating from schema {version}: "
                "run `pytest --p3monitor` once to upgrade it"
            )
        # WAL lets readers go on while one session writes; set once, it sticks to the file.
        self.conn.execute("PRAGMA journal_mode = WAL")
        with self.write_transaction():
            version = self._version()  # another session may have migrated meanwhile
            for step, stmts in enumerate(statements("sqlite", version), start=version + 1):
                for stmt in stmts:
                    self.conn.execute(stmt)
                self.conn.execute(
                    "INSERT INTO p3m_meta (key, value) VALUES ('schema_version', ?)"
                    " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                    (str(step),),
                )

    @contextmanager
    def write_transaction(self) -> Iterator[Any]:
        cur = self.conn.cursor()
        try:
            cur.execute("BEGIN IMMEDIATE")
        except sqlite3.DatabaseError as exc:
            raise self._classify(exc) from None
        try:
            yield cur
        except sqlite3.DatabaseError as exc:
            self.conn.rollback()
            raise self._classify(exc) from None
        except BaseException:
            self.conn.rollback()
            raise
        try:
            cur.execute("COMMIT")
        except sqlite3.DatabaseError as exc:
            self.conn.rollback()
            raise self._classify(exc) from None

    def close(self) -> None:
        self.conn.close()
