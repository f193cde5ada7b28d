"""The store's schema, as ordered migrations shared by every SQL backend.

Each migration is a list of statements written once, with a few placeholders for the
words that differ between SQL dialects. A backend applies the migrations above the
version it finds, in one transaction, and records the new version in ``p3m_meta``.
"""

from __future__ import annotations

from typing import Literal

Dialect = Literal["sqlite", "postgresql"]

_WORDS: dict[Dialect, dict[str, str]] = {
    "sqlite": {
        "serial_pk": "INTEGER PRIMARY KEY AUTOINCREMENT",
        "id_pk": "INTEGER PRIMARY KEY",
        "bigint": "INTEGER",
        "float": "REAL",
        "without_rowid": " WITHOUT ROWID",
        "blob": "BLOB",
        "drop_results_by_test": "DROP INDEX IF EXISTS p3m_results_test",
    },
    "postgresql": {
        "serial_pk": "BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY",
        "id_pk": "BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY",
        "bigint": "BIGINT",
        "float": "DOUBLE PRECISION",
        "without_rowid": "",
        "blob": "BYTEA",
        # PostgreSQL keeps it: its foreign key checks (deleting a test) look results up
        # by test, and a run is written by the server, not by the session.
        "drop_results_by_test": "",
    },
}

#: The per-test figures of the resource meter (``sampling.pertest``), each in a column of
#: its own since schema 3 (``cpu_time_s`` seconds, the others bytes): numbers bound as
#: numbers, where the ``figures`` JSON took about 5 us per test to encode (the float
#: formatting), a quarter of a session's store write. Any other figure (container peaks ...)
#: stays in ``figures``; results stored before schema 3 keep all of theirs there.
FIGURE_COLUMNS: tuple[str, ...] = (
    "cpu_time_s",
    "rss_peak_bytes",
    "read_bytes",
    "write_bytes",
    "read_chars",
    "write_chars",
)

#: MIGRATIONS[i] takes the store from version i to version i + 1.
MIGRATIONS: list[list[str]] = [
    [
        "CREATE TABLE IF NOT EXISTS p3m_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
        """CREATE TABLE p3m_runs (
            seq {serial_pk},
            run_id TEXT NOT NULL UNIQUE,
            started_at {float} NOT NULL,
            finished_at {float},
            commit_sha TEXT,
            branch TEXT,
            ci_provider TEXT,
            ci_run_id TEXT,
            ci_job TEXT,
            ci_url TEXT,
            hostname TEXT,
            python TEXT,
            pytest TEXT,
            workers INTEGER NOT NULL DEFAULT 0,
            exit_status INTEGER,
            tests INTEGER NOT NULL,
            passed INTEGER NOT NULL,
            failed INTEGER NOT NULL,
            errors INTEGER NOT NULL,
            skipped INTEGER NOT NULL,
            xfailed INTEGER NOT NULL,
            xpassed INTEGER NOT NULL,
            reruns INTEGER NOT NULL,
            test_execution_time_s {float} NOT NULL,
            metrics TEXT NOT NULL
        )""",
        "CREATE INDEX p3m_runs_started ON p3m_runs (started_at)",
        "CREATE INDEX p3m_runs_branch ON p3m_runs (branch, seq)",
        """CREATE TABLE p3m_tests (
            id {id_pk},
            nodeid TEXT NOT NULL UNIQUE,
            file TEXT,
            line INTEGER
        )""",
        """CREATE TABLE p3m_results (
            test {bigint} NOT NULL REFERENCES p3m_tests (id),
            run {bigint} NOT NULL REFERENCES p3m_runs (seq),
            outcome TEXT NOT NULL,
            setup_s {float} NOT NULL,
            call_s {float} NOT NULL,
            teardown_s {float} NOT NULL,
            start_at {float},
            stop_at {float},
            reruns INTEGER NOT NULL,
            worker TEXT,
            message TEXT,
            figures TEXT,
            PRIMARY KEY (run, test)
        ){without_rowid}""",
        # Results are kept in run order: a session appends its run's rows at the end of
        # the table (one 10,000-test run touches a few hundred pages, not 10,000), and a
        # window of recent runs is one range. One test's history comes from this index.
        "CREATE INDEX p3m_results_test ON p3m_results (test, run)",
    ],
    [
        # The few results that can make a test flaky, failing or regressed: `p3monitor
        # flaky` picks its tests from here instead of scanning the whole window.
        "CREATE INDEX IF NOT EXISTS p3m_results_failing ON p3m_results (run, test)"
        " WHERE outcome IN ('failed', 'error') OR reruns > 0",
    ],
    [
        f"ALTER TABLE p3m_results ADD COLUMN {name} "
        + ("{float}" if name == "cpu_time_s" else "{bigint}")
        for name in FIGURE_COLUMNS
    ],
    [
        # The test ids of the last suites saved (SQLite, store/sqlite_save.py): ``digest``
        # keys a suite, ``ids`` holds its tests' ids then its node ids, which a hit is
        # checked against. A session saving one of them again skips looking each node id
        # up (a fifth of what saving a run cost). Pruning, which deletes tests, empties it.
        # The PostgreSQL store joins node ids on the server and leaves it empty.
        "CREATE TABLE p3m_suites (digest {blob} PRIMARY KEY, ids {blob} NOT NULL)",
    ],
    [
        # SQLite: no index of the results by test. Each run saved put an entry into every
        # leaf of it (one entry per test, the tests spread over all of them), so saving a
        # run wrote more pages the longer the history: 650 pages for a 5000-test run at 45
        # runs stored, where the results themselves take about 100. A test's history is
        # read through the primary key (run, test) instead: a seek per run
        # (``SQLStore._recent_results``).
        "{drop_results_by_test}",
    ],
]

SCHEMA_VERSION = len(MIGRATIONS)


def statements(dialect: Dialect, from_version: int) -> list[list[str]]:
    """The migrations above ``from_version``, rendered for ``dialect``, one list per step."""
    words = _WORDS[dialect]
    rendered = [[stmt.format(**words) for stmt in step] for step in MIGRATIONS[from_version:]]
    return [[stmt for stmt in step if stmt] for step in rendered]  # "": none in this dialect
