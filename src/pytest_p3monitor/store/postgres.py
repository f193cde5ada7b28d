"""The PostgreSQL store: one database shared by every CI runner of a team.

``--p3monitor-db postgresql://user@host:port/db`` (psycopg 3, the ``postgres`` extra).
The schema and the SQL are those of every backend (:mod:`.schema`, :mod:`.sql`); this
module adds what a shared server needs:

- bounded waits: a connect timeout (``connect_timeout`` in the URL, else
  :data:`CONNECT_TIMEOUT_S`) and a ``lock_timeout`` on every statement;
- migrations safe when many sessions start at once against a fresh database: each takes
  a transaction-scoped advisory lock, re-reads the version, and only the first migrates;
- many writers: a run is saved in one transaction of three set-based statements (no
  per-test round trips), node ids are inserted in one global order so concurrent writers
  never deadlock, and a transaction that still hits a deadlock, a serialization failure or
  a pruned test is retried (saving is idempotent per run id, so a retry is safe);
- a server restart between opening and saving costs a reconnect, not the run;
- every driver error becomes a :class:`StoreError` whose message never holds the password.
"""

from __future__ import annotations

import itertools
import json
import random
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from typing import Any, TypeVar

import psycopg
from psycopg import errors as pg_errors
from psycopg.conninfo import conninfo_to_dict

from ..records import PROCESS_PATH, HistoryRow, RunInfo, RunRow, TestRecord, process_peaks
from . import redact_url
from .base import (
    SchemaTooNew,
    Store,
    StoreCorrupt,
    StoreError,
    StoreUnavailable,
    peak_metrics,
    schema_version,
)
from .schema import FIGURE_COLUMNS, SCHEMA_VERSION, statements
from .sql import (
    AFTER_RUN_FIELDS,
    MAX_WINDOW,
    NODE_HISTORY_SELECT,
    RESULT_COLUMNS,
    RUN_FIELDS,
    SQLStore,
    batched_rows,
    group_histories,
    result_values,
    run_params,
)
from .sql import clean_text as _text

T = TypeVar("T")

#: The trend rows' peaks: the metrics' process usage, picked out by the server. As ``json``,
#: not ``jsonb``: the text is only scanned (jsonb would build a tree of all of it first,
#: about 4 times the cost), and the mapping comes back as stored (a number's own digits,
#: true stays true); psycopg parses that small mapping.
_TREND_COLUMNS = f"{RUN_FIELDS}, metrics::json #> '{{{','.join(PROCESS_PATH)}}}'"

#: Seconds to wait for the server to accept a connection (unless the URL says otherwise).
CONNECT_TIMEOUT_S = 10
#: Milliseconds a statement may wait for a lock held by another session before failing.
LOCK_TIMEOUT_MS = 60_000
#: How often a write is tried, after a deadlock, serialization failure or lost connection.
WRITE_ATTEMPTS = 6
#: Seconds a save keeps trying to reconnect after the server went away mid-session.
RECONNECT_WINDOW_S = 8.0
#: The advisory lock every session takes to migrate (any constant; "p3mon" in ASCII).
MIGRATION_LOCK = 0x70336D6F6E

_RETRYABLE = (
    pg_errors.DeadlockDetected,
    pg_errors.SerializationFailure,
    pg_errors.ForeignKeyViolation,  # a test row pruned by another session meanwhile
    pg_errors.UniqueViolation,
)

