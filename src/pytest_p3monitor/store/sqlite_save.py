"""How the SQLite store writes a run: the last and largest write of a session.

Figures for a 5000-test session into a store that already holds its tests (callgrind
instructions, CPython 3.11, SQLite 3.40): save_run went from about 300 M to about 100 M.
Two thirds of what is left is SQLite's own work, two b-trees per result (the table and its
(test, run) index) and a bind per value; Python's part is kept to about 5,000
instructions a result:

- results go 100 to an INSERT (:func:`_results_insert`); each chunk's parameters are one
  flat list built by one loop over the records (:func:`_usual_values`), a column no
  result of the chunk has is left out of the statement instead of bound as None, and a
  column every result has the same value of is bound once;
- a test is named by its id, which the last suites saved keep with their node ids
  (``p3m_suites``): looking 5000 node ids up costs about 20 M, finding the suite 2.5 M;
- the run's counts come from the chunks' columns (:func:`_totals`).
"""

from __future__ import annotations

import functools
import json
import operator
import sqlite3
import struct
import sys
from array import array
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
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
#: statement's own cost is spread, and its compile costs about 30,000 instructions a row
#: (once per connection and shape). SQLite before 3.32 takes at most 999 parameters in a
#: statement: 50 results and their at most 19 values each.
CHUNK = 100 if sqlite3.sqlite_version_info >= (3, 32) else 50
#: How many suites ``p3m_suites`` keeps (each: 8 bytes and the node id of each test).
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
#: The types of a chunk's figures of one kind (the others are compared as a set).
_FLOATS = [float] * CHUNK
_INTS = [int] * CHUNK
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
    for name in FIGURE_COLUMNS:
        # A figure the same for every result of each chunk (bytes read: often 0) is bound
        # once a chunk. Decided for the whole run: one statement for every chunk.
        if chunks and all(name in chunk.same for chunk in chunks):
            for chunk in chunks:
                chunk.bind_once(name)
    counts, elapsed = _totals(chunks, tests)
    cur.execute(_RUN_INSERT, run_row(run, counts, elapsed, compact_json(metrics)))
    seq = cur.lastrowid
    if not tests:
        return
    nodeids: list[str] = []
    for chunk in chunks:
        nodeids += chunk.values[chunk.tests_at :: chunk.width]
    ids = _test_ids(cur, tests, nodeids)
    # The chunks of each statement, executed together (executemany loops in C).
    statements: dict[str, list[list[Any]]] = {}
    first = 0
    for chunk in chunks:
        values = chunk.values
        values[0] = seq
        values[chunk.tests_at :: chunk.width] = ids[first : first + chunk.rows]
        insert = _results_insert(chunk.once, chunk.per_row, chunk.nullif, chunk.rows)
        statements.setdefault(insert, []).append(values)
        first += chunk.rows
    for insert, params in statements.items():
        cur.executemany(insert, params)


# -- the results ----------------------------------------------------------------------------


@functools.lru_cache(maxsize=32)
def _results_insert(
    once: tuple[str, ...], per_row: tuple[str, ...], nullif: tuple[str, ...], rows: int
) -> str:
    """The INSERT of ``rows`` results of one run. Its parameters: the run (``?1``), the
    value of each ``once`` column (the same for every row), then for each result its
    test's id and ``per_row`` columns, a 0 standing for NULL in the ``nullif`` ones (texts).
    The other columns are NULL.

    Many rows per statement: SQLite steps once for them all and keeps its cursors where
    the last row went (a statement per result seeks each b-tree from its root, and halts).
    A column bound once saves a bind a row; one left out saves binding None (an adapter
    lookup in the sqlite3 module, about 1 us a value). Plain ``?`` after the numbered
    ones: SQLite looks those up in a list, which a thousand would make quadratic.
    OR ROLLBACK: a failure ends the transaction anyway, and a statement that may abort
    keeps a journal of its own.
    """
    shared = "".join(f", ?{i}" for i in range(2, 2 + len(once)))
    values = "".join(", NULLIF(?, 0)" if name in nullif else ", ?" for name in per_row)
    row = "(?1" + shared + ", ?" + values + ")"
    names = ", ".join(("run", *once, "test", *per_row))
    return f"INSERT OR ROLLBACK INTO p3m_results ({names}) VALUES " + ", ".join([row] * rows)


