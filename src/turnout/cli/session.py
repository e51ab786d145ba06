"""The pieces a run or bench needs, opened in the right order and closed once.

Everything that can be validated without a model call (config, workflow,
policies, inputs) is validated before the trace store is opened, so bad input
never leaves anything behind.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from turnout.config.settings import Settings
from turnout.tracing import TraceStore, TraceWriter, open_store


@dataclass(slots=True)
class Tracing:
    """An open trace store and its background writer."""

    store: TraceStore
    writer: TraceWriter


@contextmanager
def tracing(settings: Settings | None, store_url: str | None) -> Iterator[Tracing]:
    """Open the store (``--store``, else ``storage:`` in the config, else the default)."""
    store = open_store(store_url or (settings.storage if settings else None))
    writer = TraceWriter(store)
    try:
        yield Tracing(store, writer)
    finally:
        try:
            writer.close()
        finally:
            store.close()
