"""The results store interface. SQLite and PostgreSQL are two implementations of it.

The analysis code only ever sees :class:`~pytest_p3monitor.records.HistoryRow` and
:class:`~pytest_p3monitor.records.RunRow`; SQL differences stay inside the backends.
"""

from __future__ import annotations

import abc
from collections.abc import Iterator, Sequence
from typing import Any

from ..records import (
    FAILING_OUTCOMES,
    PEAK_KEYS,
    HistoryRow,
    RunInfo,
    RunRow,
    TestRecord,
    stored_peaks,
)


def peak_metrics(memory: Any, rss: Any) -> dict[str, Any]:
    """The metrics of a trend row (:meth:`Store.trend_runs`): only the peaks at
    :data:`PEAK_KEYS`, at their place in the full metrics; ``{}`` when both are None."""
    if memory is None and rss is None:
        return {}
    peaks = {
        key: value for key, value in zip(PEAK_KEYS, (memory, rss), strict=True) if value is not None
    }
    return {"metrics": {"resource_usage": {"process": peaks}}}


class StoreError(Exception):
    """The store cannot be used. The message says what is wrong and what to do."""


class StoreUnavailable(StoreError):
    """The store cannot be reached or opened (path not writable, server down, bad password)."""


class StoreCorrupt(StoreError):
    """The file or database exists but is not a p3monitor store we can read."""


class SchemaTooNew(StoreError):
    """The store was written by a newer pytest-p3monitor; this version must not touch it."""


def schema_version(value: Any, where: str) -> int:
    """The schema version ``p3m_meta`` holds, as a number; :class:`StoreCorrupt` when it
    is anything but a whole number from 0 up (someone edited the table)."""
    text = str(value).strip()
    if not text.isascii() or not text.isdigit():
        raise StoreCorrupt(
            f"the results store {where} has schema version {value!r} in its p3m_meta table, "
            "which is not a version number; it was left as it is. Restore it from a backup, or "
            "move it away to start a new history."
        )
    return int(text)


class Store(abc.ABC):
    """A results store. Opened by :func:`pytest_p3monitor.store.open_store`."""

    #: where the store is, safe to print (no password)
    display_url: str

    # -- writing ---------------------------------------------------------------------------
    @abc.abstractmethod
    def save_run(self, run: RunInfo, tests: Sequence[TestRecord], metrics: dict[str, Any]) -> None:
        """Store one run and its test results in one transaction.

        Saving a run whose ``run_id`` is already stored is a no-op (so an outbox flush
        can be retried safely).
        """

    @abc.abstractmethod
    def prune(self, older_than: float) -> int:
        """Delete runs that started before ``older_than`` (epoch seconds); return how many."""

    # -- reading ---------------------------------------------------------------------------
    @abc.abstractmethod
    def recent_runs(
        self, limit: int = 20, branch: str | None = None, since: float | None = None
    ) -> list[RunRow]:
        """Runs newest first, at most ``limit``, optionally of one branch / since a time."""

    def trend_runs(
        self, limit: int = 2000, branch: str | None = None, since: float | None = None
    ) -> list[RunRow]:
        """:meth:`recent_runs` for the trends: the same runs and columns, but each row's
        ``metrics`` holds only the peaks the trends read (:func:`peak_metrics`).

        Backends pick the peaks out of the stored JSON in the database, which costs a
        fraction of parsing every run's whole metrics here.
        """
        return [
            row._replace(metrics=peak_metrics(*stored_peaks(row.metrics)))
            for row in self.recent_runs(limit, branch, since)
        ]

    @abc.abstractmethod
    def find_runs(self, run_id: str, limit: int = 5) -> list[RunRow]:
        """The run with id ``run_id`` alone, when one has it; else the runs whose id starts
        with ``run_id`` (as ``p3monitor runs`` shortens them), newest first, at most
        ``limit``. Each with its whole metrics."""

    @abc.abstractmethod
    def runs_before(self, run_seq: int, limit: int = 20, branch: str | None = None) -> list[RunRow]:
        """The runs stored before the run ``run_seq``, newest first, at most ``limit``,
        optionally of one branch: the history of an older run, as :meth:`recent_runs` is
        the newest run's."""

    @abc.abstractmethod
    def run_tests(self, run_seq: int) -> list[TestRecord]:
        """Every test result of one run, as the records it was saved from, by node id."""

    @abc.abstractmethod
    def test_history(
        self, nodeid: str, limit: int = 100, branch: str | None = None
    ) -> list[HistoryRow]:
        """The last ``limit`` results of one test, oldest first."""

    @abc.abstractmethod
    def histories(
        self,
        window: int = 100,
        branch: str | None = None,
        nodeids: Sequence[str] | None = None,
    ) -> Iterator[tuple[str, list[HistoryRow]]]:
        """Stream ``(nodeid, rows)`` for every test (or the given ones): its last ``window``
        results, oldest first. Tests come one at a time so memory stays bounded."""

    def failing_histories(
        self, window: int = 100, branch: str | None = None
    ) -> Iterator[tuple[str, list[HistoryRow]]]:
        """:meth:`histories` of only the tests with a failed or error result, or a rerun, in
        the window: the only tests that can be flaky, failing, regressed or fixed.

        Same window and rows as :meth:`histories`. Backends answer it faster by picking
        the tests in the database (``p3monitor flaky`` reads only these).
        """
        failing = FAILING_OUTCOMES
        for nodeid, rows in self.histories(window, branch):
            if any(r.outcome in failing or r.reruns for r in rows):
                yield nodeid, rows

    @abc.abstractmethod
    def close(self) -> None:
        """Release connections."""

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