_RUN_INSERT = (
    "INSERT INTO p3m_runs (run_id, started_at, finished_at, commit_sha, branch, ci_provider,"
    " ci_run_id, ci_job, ci_url, hostname, python, pytest, workers, exit_status, tests, passed,"
    " failed, errors, skipped, xfailed, xpassed, reruns, test_execution_time_s, metrics)"
    " VALUES (" + ", ".join(["%s"] * 24) + ") ON CONFLICT (run_id) DO NOTHING RETURNING seq"
)
# A run's results are copied (COPY, the fastest way in) into a temporary table of the
# connection, then moved into the store with two set-based statements.
_LOAD_TABLE = (
    "CREATE TEMPORARY TABLE IF NOT EXISTS p3m_load (nodeid TEXT, file TEXT, line INTEGER,"
    " outcome TEXT, setup_s DOUBLE PRECISION, call_s DOUBLE PRECISION,"
    " teardown_s DOUBLE PRECISION, start_at DOUBLE PRECISION, stop_at DOUBLE PRECISION,"
    " reruns INTEGER, worker TEXT, message TEXT, figures TEXT, "
    + ", ".join(f"{name} DOUBLE PRECISION" for name in FIGURE_COLUMNS)
    + ") ON COMMIT DELETE ROWS"
)
_LOAD_COPY = f"COPY p3m_load (nodeid, file, line, {RESULT_COLUMNS}) FROM STDIN"
# Only the node ids not stored yet, in one order for every writer (no lock cycles).
_TESTS_INSERT = (
    "INSERT INTO p3m_tests (nodeid, file, line)"
    " SELECT l.nodeid, l.file, l.line FROM p3m_load l"
    " WHERE NOT EXISTS (SELECT 1 FROM p3m_tests t WHERE t.nodeid = l.nodeid)"
    " ORDER BY l.nodeid ON CONFLICT (nodeid) DO NOTHING"
)
_RESULTS_INSERT = (
    f"INSERT INTO p3m_results (test, run, {RESULT_COLUMNS})"
    " SELECT t.id, %s, l.outcome, l.setup_s, l.call_s, l.teardown_s, l.start_at, l.stop_at,"
    " l.reruns, l.worker, l.message, l.figures, "
    # the byte counts are whole numbers; the load table takes any number
    + ", ".join(
        f"l.{name}" if name == "cpu_time_s" else f"round(l.{name})::bigint"
        for name in FIGURE_COLUMNS
    )
    + " FROM p3m_load l JOIN p3m_tests t ON t.nodeid = l.nodeid"
)


#: json.dumps with the same separators builds a new encoder per call; this one is reused.
_dumps = json.JSONEncoder(separators=(",", ":"), default=str).encode


def _one_line(text: str) -> str:
    return " ".join(text.split())


