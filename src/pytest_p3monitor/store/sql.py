"""The SQL shared by every backend: writing a run, reading history and runs, pruning.

A backend subclasses :class:`SQLStore` and supplies a DB-API connection, its parameter
style, and how to run a block in one write transaction. Queries here are written with
``?`` placeholders and rewritten once for backends that use ``%s``.
"""

from __future__ import annotations

import abc
import json
from collections import Counter
from collections.abc import Collection, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from typing import Any

from ..records import CIInfo, HistoryRow, RunInfo, RunRow, TestRecord, execution_time_s
from .base import Store, StoreError
from .schema import FIGURE_COLUMNS

#: The columns of a run before its metrics, in the order :meth:`SQLStore._run_row` reads.
RUN_FIELDS = (
    "seq, run_id, started_at, finished_at, commit_sha, branch, ci_provider, ci_run_id, ci_job,"
    " ci_url, hostname, python, pytest, workers, exit_status, tests, passed, failed, errors,"
    " skipped, xfailed, xpassed, reruns, test_execution_time_s"
)
#: Where the values after RUN_FIELDS start in a row (the metrics, or what stands for them).
AFTER_RUN_FIELDS = RUN_FIELDS.count(",") + 1
_RUN_COLUMNS = RUN_FIELDS + ", metrics"

#: How many results of one test a history window may hold at most (protects memory).
MAX_WINDOW = 10_000
#: How many ids one ``IN (...)`` list of a history query holds at most.
_IN_CHUNK = 500

#: The fields of a :class:`HistoryRow`, in order, and where they come from.
_HISTORY_FIELDS = (
    "r.run, ru.run_id, ru.started_at, ru.commit_sha, ru.branch, r.outcome, r.reruns,"
    " r.setup_s + r.call_s + r.teardown_s, r.message"
    " FROM p3m_results r JOIN p3m_runs ru ON ru.seq = r.run"
)
#: ``(nodeid, *HistoryRow)`` rows, as :func:`group_histories` reads them; a backend's
#: history query adds its WHERE and ORDER BY.
NODE_HISTORY_SELECT = "SELECT t.nodeid, " + _HISTORY_FIELDS + " JOIN p3m_tests t ON t.id = r.test"


def _run_of(row: HistoryRow) -> int:
    return row.run_seq


def run_counts(tests: Sequence[TestRecord]) -> dict[str, int]:
    return outcome_counts(Counter([t.outcome for t in tests]), sum([t.reruns for t in tests]))


def outcome_counts(outcomes: Counter[str], reruns: int) -> dict[str, int]:
    """The counts of a ``p3m_runs`` row, from how many results had each outcome."""
    return {
        "tests": outcomes.total(),
        "passed": outcomes["passed"],
        "failed": outcomes["failed"],
        "errors": outcomes["error"],
        "skipped": outcomes["skipped"],
        "xfailed": outcomes["xfailed"],
        "xpassed": outcomes["xpassed"],
        "reruns": reruns,
    }


def clean_text(value: str | None) -> str | None:
    """A string every backend accepts: no NUL characters, no lone surrogates (which a
    parametrize id, a file name that is not UTF-8 or a failure message can carry).

    Node ids are stored cleaned, so every lookup by node id (a query, or a match against
    what the store returns) cleans it the same way: :func:`stored_nodeid`.
    """
    if value is None or (value.isascii() and "\x00" not in value):
        return value
    if "\x00" in value:
        value = value.replace("\x00", "\ufffd")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        value = value.encode("utf-8", "replace").decode("utf-8")
    return value


def stored_nodeid(nodeid: str) -> str:
    """``nodeid`` as the store holds it (:func:`clean_text`): what to look it up by."""
    if nodeid.isascii() and "\x00" not in nodeid:
        return nodeid
    return clean_text(nodeid) or nodeid


def batched_rows(cur: Any, size: int = 5000) -> Iterator[Sequence[Any]]:
    """Every row of an executed cursor, fetched ``size`` at a time."""
    while batch := cur.fetchmany(size):
        yield from batch


def group_histories(rows: Iterable[Sequence[Any]]) -> Iterator[tuple[str, list[HistoryRow]]]:
    """Rows of ``(nodeid, *HistoryRow fields)`` ordered by test, as ``(nodeid, rows)`` pairs."""
    current: str | None = None
    found: list[HistoryRow] = []
    for r in rows:
        if r[0] != current:
            if current is not None:
                yield current, found
            current, found = r[0], []
        found.append(HistoryRow(*r[1:]))
    if current is not None:
        yield current, found


