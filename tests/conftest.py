"""Shared test helpers. Server fixtures live in their own modules, loaded here."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest


def pytest_configure(config: pytest.Config) -> None:
    import os

    # Inner pytester sessions must not inherit a store, commit or CI from the outer run.
    for name in ("P3MONITOR_DB", "P3MONITOR_COMMIT", "P3MONITOR_BRANCH", "GITHUB_ACTIONS"):
        os.environ.pop(name, None)


def store_rows(db: Path, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Rows of a query against a SQLite store, for assertions."""
    conn = sqlite3.connect(db)
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()


def results(db: Path) -> dict[str, tuple[Any, ...]]:
    """nodeid -> (outcome, reruns, worker, message) of the newest run in a SQLite store."""
    rows = store_rows(
        db,
        "SELECT t.nodeid, r.outcome, r.reruns, r.worker, r.message FROM p3m_results r"
        " JOIN p3m_tests t ON t.id = r.test"
        " WHERE r.run = (SELECT max(seq) FROM p3m_runs)",
    )
    return {row[0]: row[1:] for row in rows}
