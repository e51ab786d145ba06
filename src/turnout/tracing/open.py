"""Opening a trace store from a URL or a path.

=================================  ==============================================
``None``                           SQLite at ``.turnout/traces.db`` (relative to cwd)
``path/to/traces.db``              SQLite at that path (``~`` expanded)
``sqlite:///relative/traces.db``   SQLite, relative path (three slashes)
``sqlite:////abs/traces.db``       SQLite, absolute path (four slashes)
``sqlite:///:memory:``             SQLite in memory (tests)
``postgresql://...``               PostgreSQL (``postgres://`` too); needs psycopg
=================================  ==============================================

Anything else with a ``scheme://`` is refused, and so is a libpq keyword/value string
(``host=... dbname=... password=...``): taken as a path it would make a SQLite file
named after it, password and all. Neither error repeats the value.
"""

from __future__ import annotations

import re
from pathlib import Path

from turnout.errors import StoreError
from turnout.tracing.store import DEFAULT_SQLITE_PATH, TraceStore

_SCHEME = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.-]*)://")
_POSTGRES_SCHEMES = ("postgresql", "postgres")
_MEMORY = ":memory:"
_LIBPQ_KEYWORDS = frozenset(
    (
        "host", "hostaddr", "port", "dbname", "user", "password", "passfile",
        "connect_timeout", "options", "sslmode", "sslrootcert", "sslcert", "sslkey",
        "application_name", "service", "target_session_attrs",
    )
)  # fmt: skip
_KEYWORD = re.compile(r"^\s*([A-Za-z_]+)\s*=")


def _looks_like_keywords(value: str) -> bool:
    """``host=h dbname=d``: a libpq keyword/value string (or any ``=`` with spaces)."""
    match = _KEYWORD.match(value)
    if match is not None and match.group(1).lower() in _LIBPQ_KEYWORDS:
        return True
    return "=" in value and any(c.isspace() for c in value.strip())


def sqlite_path_of(url: str | None) -> Path | None:
    """The SQLite file a store URL names, or None (PostgreSQL, in-memory SQLite).

    Raises :class:`~turnout.errors.StoreError` for an unknown URL scheme.
    """
    if url is None:
        return DEFAULT_SQLITE_PATH
    url = url.strip()
    if not url:
        raise StoreError("empty trace store URL")
    match = _SCHEME.match(url)
    if match is None:
        if _looks_like_keywords(url):
            raise StoreError(
                "the trace store looks like a PostgreSQL key=value string, not a path: "
                "give it as a URL, postgresql://USER[:PASSWORD]@HOST[:PORT]/DB"
            )
        return Path(url).expanduser()
    scheme = match.group(1).lower()
    if scheme in _POSTGRES_SCHEMES:
        return None
    if scheme != "sqlite":
        raise StoreError(
            f"unknown trace store URL scheme {scheme}:// "
            "(expected a path, sqlite:///PATH or postgresql://...)"
        )
    rest = url[len(match.group(0)) :]  # what follows "sqlite://"
    if not rest.startswith("/") or rest == "/":
        raise StoreError(f"bad SQLite URL {url!r} (expected sqlite:///PATH)")
    path = rest[1:]
    return None if path == _MEMORY else Path(path).expanduser()


def open_store(url: str | None = None) -> TraceStore:
    """Open (creating and migrating if needed) the trace store ``url`` names.

    Raises :class:`~turnout.errors.StoreError` if it cannot be opened.
    """
    if url is not None and _SCHEME.match(url.strip()) is not None:
        scheme = url.strip().split("://", 1)[0].lower()
        if scheme in _POSTGRES_SCHEMES:
            from turnout.tracing.postgres import PostgresStore

            return PostgresStore(url.strip())
    from turnout.tracing.sqlite import MEMORY, SQLiteStore

    path = sqlite_path_of(url)
    return SQLiteStore(MEMORY if path is None else path)