def run_params(run: RunInfo, tests: Sequence[TestRecord], metrics_json: str) -> tuple[Any, ...]:
    """The values of a ``p3m_runs`` row, in the column order of every backend's insert."""
    return run_row(run, run_counts(tests), execution_time_s(tests), metrics_json)


def run_row(
    run: RunInfo, counts: dict[str, int], execution_s: float, metrics_json: str
) -> tuple[Any, ...]:
    """:func:`run_params` from the run's counts (:func:`run_counts`) and test execution time."""
    return (
        clean_text(run.run_id),
        run.started_at,
        run.finished_at,
        clean_text(run.commit),
        clean_text(run.branch),
        clean_text(run.ci.provider),
        clean_text(run.ci.run_id),
        clean_text(run.ci.job),
        clean_text(run.ci.url),
        clean_text(run.hostname),
        clean_text(run.python),
        clean_text(run.pytest),
        run.workers,
        run.exit_status,
        counts["tests"],
        counts["passed"],
        counts["failed"],
        counts["errors"],
        counts["skipped"],
        counts["xfailed"],
        counts["xpassed"],
        counts["reruns"],
        execution_s,
        clean_text(metrics_json),
    )


#: One encoder for every row (json.dumps with options builds a new one per call).
compact_json = json.JSONEncoder(separators=(",", ":"), default=str).encode


def _json_or_none(value: dict[str, float]) -> str | None:
    return compact_json(value) if value else None


#: The columns of a result after its test and run, in the order of :func:`result_values`.
RESULT_COLUMNS = (
    "outcome, setup_s, call_s, teardown_s, start_at, stop_at, reruns, worker, message, figures, "
    + ", ".join(FIGURE_COLUMNS)
)
_FIGURE_SET = frozenset(FIGURE_COLUMNS)
_NUMBER = frozenset({int, float})  # exact types: a bool figure is kept in the JSON
_NUMBER_OR_NONE = frozenset({int, float, type(None)})


def result_values(t: TestRecord) -> tuple[Any, ...]:
    """A result's columns after its test and run (:data:`RESULT_COLUMNS`), for every backend.

    Called once per test when a run is saved, so kept lean (C-level map, no inner frames).
    """
    figures = t.figures
    typed = tuple(map(figures.get, FIGURE_COLUMNS))
    if figures.keys() <= _FIGURE_SET and set(map(type, typed)) <= _NUMBER_OR_NONE:
        other = None  # the usual case: only the meter's figures, each in its column
    else:
        typed = tuple(v if type(v) in _NUMBER_OR_NONE else None for v in typed)
        other = _json_or_none(
            {k: v for k, v in figures.items() if k not in _FIGURE_SET or type(v) not in _NUMBER}
        )
    worker, message = t.worker, t.message
    return (
        t.outcome,
        t.setup_s,
        t.call_s,
        t.teardown_s,
        t.start,
        t.stop,
        t.reruns,
        worker if worker is None else clean_text(worker),
        message if message is None else clean_text(message),
        other,
        *typed,
    )


def stored_metrics(text: str | None) -> dict[str, Any]:
    """A run's metrics from its stored JSON (``{}`` when missing or unreadable)."""
    try:
        metrics: dict[str, Any] = json.loads(text) if text else {}
    except ValueError:
        metrics = {}
    return metrics


def stored_figures(other: str | None, columns: Sequence[Any]) -> dict[str, Any]:
    """A result's figures from its ``figures`` JSON and its figure columns (read back)."""
    try:
        figures = json.loads(other) if other else {}
    except ValueError:
        figures = {}
    if not isinstance(figures, dict):
        figures = {}
    for name, value in zip(FIGURE_COLUMNS, columns, strict=True):
        if value is not None:
            figures[name] = value
    return figures