class _Chunk:
    """The parameters of one :func:`_results_insert`, for up to :data:`CHUNK` results:
    ``values`` is the run (0 until known), the value of each ``once`` column, then for
    each result its test (its node id until its id is known) and its ``per_row`` columns.

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
                values += (t.nodeid, *result_values(t))
            columns = list(_ALL_COLUMNS)
            maybe_null = _NULLABLE
            self.same: frozenset[str] = frozenset()
        else:
            values, usual_columns, self.same = usual
            columns = list(usual_columns)
            maybe_null = _MAYBE_NULL  # each of the meter's figures is there, or none is
        # Leave out the columns no result has: deleting every width-th value is one
        # C-level pass over the list.
        width = 1 + len(columns)
        nones = [None] * rows
        for i in reversed(range(len(columns))):
            if columns[i] in maybe_null and values[2 + i :: width] == nones:
                del values[2 + i :: width]
                del columns[i]
                width -= 1
        nullif = []
        for i, name in enumerate(columns):
            if name in ("worker", "message"):
                texts = values[2 + i :: width]
                if usual is not None:  # result_values cleans the texts of the others
                    texts = _clean_texts(texts) or texts
                if None in texts:  # in some results only: a 0 stands for their NULL
                    texts = [0 if text is None else text for text in texts]
                    nullif.append(name)
                values[2 + i :: width] = texts
        self.values = values
        self.nullif = tuple(nullif)
        self.once: tuple[str, ...] = ()
        self.per_row = tuple(columns)
        self.tests_at = 1  # where the first result's test is
        self.width = width  # how many values a result has
        for name in ("outcome", "reruns"):
            start = self.tests_at + 1 + self.per_row.index(name)
            if _all_same(values[start :: self.width]):
                self.bind_once(name)

    def bind_once(self, name: str) -> None:
        """Bind the per-row column ``name``, the same for every result, once."""
        i = self.per_row.index(name)
        start = self.tests_at + 1 + i
        value = self.values[start]
        del self.values[start :: self.width]
        self.values.insert(self.tests_at, value)
        self.once += (name,)
        self.per_row = self.per_row[:i] + self.per_row[i + 1 :]
        self.tests_at += 1
        self.width -= 1

    def column(self, name: str) -> list[Any]:
        """The value of ``name`` for each result."""
        if name in self.once:
            return [self.values[1 + self.once.index(name)]] * self.rows
        if name in self.per_row:
            return self.values[self.tests_at + 1 + self.per_row.index(name) :: self.width]
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
        if "reruns" in chunk.once:
            reruns += chunk.values[chunk.once.index("reruns") + 1] * chunk.rows
        else:
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


def _usual_values(
    tests: Sequence[TestRecord],
) -> tuple[list[Any], tuple[str, ...], frozenset[str]] | None:
    """The run (0), then for each result its node id and :data:`_USUAL_COLUMNS`, and its
    figures where every result has the same figures of the meter (its four, or six with
    ``p3monitor_io_chars``; or every result has no figure): what :func:`result_values`
    would give, in one loop (a C-level pick of the figures instead of a call and a tuple
    per column); the columns, and the figures every result has the same value of. None
    for results with other figures.
    """
    values: list[Any] = [0]
    extend = values.extend
    first = tests[0].figures  # none at all with p3monitor_test_resources = false
    names = tuple(name for name in FIGURE_COLUMNS if name in first)
    if len(names) != len(first):  # a figure of another kind: it goes in the JSON
        return None
    count = len(names)
    pick = _picker(names)
    try:
        for t in tests:
            if len(f := t.figures) != count:
                return None
            extend((t.nodeid, t.outcome, t.setup_s, t.call_s, t.teardown_s, t.start, t.stop,
                    t.reruns, t.worker, t.message))  # fmt: skip
            extend(pick(f))
    except KeyError:
        return None  # not the same figures
    # A bool or a text under a figure's name goes in the figures JSON (result_values).
    width = 1 + len(_USUAL_COLUMNS) + count
    same = []
    for name, start in zip(names, range(2 + len(_USUAL_COLUMNS), 1 + width), strict=True):
        column = values[start::width]
        if _all_same(column):
            column = column[:1]  # one value (often 0): one type
            same.append(name)
        kinds = list(map(type, column))  # all of one kind, mostly: compared cheaply
        if kinds != _FLOATS and kinds != _INTS and not set(kinds) <= _NUMBER_OR_NONE:
            return None
    return values, _USUAL_COLUMNS + names, frozenset(same)


def _picker(names: tuple[str, ...]) -> Callable[[Mapping[str, Any]], tuple[Any, ...]]:
    """A function giving the values of ``names`` in a mapping, as a tuple (KeyError if
    one is missing); for no names, the empty tuple."""
    if not names:
        return lambda figures: ()
    if len(names) == 1:
        (name,) = names
        return lambda figures: (figures[name],)
    return operator.itemgetter(*names)


def _clean_texts(texts: Sequence[str | None]) -> list[str | None] | None:
    """:func:`clean_text` of each text, checked all at once; None if all are clean."""
    joined = "".join(filter(None, texts))
    if joined.isascii() and "\x00" not in joined:
        return None
    return list(map(clean_text, texts))


# -- the tests ------------------------------------------------------------------------------


def _test_ids(cur: Any, tests: Sequence[TestRecord], nodeids: list[str]) -> list[int]:
    """The id of each test's node id (``nodeids``), adding those not stored yet."""
    suite = _suite(nodeids)
    if suite is not None:
        key, text = suite
        cur.execute("SELECT ids FROM p3m_suites WHERE digest = ?", (key,))
        row = cur.fetchone()
        size = 8 * len(nodeids)
        if row is not None and row[0][size:] == text:
            return _unpack_ids(row[0][:size])
    ids = _stored_ids(cur, tests, nodeids)
    if suite is not None:
        cur.execute(
            "INSERT INTO p3m_suites (digest, ids) VALUES (?, ?)"
            " ON CONFLICT (digest) DO UPDATE SET ids = excluded.ids",
            (key, _pack_ids(ids) + text),
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


def _suite(nodeids: list[str]) -> tuple[bytes, bytes] | None:
    """The key of a suite in ``p3m_suites`` (the length of its node ids and their count:
    a suite of the same sizes replaces it) and its node ids as stored with its test ids,
    NUL-separated, to check a hit against. None if a node id holds a NUL.
    """
    if "\x00" in "".join(nodeids):
        return None
    text = "\x00".join(nodeids).encode("utf-8", "surrogatepass")
    return struct.pack("<QQ", len(text), len(nodeids)), text


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
    try:
        cur.execute(_TEST_IDS, (_json_strings(nodeids),))
    except sqlite3.OperationalError:  # a SQLite built without the JSON functions
        ids = []
        for nodeid in nodeids:
            cur.execute("SELECT id FROM p3m_tests WHERE nodeid = ?", (nodeid,))
            row = cur.fetchone()
            ids.append(None if row is None else row[0])
        return ids, ids.count(None)
    text, missing = cur.fetchone()
    ids = json.loads(text)
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
