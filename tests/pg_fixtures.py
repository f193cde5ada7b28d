"""PostgreSQL for the tests: a throwaway server started from the installed binaries.

Fixtures (loaded by conftest.py):

- ``postgres_server``: one server for the test session (scripts/postgres.sh in a temporary
  folder), stopped and removed at the end. Skipped with a reason when the server binaries
  are missing on a dev machine; under ``CI=true`` it fails instead.
- ``postgres_url``: a fresh, empty database on that server for one test.
- ``store_url``: parametrized over both backends: a SQLite path, then a fresh PostgreSQL
  database. Use it to run one store test against both.
"""

from __future__ import annotations

import glob
import itertools
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "postgres.sh"
#: The role that must give its password (see scripts/postgres.sh), and that password.
AUTH_ROLE = "p3m_auth"
AUTH_PASSWORD = "right-horse-battery"

_counter = itertools.count()


def binaries_present() -> bool:
    return bool(glob.glob("/usr/lib/postgresql/*/bin/initdb")) or (
        shutil.which("initdb") is not None and shutil.which("pg_ctl") is not None
    )


def skip_or_fail(reason: str) -> None:
    """Skip on a dev machine; under CI=true a missing server is a failure, never a skip."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason} (CI=true: not skipping)", pytrace=False)
    pytest.skip(reason)


class PostgresServer:
    """A server started by scripts/postgres.sh in ``folder``."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.url = ""
        self.port = 0
        self.auth_role = AUTH_ROLE
        self.auth_password = AUTH_PASSWORD

    def _script(self, *args: str) -> str:
        proc = subprocess.run(
            ["sh", str(SCRIPT), *args], capture_output=True, text=True, timeout=120, check=False
        )
        if proc.returncode != 0:
            raise RuntimeError(f"scripts/postgres.sh {' '.join(args)} failed: {proc.stderr}")
        return proc.stdout.strip()

    def start(self) -> str:
        """Start the server (again, on the same port when it ran before); return its URL."""
        self.url = self._script("start", str(self.folder), *([str(self.port)] if self.port else []))
        self.port = int(self.url.rsplit(":", 1)[1].split("/", 1)[0])
        return self.url

    def stop(self) -> None:
        self._script("stop", str(self.folder))

    def destroy(self) -> None:
        self._script("destroy", str(self.folder))

    def url_for(self, dbname: str, user: str = "postgres", password: str | None = None) -> str:
        auth = f"{user}:{password}" if password is not None else user
        return f"postgresql://{auth}@127.0.0.1:{self.port}/{dbname}"

    def admin(self, sql: str) -> None:
        import psycopg

        with psycopg.connect(self.url, autocommit=True, connect_timeout=10) as conn:
            conn.execute(sql)  # type: ignore[arg-type]

    def create_database(self) -> str:
        """A new empty database; its URL."""
        name = f"p3m_{os.getpid()}_{next(_counter)}"
        self.admin(f"CREATE DATABASE {name}")
        return self.url_for(name)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    if not binaries_present():
        skip_or_fail(
            "PostgreSQL server binaries (initdb, pg_ctl) not found in /usr/lib/postgresql/*/bin "
            "or on PATH: apt-get install -y postgresql"
        )
    try:
        import psycopg  # noqa: F401
    except ImportError:
        skip_or_fail("psycopg is not installed: pip install 'pytest-p3monitor[postgres]'")
    # Not under pytest's tmp_path: the postgres user must be able to enter the folder.
    server = PostgresServer(Path(tempfile.mkdtemp(prefix="p3monitor-pg-")))
    try:
        server.start()
        server.admin(f"CREATE ROLE {AUTH_ROLE} LOGIN PASSWORD '{AUTH_PASSWORD}'")
        yield server
    finally:
        server.destroy()


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> str:
    return postgres_server.create_database()


@pytest.fixture(
    params=["sqlite", pytest.param("postgresql", marks=pytest.mark.needs_postgres)],
)
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A results store URL for one test, once per backend: a SQLite file, a fresh database."""
    if request.param == "sqlite":
        return str(tmp_path / "results.db")
    server: PostgresServer = request.getfixturevalue("postgres_server")
    return server.create_database()
