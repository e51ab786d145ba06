"""A throwaway database on the machine's PostgreSQL (127.0.0.1:5432), created and
dropped by the test (skips, saying why, when the server is not there)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

ADMIN_DSNS = (
    "postgresql://postgres@127.0.0.1:5432/postgres",
    "postgresql://root@127.0.0.1:5432/postgres",
)


def admin_dsn() -> str:
    psycopg = pytest.importorskip("psycopg")
    candidates = [os.environ.get("TURNOUT_TEST_POSTGRES_DSN", ""), *ADMIN_DSNS]
    reasons: list[str] = []
    for dsn in filter(None, candidates):
        try:
            with psycopg.connect(dsn, connect_timeout=3):
                return dsn
        except psycopg.Error as exc:
            reasons.append(" ".join(str(exc).split()))
    pytest.skip(f"PostgreSQL not reachable on 127.0.0.1:5432: {'; '.join(reasons)}")


@contextmanager
def throwaway_database() -> Iterator[str]:
    """The DSN of a new database, dropped afterwards."""
    psycopg = pytest.importorskip("psycopg")
    admin = admin_dsn()
    name = f"turnout_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield admin.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
