"""How the SQLite store writes a run: the last and largest write of a session.

Every figure below is for a 5000-test run into a store that already knows the tests
(callgrind instructions, CPython 3.11, SQLite 3.40). Writing the results is mostly
SQLite's own work: two b-trees per result (the table and its (test, run) index) and a
bind per value. What is left to Python is kept to about 2,500 instructions a result:

- the results go 100 to an INSERT (:func:`_results_insert`), the values of each chunk in
  one flat list built by one loop over the records (:func:`_usual_values`); a column no
  result of the chunk has is left out of the statement instead of bound as None;
- a test is named by its id, which the last suites saved keep by a digest of their node
  ids (``p3m_suites``): looking 5000 node ids up costs about 20 M, the digest 1 M.
"""

from __future__ import annotations

import functools
import hashlib
import json
import sqlite3
import sys
from array import array
from collections import Counter
from collections.abc import Sequence
from typing import Any, cast

from ..records import RunInfo, TestRecord, execution_time_s
from .schema import FIGURE_COLUMNS
from .sql import (
    RESULT_COLUMNS,
    clean_text,
    compact_json,
    outcome_counts,
    result_values,
    run_row,
)

#: How many results one INSERT writes. More rows per statement save little once the
#: statement's own cost is spread, and its compile costs about 27,000 instructions a row
#: (once per connection and shape).
CHUNK = 100
#: How many suites ``p3m_suites`` keeps (8 bytes a test each).
SUITES_KEPT = 8

_RUN_INSERT = (
    "INSERT INTO p3m_runs (run_id, started_at, finished_at, commit_sha, branch, ci_provider,"
    " ci_run_id, ci_job, ci_url, hostname, python, pytest, workers, exit_status, tests, passed,"
    " failed, errors, skipped, xfailed, xpassed, reruns, test_execution_time_s, metrics)"
    " VALUES (" + ", ".join(["?"] * 24) + ")"
)
_TESTS_INSERT = (
    "INSERT INTO p3m_tests (nodeid, file, line) VALUES (?, ?, ?) ON CONFLICT (nodeid) DO NOTHING"
)
# The ids of a list of node ids in its order (null for one not stored), and how many are
# not stored: SQLite walks the list (the outer loop of the LEFT JOIN) in order.
_TEST_IDS = (
    "SELECT json_group_array(t.id), count(*) - count(t.id)"
    " FROM json_each(?) j LEFT JOIN p3m_tests t ON t.nodeid = j.value"
)

#: Every column of a result after its test and run, in the order of :func:`result_values`.
_ALL_COLUMNS = tuple(RESULT_COLUMNS.split(", "))
#: The columns :func:`_usual_values` gives after the test (then the figure columns).
_USUAL_COLUMNS = _ALL_COLUMNS[:9]
_NULLABLE = frozenset(("start_at", "stop_at", "worker", "message", "figures", *FIGURE_COLUMNS))
_NUMBER_OR_NONE = frozenset((int, float, type(None)))
#: The columns :func:`_usual_values` may give as None for every result.
_MAYBE_NULL = frozenset(("start_at", "stop_at", "worker", "message"))
#: What a string needs escaped in JSON.
_JSON_ESCAPED = bytes(range(32)) + b'"\\'


def write_run(cur: Any, run: RunInfo, tests: Sequence[TestRecord], metrics: dict[str, Any]) -> None:
    """Store ``run`` and its results with ``cur``, inside a write transaction."""
    cur.execute("SELECT 1 FROM p3m_runs WHERE run_id = ?", (run.run_id,))
    if cur.fetchone() is not None:
        return  # already stored: saving is idempotent per run id
    chunks = [_Chunk(tests[i : i + CHUNK]) for i in range(0, len(tests), CHUNK)]
    counts, elapsed = _totals(chunks, tests)
    cur.execute(_RUN_INSERT, run_row(run, counts, elapsed, compact_json(metrics)))
    seq = cur.lastrowid
    if not tests:
        return
    ids = _test_ids(cur, tests)
    first = 0
    for chunk in chunks:
        values = chunk.values
        values[0] = seq
        values[1 + len(chunk.once) :: 1 + len(chunk.per_row)] = ids[first : first + chunk.rows]
        cur.execute(_results_insert(chunk.once, chunk.per_row, chunk.rows), values)
        first += chunk.rows


# -- the results ----------------------------------------------------------------------------


@functools.lru_cache(maxsize=32)
def _results_insert(once: tuple[str, ...], per_row: tuple[str, ...], rows: int) -> str:
    """The INSERT of ``rows`` results of one run. Its parameters: the run (``?1``), the
    value of each ``once`` column (the same for every row), then for each result its
    test's id and ``per_row`` columns. The other columns are NULL.

    Many rows per statement: SQLite steps once for them all and keeps its cursors where
    the last row went (a statement per result seeks each b-tree from its root, and halts).
    A column bound once saves a bind a row; one left out saves binding None (an adapter
    lookup in the sqlite3 module, about 1 us a value). Plain ``?`` after the numbered
    ones: SQLite looks those up in a list, which a thousand would make quadratic.
    OR ROLLBACK: a failure ends the transaction anyway, and a statement that may abort
    keeps a journal of its own.
    """
    shared = "".join(f", ?{i}" for i in range(2, 2 + len(once)))
    row = "(?1" + shared + ", ?" * (1 + len(per_row)) + ")"
    names = ", ".join(("run", *once, "test", *per_row))
    return f"INSERT OR ROLLBACK INTO p3m_results ({names}) VALUES " + ", ".join([row] * rows)


