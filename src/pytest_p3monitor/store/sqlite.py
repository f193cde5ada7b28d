"""The embedded SQLite store (the default, ``.p3monitor/results.db``).

Several pytest sessions may write one file at once (parallel CI jobs on one runner): the
database is in WAL mode, every write is one ``BEGIN IMMEDIATE`` transaction, and a writer
waits for the lock (``busy_timeout``) instead of failing with "database is locked".

A file that is not a SQLite database, a database that is not a p3monitor store, or a
store from a newer schema is never written to: opening it raises a :class:`StoreError`
that says what to do, and the file stays as it was.
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ..fsutil import make_dir_with_gitignore
from ..records import PEAK_KEYS, PROCESS_PATH, HistoryRow, RunInfo, RunRow, TestRecord, stored_peaks
from .base import (
    SchemaTooNew,
    Store,
    StoreCorrupt,
    StoreError,
    StoreUnavailable,
    peak_metrics,
    schema_version,
)
from .schema import SCHEMA_VERSION, statements
from .sql import (
    AFTER_RUN_FIELDS,
    MAX_WINDOW,
    NODE_HISTORY_SELECT,
    RUN_FIELDS,
    SQLStore,
    batched_rows,
    group_histories,
    stored_metrics,
)
from .sqlite_save import write_run

#: failing_histories scans the whole results table while the store holds fewer than this
#: many windows of runs, and goes through the run index beyond.
SCAN_BELOW = 20
#: A partial index of the failed / error / rerun results, on (run, test), if the schema has it.
FAILING_INDEX = "p3m_results_failing"
#: How many of the picked tests failing_histories reads the rows of in one query.
_FAILING_CHUNK = 256
_SQLITE_MAGIC = b"SQLite format 3\x00"
#: How long a writer waits for another session's transaction before giving up (ms).
BUSY_TIMEOUT_MS = 120_000

_PROCESS = "$." + ".".join(PROCESS_PATH)
#: The trend rows' peaks, picked out of the metrics JSON by SQLite: a JSON array of the
#: values at PEAK_KEYS (null where missing), exact as stored (a number's own digits, true
#: stays true). Metrics SQLite does not read as JSON (Python's NaN, say) come whole instead.
#: SQLite parses a text once per statement however many JSON functions read it.
_TREND_COLUMNS = (
    f"{RUN_FIELDS}, CASE WHEN json_valid(metrics) THEN json_extract(metrics, "
    + ", ".join(f"'{_PROCESS}.{key}'" for key in PEAK_KEYS)
    + ") END, CASE WHEN json_valid(metrics) THEN NULL ELSE metrics END"
)


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
    driver_error = sqlite3.Error

    def __init__(self, path: str | os.PathLike[str], *, create: bool = True) -> None:
        self.path = Path(path)
        self.display_url = str(self.path)
        if self.path.exists():
            if not self.path.is_file():  # reading a FIFO would wait for a writer for good
                raise StoreUnavailable(
                    f"the results store {self.path} is not a regular file (a folder, a FIFO, a "
                    "device); it was left as it is. Point --p3monitor-db / P3MONITOR_DB / ini "
                    "p3monitor_db at a file."
                )
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
            # In WAL mode this keeps every committed run through a crash of the process
            # (or a kill) and the file always consistent; only a power cut or an OS crash
            # may lose the last runs. It saves an fsync per session.
            self.conn.execute("PRAGMA synchronous = NORMAL")
            self._prepare(create)
        except sqlite3.DatabaseError as exc:
            self.conn.close()
            raise self._classify(exc) from None
        except BaseException:
            self.conn.close()
            raise

    def _classify(self, exc: sqlite3.Error) -> StoreError:
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
        return schema_version(row[0], str(self.path)) if row else 0

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

    # -- writing ---------------------------------------------------------------------------
    def save_run(self, run: RunInfo, tests: Sequence[TestRecord], metrics: dict[str, Any]) -> None:
        with self.write_transaction() as cur:
            write_run(cur, run, tests, metrics)

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

    # -- reading ---------------------------------------------------------------------------
    def trend_runs(
        self, limit: int = 2000, branch: str | None = None, since: float | None = None
    ) -> list[RunRow]:
        with self._errors():
            cur = self.conn.cursor()
            try:
                cur.execute(*self.runs_query(_TREND_COLUMNS, limit, branch, since))
            except sqlite3.OperationalError:  # a SQLite built without the JSON functions
                return Store.trend_runs(self, limit, branch, since)
            found = cur.fetchall()
        rows = []
        for row in found:
            peaks, whole = row[AFTER_RUN_FIELDS : AFTER_RUN_FIELDS + 2]
            memory, rss = (
                json.loads(peaks) if peaks is not None else stored_peaks(stored_metrics(whole))
            )
            rows.append(self._run_row(row, peak_metrics(memory, rss)))
        return rows

    def failing_histories(
        self, window: int = 100, branch: str | None = None
    ) -> Iterator[tuple[str, list[HistoryRow]]]:
        # The tests are picked in SQL (one scan of the results, in C), then only their rows
        # become HistoryRows: over 10,000 tests x 200 runs that is a few percent of them.
        with self._errors():
            yield from self._failing_histories(window, branch)

    def _failing_histories(
        self, window: int, branch: str | None
    ) -> Iterator[tuple[str, list[HistoryRow]]]:
        window = min(window, MAX_WINDOW)
        cur = self.conn.cursor()
        cutoff = self.window_start(cur, window, branch)
        # With a partial index of the failing results (FAILING_INDEX) SQLite reads only
        # those. Without it, a window over much of the store is read fastest by one
        # sequential scan of the results (the unary + keeps SQLite off the run index, whose
        # lookups are random); a window over a small part of a long history, by the index.
        cur.execute(
            "SELECT count(*) FROM sqlite_master WHERE type = 'index' AND name = ?",
            (FAILING_INDEX,),
        )
        scan = False
        if not cur.fetchone()[0]:
            cur.execute("SELECT count(*) FROM p3m_runs")
            scan = cur.fetchone()[0] <= SCAN_BELOW * window
        picked = (
            f"SELECT DISTINCT f.test FROM p3m_results f WHERE {'+' if scan else ''}f.run >= ?"
            " AND (f.outcome IN ('failed', 'error') OR f.reruns > 0)"
        )
        params: list[Any] = [cutoff]
        runs = "SELECT seq FROM p3m_runs WHERE seq >= ?"
        if branch is not None:
            picked += " AND f.run IN (SELECT seq FROM p3m_runs WHERE branch = ?)"
            runs += " AND branch = ?"
            params.append(branch)
        cur.execute(picked + " ORDER BY f.test", params)
        tests = [int(r[0]) for r in cur.fetchall()]
        # Their rows in the window, a chunk of tests at a time: a seek of the results'
        # primary key (run, test) per run and test, sorted by test in SQLite.
        sql = NODE_HISTORY_SELECT + f" WHERE r.run IN ({runs}) AND r.test IN"
        for i in range(0, len(tests), _FAILING_CHUNK):
            chunk = ", ".join(map(str, tests[i : i + _FAILING_CHUNK]))
            cur.execute(sql + f" ({chunk}) ORDER BY r.test, r.run", params)
            yield from group_histories(batched_rows(cur))

    def close(self) -> None:
        self.conn.close()