class PostgresStore(SQLStore):
    """A results store in a PostgreSQL database (tables ``p3m_*`` in the search path)."""

    paramstyle = "format"
    driver_error = psycopg.Error

    def __init__(self, url: str, *, create: bool = True) -> None:
        self.url = url
        self.display_url = redact_url(url)
        self._secrets = self._secrets_of(url)
        self._load_table_ready = False
        self._cursor_ids = itertools.count()
        self._streams: list[Any] = []
        self._stream_conn: psycopg.Connection[Any] | None = None
        self.conn = self._connect()
        try:
            self._prepare(create)
        except BaseException:
            self.conn.close()
            raise

    # -- connections and errors ------------------------------------------------------------
    @staticmethod
    def _secrets_of(url: str) -> list[str]:
        import os

        secrets = [os.environ.get("PGPASSWORD", "")]
        with suppress(psycopg.Error):
            secrets.append(str(conninfo_to_dict(url).get("password") or ""))
        # also the raw (percent-encoded) form, as it appears in the URL itself
        if "://" in url and "@" in url.split("://", 1)[1]:
            userinfo = url.split("://", 1)[1].rsplit("@", 1)[0]
            if ":" in userinfo:
                secrets.append(userinfo.split(":", 1)[1])
        return sorted({s for s in secrets if s}, key=len, reverse=True)

    def _scrub(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return _one_line(text)

    def _connect(self) -> psycopg.Connection[Any]:
        kwargs: dict[str, Any] = {"autocommit": True, "application_name": "pytest-p3monitor"}
        try:
            if "connect_timeout" not in conninfo_to_dict(self.url):
                kwargs["connect_timeout"] = CONNECT_TIMEOUT_S
            conn = psycopg.connect(self.url, **kwargs)
        except psycopg.Error as exc:
            raise self._classify(exc) from None
        try:
            # JIT compiling costs more than it saves on the store's short queries.
            conn.execute(f"SET lock_timeout = {LOCK_TIMEOUT_MS}; SET jit = off")
        except psycopg.Error as exc:
            conn.close()
            raise self._classify(exc) from None
        return conn

    def _classify(self, exc: psycopg.Error) -> StoreError:
        """The user-facing error for a driver error (never with the password in it)."""
        where = self.display_url
        text = self._scrub(str(exc)) or type(exc).__name__
        if isinstance(exc, psycopg.OperationalError):
            if "password authentication failed" in text or "no password supplied" in text:
                return StoreUnavailable(
                    f"the PostgreSQL results store {where} refused the login ({text}); check "
                    "the user and password in --p3monitor-db / P3MONITOR_DB / ini p3monitor_db"
                )
            if isinstance(exc, pg_errors.LockNotAvailable | pg_errors.QueryCanceled):
                return StoreUnavailable(
                    f"the PostgreSQL results store {where} stayed locked by other sessions ({text})"
                )
            return StoreUnavailable(
                f"cannot reach the PostgreSQL results store {where} ({text}); check that the "
                "server is up and the URL in --p3monitor-db / P3MONITOR_DB / ini p3monitor_db"
            )
        if isinstance(exc, pg_errors.InsufficientPrivilege):
            return StoreUnavailable(
                f"the PostgreSQL role may not use the results store {where} ({text}); grant it "
                "CREATE on the schema (first session) and SELECT, INSERT, DELETE on the p3m_ tables"
            )
        if isinstance(exc, psycopg.ProgrammingError) and exc.sqlstate is None:
            return StoreUnavailable(f"bad PostgreSQL results store URL {where} ({text})")
        if isinstance(exc, psycopg.InterfaceError):
            return StoreUnavailable(f"the PostgreSQL results store {where} is unusable ({text})")
        return StoreCorrupt(
            f"the PostgreSQL results store {where} does not look like a pytest-p3monitor store "
            f"({text}); it was left as it is. Point --p3monitor-db at another database."
        )

    def _lost(self) -> bool:
        return bool(self.conn.closed or self.conn.broken)

    def _reconnect(self, deadline: float) -> None:
        """Connect again after the server went away, trying until ``deadline``."""
        delay = 0.2
        while True:
            try:
                self.conn.close()
                self.conn = self._connect()
                self._load_table_ready = False  # temporary tables die with the connection
                return
            except StoreUnavailable:
                if time.monotonic() + delay > deadline:
                    raise
                time.sleep(delay)
                delay = min(delay * 2, 2.0)

    # -- schema ----------------------------------------------------------------------------
    def _version(self, cur: Any) -> int:
        # pg_class through a fresh MVCC snapshot (to_regclass may answer from a stale
        # cache): after waiting for the migration lock we must see the winner's tables.
        cur.execute(
            "SELECT c.relname FROM pg_catalog.pg_class c"
            " JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace"
            " WHERE n.nspname = current_schema() AND c.relname IN ('p3m_meta', 'p3m_runs')"
        )
        tables = {r[0] for r in cur.fetchall()}
        has_meta, has_runs = "p3m_meta" in tables, "p3m_runs" in tables
        if not has_meta:
            return -1 if has_runs else 0
        cur.execute("SELECT value FROM p3m_meta WHERE key = 'schema_version'")
        row = cur.fetchone()
        return schema_version(row[0], self.display_url) if row else 0

    def _check_version(self, version: int) -> None:
        if version < 0:
            raise StoreCorrupt(
                f"the PostgreSQL database {self.display_url} has p3m_ tables but no p3m_meta "
                "table: it is not a pytest-p3monitor store, and was left as it is. Point "
                "--p3monitor-db at another database."
            )
        if version > SCHEMA_VERSION:
            raise SchemaTooNew(
                f"the results store {self.display_url} has schema version {version}, newer than "
                f"this pytest-p3monitor understands ({SCHEMA_VERSION}); it was left as it is. "
                "Upgrade pytest-p3monitor, or point --p3monitor-db at another database."
            )

    def _prepare(self, create: bool) -> None:
        with self._errors(), self.conn.cursor() as cur:
            version = self._version(cur)
        self._check_version(version)
        if version == SCHEMA_VERSION:
            return
        if not create:
            if version == 0:
                raise StoreUnavailable(
                    f"no results store in {self.display_url}: run `pytest --p3monitor "
                    "--p3monitor-db URL` first, or point --db / P3MONITOR_DB at another database"
                )
            raise StoreUnavailable(
                f"the results store {self.display_url} needs migrating from schema {version}: "
                "run `pytest --p3monitor` once to upgrade it"
            )
        with self._errors(), self.conn.transaction(), self.conn.cursor() as cur:
            # One session migrates; the others wait here, then find the work done.
            cur.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
            version = self._version(cur)
            self._check_version(version)
            for step, stmts in enumerate(statements("postgresql", version), start=version + 1):
                for stmt in stmts:
                    cur.execute(stmt)
                cur.execute(
                    "INSERT INTO p3m_meta (key, value) VALUES ('schema_version', %s)"
                    " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                    (str(step),),
                )

    @contextmanager
    def write_transaction(self) -> Iterator[Any]:
        with self._errors(), self.conn.transaction(), self.conn.cursor() as cur:
            yield cur

    # -- writing ---------------------------------------------------------------------------
    def _retrying(self, step: Callable[[], T]) -> T:
        """Run one write transaction, again after a deadlock, a serialization failure or a
        row another session removed meanwhile, and after a reconnect when the server went
        away (restart, failover). Every step is safe to repeat."""
        deadline = time.monotonic() + RECONNECT_WINDOW_S
        for attempt in range(1, WRITE_ATTEMPTS + 1):
            try:
                if self._lost():
                    self._reconnect(deadline)
                try:
                    return step()
                except psycopg.Error:
                    # a rolled-back transaction takes the temporary table it made with it
                    self._load_table_ready = False
                    raise
            except _RETRYABLE as exc:
                if attempt == WRITE_ATTEMPTS:
                    raise self._classify(exc) from None
                time.sleep(random.uniform(0.05, 0.2) * attempt)
            except psycopg.Error as exc:
                if not self._lost() or attempt == WRITE_ATTEMPTS or time.monotonic() > deadline:
                    raise self._classify(exc) from None
        raise StoreUnavailable(f"the PostgreSQL results store {self.display_url} kept failing")

    def save_run(self, run: RunInfo, tests: Sequence[TestRecord], metrics: dict[str, Any]) -> None:
        by_nodeid = {t.nodeid: t for t in tests}  # one row per node id, whatever came in
        ordered = [by_nodeid[n] for n in sorted(by_nodeid)]
        self._retrying(lambda: self._save_once(run, ordered, metrics))

    def _save_once(
        self, run: RunInfo, tests: Sequence[TestRecord], metrics: dict[str, Any]
    ) -> None:
        params = run_params(run, tests, _dumps(metrics))
        with self.conn.transaction(), self.conn.cursor() as cur:
            cur.execute(_RUN_INSERT, params)
            row = cur.fetchone()
            if row is None:
                return  # already stored: saving is idempotent per run id
            if not tests:
                return
            if not self._load_table_ready:
                cur.execute(_LOAD_TABLE)
                self._load_table_ready = True
            with cur.copy(_LOAD_COPY) as copy:
                for t in tests:
                    copy.write_row((_text(t.nodeid), _text(t.file), t.line, *result_values(t)))
            cur.execute(_TESTS_INSERT)
            cur.execute(_RESULTS_INSERT, (row[0],))

    def prune(self, older_than: float) -> int:
        return self._retrying(lambda: self._prune_once(older_than))

    def _prune_once(self, older_than: float) -> int:
        with self.conn.transaction(), self.conn.cursor() as cur:
            cur.execute(
                "DELETE FROM p3m_results WHERE run IN"
                " (SELECT seq FROM p3m_runs WHERE started_at < %s)",
                (older_than,),
            )
            cur.execute("DELETE FROM p3m_runs WHERE started_at < %s", (older_than,))
            deleted: int = cur.rowcount
            if deleted:
                cur.execute(
                    "DELETE FROM p3m_tests WHERE NOT EXISTS"
                    " (SELECT 1 FROM p3m_results r WHERE r.test = p3m_tests.id)"
                )
            return deleted

    # -- reading ---------------------------------------------------------------------------
    def trend_runs(
        self, limit: int = 2000, branch: str | None = None, since: float | None = None
    ) -> list[RunRow]:
        with self._errors(), self.conn.cursor() as cur:
            try:
                cur.execute(*self.runs_query(_TREND_COLUMNS, limit, branch, since))
            except psycopg.DataError:
                # A run's metrics PostgreSQL does not read as JSON (Python's NaN, say):
                # every run's metrics are parsed here instead.
                return Store.trend_runs(self, limit, branch, since)
            return [
                self._run_row(r, peak_metrics(*process_peaks(r[AFTER_RUN_FIELDS])))
                for r in cur.fetchall()
            ]

    @contextmanager
    def _reader(self) -> Iterator[psycopg.Connection[Any]]:
        """A connection of its own for one stream, in one read-only transaction (one
        snapshot). A stream its reader abandons half-way then never holds a transaction
        open on the connection that saves runs."""
        conn = self._connect()
        try:
            with conn.transaction():
                conn.execute("SET TRANSACTION READ ONLY")
                try:
                    yield conn
                finally:
                    for cur in [c for c in self._streams if c.connection is conn]:
                        self._streams.remove(cur)
                        with suppress(psycopg.Error):
                            cur.close()
        finally:
            conn.close()

    def _stream_cursor(self) -> Any:
        # A server-side cursor: rows come in batches, never the whole result at once.
        conn = self._stream_conn if self._stream_conn is not None else self.conn
        cur = conn.cursor(name=f"p3m_stream_{next(self._cursor_ids)}")
        self._streams.append(cur)
        return cur

    def histories(
        self,
        window: int = 100,
        branch: str | None = None,
        nodeids: Sequence[str] | None = None,
    ) -> Iterator[tuple[str, list[HistoryRow]]]:
        with self._errors(), self._reader() as conn:
            self._stream_conn = conn  # for the cursor SQLStore.histories asks for
            try:
                stream = super().histories(window, branch, nodeids)
                first = next(stream, None)  # the stream's cursor is made by now
            finally:
                self._stream_conn = None
            if first is not None:
                yield first
                yield from stream

    def failing_histories(
        self, window: int = 100, branch: str | None = None
    ) -> Iterator[tuple[str, list[HistoryRow]]]:
        # The tests that failed or reran in the window are picked first (a small set), then
        # only their rows are read, through the (test, run) primary key.
        window = min(window, MAX_WINDOW)
        with self._errors(), self._reader() as conn:
            cur = conn.cursor()
            cutoff = self.window_start(cur, window, branch)
            params: list[Any] = [] if branch is None else [branch]
            # p3m_results_failing (a partial index) holds exactly the results to pick from.
            pick = (
                "SELECT DISTINCT f.test FROM p3m_results f WHERE f.run >= %s"
                " AND (f.outcome IN ('failed', 'error') OR f.reruns > 0)"
            )
            if branch is not None:
                pick += " AND f.run IN (SELECT seq FROM p3m_runs WHERE branch = %s)"
            cur.execute(pick, (cutoff, *params))
            picked = [r[0] for r in cur.fetchall()]
            if not picked:
                return
            sql = NODE_HISTORY_SELECT + " WHERE r.test = ANY(%s) AND r.run >= %s"
            if branch is not None:
                sql += " AND ru.branch = %s"
            sql += " ORDER BY r.test, r.run"
            args: list[Any] = [sorted(picked), cutoff, *params]
            stream = conn.cursor(name=f"p3m_stream_{next(self._cursor_ids)}")
            self._streams.append(stream)
            stream.execute(sql, args)
            yield from group_histories(batched_rows(stream))

    def close(self) -> None:
        self.conn.close()