class _Chunk:
    """The parameters of one :func:`_results_insert`, for up to :data:`CHUNK` results:
    ``values`` is the run (0 until known), the value of each ``once`` column, then for
    each result its test (its id, once known) and its ``per_row`` columns.

    A column no result of the chunk has is left out (NULL). The outcome and the reruns
    are bound once when every result has the same (the usual chunk: all passed at the
    first try).
    """

    def __init__(self, tests: Sequence[TestRecord]) -> None:
        self.rows = rows = len(tests)
        usual = _usual_values(tests)
        if usual is None:
            values: list[Any] = [0]
            for t in tests:
                values += (0, *result_values(t))
            columns = list(_ALL_COLUMNS)
            maybe_null = _NULLABLE
        else:
            values, usual_columns = usual
            columns = list(usual_columns)
            maybe_null = _MAYBE_NULL  # the meter's figures are all there, or none is
        # Leave out the columns no result has, then bind once those all have the same
        # of: deleting every width-th value is one C-level pass over the list.
        width = 1 + len(columns)
        nones = [None] * rows
        for i in reversed(range(len(columns))):
            if columns[i] in maybe_null and values[2 + i :: width] == nones:
                del values[2 + i :: width]
                del columns[i]
                width -= 1
        if usual is not None:  # result_values cleans the texts of the others
            for i, name in enumerate(columns):
                if name in ("worker", "message"):
                    cleaned = _clean_texts(values[2 + i :: width])
                    if cleaned is not None:
                        values[2 + i :: width] = cleaned
        once: list[str] = []
        for name in ("reruns", "outcome"):  # the later column first
            i = columns.index(name)
            start = 2 + len(once) + i  # the first result's value
            column = values[start::width]
            if _all_same(column):
                del values[start::width]
                values.insert(1, column[0])
                once.insert(0, name)
                del columns[i]
                width -= 1
        self.values = values
        self.once = tuple(once)
        self.per_row = tuple(columns)

    def column(self, name: str) -> list[Any]:
        """The value of ``name`` for each result."""
        if name in self.once:
            return [self.values[1 + self.once.index(name)]] * self.rows
        if name in self.per_row:
            first = 2 + len(self.once) + self.per_row.index(name)
            return self.values[first :: 1 + len(self.per_row)]
        return [None] * self.rows


def _all_same(values: list[Any]) -> bool:
    return values == values[:1] * len(values)


def _totals(chunks: list[_Chunk], tests: Sequence[TestRecord]) -> tuple[dict[str, int], float]:
    """The run's counts and test execution time (:func:`run_params`), from the columns of
    its chunks: a few C-level passes instead of three Python loops over the records."""
    outcomes: Counter[str] = Counter()
    reruns = 0
    starts: list[float] = []
    stops: list[float] = []
    for chunk in chunks:
        if "outcome" in chunk.once:
            outcomes[chunk.values[1]] += chunk.rows
        else:
            outcomes.update(chunk.column("outcome"))
        reruns += sum(chunk.column("reruns"))
        for name, found, pick in (("start_at", starts, min), ("stop_at", stops, max)):
            if name in chunk.per_row:  # else NULL for every result
                times = chunk.column(name)
                try:
                    found.append(pick(times))
                except TypeError:  # some None
                    found.append(pick([t for t in times if t is not None]))
    counts = outcome_counts(outcomes, reruns)
    if starts and stops:
        return counts, max(0.0, max(stops) - min(starts))
    return counts, execution_time_s(tests)  # no start or stop times: the sum of durations


