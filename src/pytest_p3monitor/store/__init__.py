"""Results stores: :func:`open_store` picks the backend from the URL."""

from __future__ import annotations

import re
from pathlib import Path

from ..exporters.redact import redact_url  # a store URL's password, in any of its places
from .base import SchemaTooNew, Store, StoreCorrupt, StoreError, StoreUnavailable

DEFAULT_PATH = Path(".p3monitor") / "results.db"

__all__ = [
    "DEFAULT_PATH",
    "SchemaTooNew",
    "Store",
    "StoreCorrupt",
    "StoreError",
    "StoreUnavailable",
    "open_store",
    "redact_url",
    "resolve_url",
    "sqlite_path",
    "store_identity",
]


def store_identity(url: str) -> str:
    """Which store ``url`` names, whoever logs in: the URL without its user and password
    (a run kept after a wrong password belongs to the store the right one opens)."""
    return re.sub(r"^([a-z][a-z0-9+.-]*://)[^@/]*@", r"\1", url)


def is_postgres(url: str) -> bool:
    return url.startswith(("postgresql://", "postgres://"))


def open_store(url: str | None, *, create: bool = True, root: Path | None = None) -> Store:
    """Open the store at ``url``: a ``postgresql://`` URL, or a path to a SQLite file.

    ``create=False`` (for the read-only commands) refuses to create a store that isn't
    there. A relative path is taken relative to ``root`` (pytest's rootdir) when given.
    Raises :class:`StoreError` with a message fit for the user.
    """
    if url and is_postgres(url):
        import importlib

        try:
            backend = importlib.import_module(".postgres", __package__)
        except ImportError as exc:
            raise StoreUnavailable(
                f"the PostgreSQL store needs psycopg ({exc}): "
                "pip install 'pytest-p3monitor[postgres]'"
            ) from None
        store: Store = backend.PostgresStore(url, create=create)
        return store
    if url and "://" in url and not url.startswith("sqlite://"):
        scheme = url.split("://", 1)[0]
        raise StoreUnavailable(
            f"unknown results store URL scheme {scheme!r} in {redact_url(url)!r}: use a file "
            "path (SQLite) or postgresql://user@host:port/db"
        )
    from .sqlite import SQLiteStore

    path = sqlite_path(url, root)
    if path is None:  # pragma: no cover - every other URL was handled above
        raise StoreUnavailable(f"not a SQLite store: {redact_url(str(url))!r}")
    return SQLiteStore(path, create=create)


def resolve_url(url: str, base: Path) -> str:
    """A store URL as the user gave it, made independent of the current folder.

    A SQLite path (``sqlite://`` optional) gets ``~`` expanded and, when relative, is taken
    relative to ``base``: the current folder for a path typed on the command line or set
    in the environment, the ini file's folder for one from the ini file. The pytest plugin
    and the ``p3monitor`` command both read paths through here. A server URL is unchanged.
    """
    path = sqlite_path(url)
    if path is None:
        return url
    return str(base / path.expanduser())


def sqlite_path(url: str | None, root: Path | None = None) -> Path | None:
    """The file of the SQLite store :func:`open_store` opens for ``url`` (None: not SQLite).

    A relative path is taken relative to ``root`` when given.
    """
    if url and "://" in url and not url.startswith("sqlite://"):
        return None
    path = Path(url.removeprefix("sqlite://")) if url else DEFAULT_PATH
    if not path.is_absolute() and root is not None:
        path = root / path
    return path
