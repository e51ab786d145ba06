"""The pieces a run or bench needs, opened in the right order and closed once.

Everything that can be validated without a model call (config, workflow,
policies, inputs) is validated before the trace store is opened, so bad input
never leaves anything behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Coroutine, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

from turnout.config.settings import Settings
from turnout.tracing import TraceStore, TraceWriter, open_store

T = TypeVar("T")


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


def run_async(main: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run`` where SIGTERM stops the work as Ctrl-C does: the main task is
    cancelled (so runs in flight are recorded ``interrupted`` and the trace writer
    flushes on the way out), then KeyboardInterrupt is raised."""
    terminated = False

    async def guarded() -> T:
        task = asyncio.current_task()
        loop = asyncio.get_running_loop()

        def on_term() -> None:
            nonlocal terminated
            terminated = True
            if task is not None:
                task.cancel()

        installed = False
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(signal.SIGTERM, on_term)
            installed = True
        try:
            return await main
        finally:
            if installed:
                loop.remove_signal_handler(signal.SIGTERM)

    try:
        return asyncio.run(guarded())
    except asyncio.CancelledError:
        if terminated:
            raise KeyboardInterrupt("terminated (SIGTERM)") from None
        raise