def _usual_values(tests: Sequence[TestRecord]) -> tuple[list[Any], tuple[str, ...]] | None:
    """The run (0), then for each result its test (0) and :data:`_USUAL_COLUMNS`, and its
    figures where every result has the meter's six numbers (or every result has no
    figure): what :func:`result_values` would give, in one loop (a dict lookup per figure
    instead of a call and a tuple per column). None for results with other figures.
    """
    values: list[Any] = [0]
    extend = values.extend
    if not tests[0].figures:  # resources off
        for t in tests:
            if t.figures:
                return None
            extend((0, t.outcome, t.setup_s, t.call_s, t.teardown_s, t.start, t.stop,
                    t.reruns, t.worker, t.message))  # fmt: skip
        return values, _USUAL_COLUMNS
    try:
        for t in tests:
            f = t.figures
            if len(f) != 6:  # the six figure columns
                return None
            extend((0, t.outcome, t.setup_s, t.call_s, t.teardown_s, t.start, t.stop,
                    t.reruns, t.worker, t.message,
                    f["cpu_time_s"], f["rss_peak_bytes"], f["read_bytes"], f["write_bytes"],
                    f["read_chars"], f["write_chars"]))  # fmt: skip
    except KeyError:
        return None  # not all the meter's figures
    # A bool or a text under a figure's name goes in the figures JSON (result_values).
    width = 1 + len(_USUAL_COLUMNS) + len(FIGURE_COLUMNS)
    for start in range(2 + len(_USUAL_COLUMNS), 1 + width):
        column = values[start::width]
        if _all_same(column):
            column = column[:1]  # one value (often 0): one type
        kinds = list(map(type, column))  # of one kind, mostly: compared cheaply
        if (
            kinds != [float] * len(kinds)
            and kinds != [int] * len(kinds)
            and not set(kinds) <= _NUMBER_OR_NONE
        ):
            return None
    return values, _USUAL_COLUMNS + FIGURE_COLUMNS


def _clean_texts(texts: Sequence[str | None]) -> list[str | None] | None:
    """:func:`clean_text` of each text, checked all at once; None if all are clean."""
    joined = "".join(filter(None, texts))
    if joined.isascii() and "\x00" not in joined:
        return None
    return list(map(clean_text, texts))


# -- the tests ------------------------------------------------------------------------------


def _test_ids(cur: Any, tests: Sequence[TestRecord]) -> list[int]:
    """The id of each test's node id, adding those not stored yet."""
    nodeids = [t.nodeid for t in tests]
    digest = _suite_digest(nodeids)
    if digest is not None:
        cur.execute("SELECT ids FROM p3m_suites WHERE digest = ?", (digest,))
        row = cur.fetchone()
        if row is not None and len(row[0]) == 8 * len(nodeids):
            return _unpack_ids(row[0])
    ids = _stored_ids(cur, tests, nodeids)
    if digest is not None:
        cur.execute(
            "INSERT INTO p3m_suites (digest, ids) VALUES (?, ?)"
            " ON CONFLICT (digest) DO UPDATE SET ids = excluded.ids",
            (digest, _pack_ids(ids)),
        )
        cur.execute(
            "DELETE FROM p3m_suites WHERE rowid <= (SELECT max(rowid) FROM p3m_suites) - ?",
            (SUITES_KEPT,),
        )
    return ids


def _stored_ids(cur: Any, tests: Sequence[TestRecord], nodeids: list[str]) -> list[int]:
    """The id of each test's node id (``nodeids``, cleaned here), adding those not stored."""
    cleaned = _clean_texts(nodeids)
    if cleaned is not None:
        nodeids = cast("list[str]", cleaned)
    found, missing = _lookup_ids(cur, nodeids)
    if missing:
        new = [i for i, test_id in enumerate(found) if test_id is None]
        cur.executemany(
            _TESTS_INSERT, [(nodeids[i], clean_text(tests[i].file), tests[i].line) for i in new]
        )
        added, missing = _lookup_ids(cur, [nodeids[i] for i in new])
        if missing:
            raise sqlite3.DatabaseError("node ids were not stored")
        for i, test_id in zip(new, added, strict=True):
            found[i] = test_id
    return cast("list[int]", found)  # every one found


def _suite_digest(nodeids: list[str]) -> bytes | None:
    """A digest of the node ids in their order; None if one holds a NUL (the separator)."""
    if "\x00" in "".join(nodeids):
        return None
    joined = "\x00".join(nodeids).encode("utf-8", "surrogatepass")
    return hashlib.blake2b(joined, digest_size=32).digest()


def _pack_ids(ids: list[int]) -> bytes:
    packed = array("q", ids)
    if sys.byteorder != "little":
        packed.byteswap()
    return packed.tobytes()


def _unpack_ids(data: bytes) -> list[int]:
    packed = array("q")
    packed.frombytes(data)
    if sys.byteorder != "little":
        packed.byteswap()
    return packed.tolist()


def _lookup_ids(cur: Any, nodeids: list[str]) -> tuple[list[int | None], int]:
    """The ids of ``nodeids`` (clean texts), None for those not stored, and how many."""
    cur.execute(_TEST_IDS, (_json_strings(nodeids),))
    text, missing = cur.fetchone()
    ids: list[int | None] = json.loads(text)
    if len(ids) != len(nodeids):
        raise sqlite3.DatabaseError("the lookup of the node ids lost some")
    return ids, missing


def _json_strings(values: list[str]) -> str:
    """The JSON text of a list of strings: without anything to escape, the strings joined
    (a tenth of the cost of json.dumps, which copies each)."""
    text = "".join(values)
    if values and text.isascii():
        data = text.encode()
        if len(data.translate(None, _JSON_ESCAPED)) == len(data):
            return '["' + '","'.join(values) + '"]'
    return json.dumps(values, ensure_ascii=False)
