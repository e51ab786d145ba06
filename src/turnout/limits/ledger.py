"""What a key has spent in a budget period as the trace store has it: the durable record
a key's budget starts from when the state that counts it is new.

In-process budgets start empty when the gateway starts, and Redis loses its counters
when it restarts without persistence or is flushed; without this, a key could spend its
whole budget again after each. So the first request of a key in a period, on state that
has not counted it, asks the store once (:class:`SpendLedger`): the sum of
``runs.cost_picousd`` over the key's runs started in the period (read on the index
``runs (key_name, started_at)``), and the state starts from that (Redis: from the
larger of that and what it holds). What is not in the store yet is not counted: the
records the writer has not flushed (under a second). While a spill file holds records
the store lacks (the store was unreachable, perhaps before a restart), the store cannot
say, and is asked again a second later.

A network store is asked off the event loop. A store that fails, or does not answer
within ``timeout_s``, is left alone for ``retry_after_s``: the spend is then unknown,
and the state counts from what it holds, with a warning in the log, until the store is
asked again and answers; then the period's state takes the larger of the two.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from turnout.limits.periods import Window
    from turnout.tracing.store import TraceStore

log = logging.getLogger("turnout.limits")


def spend_query(name: str, window: Window) -> tuple[str, list[object]]:
    """The SQL (the stores' shared dialect) and parameters of what key ``name`` spent
    in ``window``, in pico-dollars: the sum of its runs' cost."""
    sql = "SELECT COALESCE(SUM(cost_picousd), 0) FROM runs WHERE key_name = ?"
    params: list[object] = [name]
    if window.starts_at is not None:
        sql += " AND started_at >= ?"
        params.append(window.starts_at)
    if window.ends_at is not None:
        sql += " AND started_at < ?"
        params.append(window.ends_at)
    return sql, params


class SpendLedger:
    """A key's spend in a period (pico-dollars) from the trace store."""

    def __init__(
        self,
        store: TraceStore,
        *,
        offload: bool,
        timeout_s: float = 2.0,
        retry_after_s: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
        behind: Callable[[], bool] | None = None,
        behind_retry_s: float = 1.0,
    ) -> None:
        self.store = store
        self.behind = behind
        """Whether records the store lacks wait to be written (a spill file): the store
        cannot say then, and is asked again after ``behind_retry_s``."""
        self.behind_retry_s = behind_retry_s
        self.offload = offload
        """Whether to ask from a thread (a network database), not on the event loop."""
        self.timeout_s = timeout_s
        self.retry_after_s = retry_after_s
        self.reads = 0
        self._clock = clock
        self._retry_at = 0.0
        self._reading: dict[tuple[str, str], asyncio.Future[int | None]] = {}

    def available(self) -> bool:
        """False while a failed store is left alone (:meth:`spent` would say None)."""
        return self._clock() >= self._retry_at

    async def spent(self, name: str, window: Window) -> int | None:
        """What key ``name`` spent in ``window``; None when the store cannot say. The
        concurrent first requests of a key share one read."""
        if self._clock() < self._retry_at:
            return None
        if self._behind():
            self._retry_at = self._clock() + self.behind_retry_s
            return None
        key = (name, window.id)
        reading = self._reading.get(key)
        if reading is None:
            reading = self._reading[key] = asyncio.ensure_future(self._read(name, window))
            reading.add_done_callback(lambda _: self._reading.pop(key, None))
        return await asyncio.shield(reading)

    def _behind(self) -> bool:
        if self.behind is None:
            return False
        try:
            return self.behind()
        except Exception as exc:  # the spill file cannot be read: assume it holds records
            log.warning("budgets: cannot tell whether the spill file holds records (%s)", exc)
            return True

    async def _read(self, name: str, window: Window) -> int | None:
        sql, params = spend_query(name, window)
        self.reads += 1
        try:
            if self.offload:
                async with asyncio.timeout(self.timeout_s):
                    rows = await asyncio.to_thread(self.store.query, sql, params)
            else:
                rows = self.store.query(sql, params)
        except Exception as exc:  # any failure of the store: the spend is unknown
            self._retry_at = self._clock() + self.retry_after_s
            log.warning(
                "budgets: the trace store could not say what key %r spent (%s); counting "
                "from the budget state alone for %.0f s",
                name,
                type(exc).__name__,
                self.retry_after_s,
            )
            return None
        return int(rows[0][0] or 0) if rows else 0