class SQLStore(Store):
    """Store logic over a DB-API 2 connection (``self.conn``).

    Every read goes through :meth:`_errors`, so a driver error (a damaged page, a lost
    server) reaches the caller as the :class:`StoreError` the backend classifies it as,
    as writes do: the session and the command report it like any unusable store.
    """

    conn: Any
    paramstyle: str = "qmark"
    #: the base class of the driver's errors (``sqlite3.Error``, ``psycopg.Error``)
    driver_error: type[Exception] = Exception

    @abc.abstractmethod
    def _classify(self, exc: Any) -> StoreError:
        """The user-facing :class:`StoreError` for a driver error."""

    @contextmanager
    def _errors(self) -> Iterator[None]:
        """Driver errors raised inside become :class:`StoreError` (:meth:`_classify`)."""
        try:
            yield
        except StoreError:
            raise
        except self.driver_error as exc:
            raise self._classify(exc) from None

    def q(self, sql: str) -> str:
        """Rewrite a ``?``-placeholder query for this backend."""
        return sql if self.paramstyle == "qmark" else sql.replace("?", "%s")

    def _stream_cursor(self) -> Any:
        """A cursor for a large result read in batches (a backend may stream it)."""
        return self.conn.cursor()

    @abc.abstractmethod
    def write_transaction(self) -> AbstractContextManager[Any]:
        """A context manager giving a cursor inside one write transaction."""

    def prune(self, older_than: float) -> int:
        with self.write_transaction() as cur:
            cur.execute(self.q("SELECT seq FROM p3m_runs WHERE started_at < ?"), (older_than,))
            seqs = [row[0] for row in cur.fetchall()]
            if not seqs:
                return 0
            cur.execute(
                self.q(
                    "DELETE FROM p3m_results WHERE run IN"
                    " (SELECT seq FROM p3m_runs WHERE started_at < ?)"
                ),
                (older_than,),
            )
            cur.execute(self.q("DELETE FROM p3m_runs WHERE started_at < ?"), (older_than,))
            # One pass over the results (they have no index by test in SQLite).
            cur.execute("DELETE FROM p3m_tests WHERE id NOT IN (SELECT test FROM p3m_results)")
            cur.execute("DELETE FROM p3m_suites")  # it may name tests just deleted
            return len(seqs)

    # -- reading ---------------------------------------------------------------------------
    def _run_row(self, row: Sequence[Any], metrics: dict[str, Any]) -> RunRow:
        """A run from its :data:`RUN_FIELDS` (the first values of ``row``) and metrics."""
        (seq, run_id, started, finished, commit, branch, provider, ci_run, job, url, host) = row[
            :11
        ]
        (python, pytest_v, workers, exit_status) = row[11:15]
        counts = row[15:23]
        info = RunInfo(
            run_id=run_id,
            started_at=started,
            commit=commit,
            branch=branch,
            ci=CIInfo(provider, ci_run, job, url),
            hostname=host or "",
            python=python or "",
            pytest=pytest_v or "",
            workers=workers,
            finished_at=finished,
            exit_status=exit_status,
        )
        tests, passed, failed, errors, skipped, xfailed, xpassed, reruns = counts
        return RunRow(
            run_seq=seq,
            run=info,
            tests=tests,
            passed=passed,
            failed=failed,
            errors=errors,
            skipped=skipped,
            xfailed=xfailed,
            xpassed=xpassed,
            reruns=reruns,
            test_execution_time_s=row[23],
            metrics=metrics,
        )

    def _full_run_row(self, row: Sequence[Any]) -> RunRow:
        """A run from its :data:`_RUN_COLUMNS`, with its whole metrics."""
        return self._run_row(row, stored_metrics(row[AFTER_RUN_FIELDS]))

    def runs_query(
        self, columns: str, limit: int, branch: str | None, since: float | None
    ) -> tuple[str, list[Any]]:
        """The query of :meth:`recent_runs` selecting ``columns``, and its parameters."""
        where: list[str] = []
        params: list[Any] = []
        if branch is not None:
            where.append("branch = ?")
            params.append(branch)
        if since is not None:
            where.append("started_at >= ?")
            params.append(since)
        sql = f"SELECT {columns} FROM p3m_runs"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY seq DESC LIMIT ?"
        params.append(limit)
        return self.q(sql), params

    def recent_runs(
        self, limit: int = 20, branch: str | None = None, since: float | None = None
    ) -> list[RunRow]:
        with self._errors():
            cur = self.conn.cursor()
            cur.execute(*self.runs_query(_RUN_COLUMNS, limit, branch, since))
            return [self._full_run_row(r) for r in cur.fetchall()]

    def find_runs(self, run_id: str, limit: int = 5) -> list[RunRow]:
        with self._errors():
            cur = self.conn.cursor()
            cur.execute(self.q(f"SELECT {_RUN_COLUMNS} FROM p3m_runs WHERE run_id = ?"), (run_id,))
            exact = cur.fetchall()
            if exact or not run_id:
                return [self._full_run_row(r) for r in exact]
            # substr, not LIKE: SQLite's LIKE ignores case, and '%' or '_' in the text would match
            # anything. A prefix matches through a scan of the ids, which a user's look-up affords.
            cur.execute(
                self.q(
                    f"SELECT {_RUN_COLUMNS} FROM p3m_runs"
                    " WHERE substr(run_id, 1, length(CAST(? AS TEXT))) = CAST(? AS TEXT)"
                    " ORDER BY seq DESC LIMIT ?"
                ),
                (run_id, run_id, limit),
            )
            return [self._full_run_row(r) for r in cur.fetchall()]

    def runs_before(self, run_seq: int, limit: int = 20, branch: str | None = None) -> list[RunRow]:
        with self._errors():
            sql = f"SELECT {_RUN_COLUMNS} FROM p3m_runs WHERE seq < ?"
            params: list[Any] = [run_seq]
            if branch is not None:
                sql += " AND branch = ?"
                params.append(branch)
            cur = self.conn.cursor()
            cur.execute(self.q(sql + " ORDER BY seq DESC LIMIT ?"), (*params, limit))
            return [self._full_run_row(r) for r in cur.fetchall()]

    # -- copying a whole store (``p3monitor migrate-store``) ----------------------------------
    def run_ids(self) -> set[str]:
        """The ids of every stored run."""
        with self._errors():
            cur = self.conn.cursor()
            cur.execute("SELECT run_id FROM p3m_runs")
            return {r[0] for r in cur.fetchall()}

    def runs_after(self, after_seq: int = 0, limit: int = 100) -> list[RunRow]:
        """Up to ``limit`` runs with a sequence number above ``after_seq``, oldest first."""
        with self._errors():
            cur = self.conn.cursor()
            cur.execute(
                self.q(f"SELECT {_RUN_COLUMNS} FROM p3m_runs WHERE seq > ? ORDER BY seq LIMIT ?"),
                (after_seq, limit),
            )
            return [self._full_run_row(r) for r in cur.fetchall()]

    def run_tests(self, run_seq: int) -> list[TestRecord]:
        """Every test result of one run, as the records it was saved from."""
        with self._errors():
            cur = self.conn.cursor()
            cur.execute(
                self.q(
                    "SELECT t.nodeid, r.outcome, t.file, t.line, r.setup_s, r.call_s,"
                    " r.teardown_s, r.start_at, r.stop_at, r.reruns, r.worker, r.message,"
                    " r.figures, "
                    + ", ".join(f"r.{name}" for name in FIGURE_COLUMNS)
                    + " FROM p3m_results r JOIN p3m_tests t ON t.id = r.test WHERE r.run = ?"
                    " ORDER BY t.nodeid"
                ),
                (run_seq,),
            )
            rows = cur.fetchall()
        records = []
        for row in rows:
            figures = stored_figures(row[12], row[13:])
            (nodeid, outcome, file, line, setup_s, call_s, teardown_s) = row[:7]
            (start, stop, reruns, worker, message) = row[7:12]
            records.append(
                TestRecord(
                    nodeid=nodeid,
                    outcome=outcome,
                    file=file,
                    line=line,
                    setup_s=setup_s,
                    call_s=call_s,
                    teardown_s=teardown_s,
                    start=start,
                    stop=stop,
                    reruns=reruns,
                    worker=worker,
                    message=message,
                    figures=figures,
                )
            )
        return records

    def test_history(
        self, nodeid: str, limit: int = 100, branch: str | None = None
    ) -> list[HistoryRow]:
        with self._errors():
            return dict(self._histories_of([nodeid], limit, branch)).get(nodeid, [])

    def _recent_results(
        self, tests: Collection[int], limit: int, branch: str | None = None
    ) -> dict[int, list[HistoryRow]]:
        """The last ``limit`` results of each test of ``tests`` (their ids), oldest first.

        The results are kept in run order (their primary key is (run, test)) and have no
        index by test: a per-test index gets an entry in every one of its leaves from each
        run saved, so saving a run would cost more the longer the history. Instead the runs
        are read newest first, a page at a time, and each page's results of the tests still
        short of ``limit`` are looked up by the primary key: a seek per run and test.
        """
        limit = min(limit, MAX_WINDOW)
        found: dict[int, list[HistoryRow]] = {test: [] for test in tests}
        pending = sorted(tests)
        cur = self.conn.cursor()
        before: int | None = None
        page = max(limit, 32)
        while pending and limit > 0:
            sql = "SELECT seq FROM p3m_runs WHERE 1 = 1"
            params: list[Any] = []
            if branch is not None:
                sql += " AND branch = ?"
                params.append(branch)
            if before is not None:
                sql += " AND seq < ?"
                params.append(before)
            cur.execute(self.q(sql + " ORDER BY seq DESC LIMIT ?"), (*params, page))
            runs = [int(r[0]) for r in cur.fetchall()]
            if not runs:
                break
            in_runs = ", ".join(map(str, runs))
            for i in range(0, len(pending), _IN_CHUNK):
                in_tests = ", ".join(map(str, pending[i : i + _IN_CHUNK]))
                cur.execute(
                    f"SELECT r.test, {_HISTORY_FIELDS}"
                    f" WHERE r.run IN ({in_runs}) AND r.test IN ({in_tests})"
                )
                for test, *fields in cur.fetchall():
                    found[test].append(HistoryRow(*fields))
            pending = [t for t in pending if len(found[t]) < limit]
            before = runs[-1]
            page = min(2 * page, 4096)  # a test missing from many runs: fewer, longer pages
        for rows in found.values():
            rows.sort(key=_run_of)
            del rows[: max(0, len(rows) - limit)]
        return found

    def _histories_of(
        self, nodeids: Sequence[str], limit: int, branch: str | None
    ) -> Iterator[tuple[str, list[HistoryRow]]]:
        """The last ``limit`` results of each of ``nodeids``, oldest first, the tests in the
        order given; a node id without a result is left out. Read together."""
        ids: dict[int, str] = {}
        cur = self.conn.cursor()
        unique = list(dict.fromkeys(nodeids))
        # looked up as stored (cleaned), given back under the node ids asked for
        stored = list(dict.fromkeys(map(stored_nodeid, unique)))
        for i in range(0, len(stored), _IN_CHUNK):
            chunk = stored[i : i + _IN_CHUNK]
            marks = ", ".join(["?"] * len(chunk))
            sql = f"SELECT id, nodeid FROM p3m_tests WHERE nodeid IN ({marks})"
            cur.execute(self.q(sql), chunk)
            ids.update((int(test), nodeid) for test, nodeid in cur.fetchall())
        found = self._recent_results(ids, limit, branch)
        by_nodeid = {nodeid: found[test] for test, nodeid in ids.items()}
        for nodeid in unique:
            rows = by_nodeid.get(stored_nodeid(nodeid))
            if rows:
                yield nodeid, rows

    def window_start(self, cur: Any, window: int, branch: str | None) -> int:
        """The sequence number of the oldest of the last ``window`` runs (of ``branch``)."""
        sql = "SELECT seq FROM p3m_runs"
        params: list[Any] = []
        if branch is not None:
            sql += " WHERE branch = ?"
            params.append(branch)
        cur.execute(self.q(sql + " ORDER BY seq DESC LIMIT 1 OFFSET ?"), (*params, window - 1))
        first = cur.fetchone()
        return int(first[0]) if first else 0

    def histories(
        self,
        window: int = 100,
        branch: str | None = None,
        nodeids: Sequence[str] | None = None,
    ) -> Iterator[tuple[str, list[HistoryRow]]]:
        with self._errors():
            if nodeids is not None:
                yield from self._histories_of(nodeids, window, branch)
                return
            window = min(window, MAX_WINDOW)
            # The window is the last `window` runs (of the branch): every test seen in them,
            # with its results in those runs. One ordered scan, one test at a time.
            cutoff = self.window_start(self.conn.cursor(), window, branch)
            sql = NODE_HISTORY_SELECT + " WHERE r.run >= ?"
            params: list[Any] = [cutoff]
            if branch is not None:
                sql += " AND ru.branch = ?"
                params.append(branch)
            sql += " ORDER BY r.test, r.run"
            cur = self._stream_cursor()
            cur.execute(self.q(sql), params)
            yield from group_histories(batched_rows(cur))
