"""Traces: run, then steps, then attempts, written in the background to SQLite or PostgreSQL.

::

    with open_store(None) as store, TraceWriter(store) as writer:  # .turnout/traces.db
        writer.submit(RunRecord(...))

Importing this package never imports psycopg: :class:`PostgresStore` loads it
when a store is opened.
"""

from turnout.tracing.migrations import MIGRATIONS, Dialect, Migration, apply_migrations
from turnout.tracing.open import open_store, sqlite_path_of
from turnout.tracing.postgres import PostgresStore
from turnout.tracing.records import (
    AttemptRecord,
    AttemptStatus,
    RunRecord,
    RunStatus,
    RunTrace,
    StepRecord,
    StepStatus,
    TraceRecord,
)
from turnout.tracing.rows import cost_to_pico, pico_to_cost, record_to_dict
from turnout.tracing.sqlite import SQLiteStore
from turnout.tracing.store import DEFAULT_SQLITE_PATH, CommitStatus, TraceStore
from turnout.tracing.writer import TraceWriter

__all__ = [
    "DEFAULT_SQLITE_PATH",
    "MIGRATIONS",
    "AttemptRecord",
    "AttemptStatus",
    "CommitStatus",
    "Dialect",
    "Migration",
    "PostgresStore",
    "RunRecord",
    "RunStatus",
    "RunTrace",
    "SQLiteStore",
    "StepRecord",
    "StepStatus",
    "TraceRecord",
    "TraceStore",
    "TraceWriter",
    "apply_migrations",
    "cost_to_pico",
    "open_store",
    "pico_to_cost",
    "record_to_dict",
    "sqlite_path_of",
]
