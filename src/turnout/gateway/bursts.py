"""A stream's events in bursts: what arrived together is written together.

An upstream stream arrives in network reads, each holding one or many chunks; the
events a read carries come out of the executor one after another without a pause.
Writing each one to the client costs a socket send apiece. :func:`bursts` runs the
stream in a task of its own and hands the consumer, each time it asks, every event
that is ready by then: one write per read instead of one per chunk, and never a
wait for more. The first event goes out alone, before the stream reads on, so the time
to the first byte does not wait for the rest of the first read.

Cancelling or closing the consumer cancels the task, so a client that hangs up
still stops the upstream call at once; an error of the stream is raised to the
consumer after the events that came before it.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncGenerator, AsyncIterator
from typing import TypeVar

T = TypeVar("T")

BURST_LIMIT = 256
"""Events held for a consumer that is still writing, before the stream waits for it."""


async def bursts(
    source: AsyncIterator[T], *, limit: int = BURST_LIMIT
) -> AsyncGenerator[list[T], None]:
    """The events of ``source`` in lists of those ready together, in order."""
    ready: deque[T] = deque()
    arrived = asyncio.Event()
    room = asyncio.Event()
    room.set()
    ended = False
    failure: BaseException | None = None

    async def pump() -> None:
        nonlocal ended, failure
        first = True
        try:
            async for item in source:
                ready.append(item)
                arrived.set()
                if first:  # let the consumer send it before the rest of its read
                    first = False
                    await asyncio.sleep(0)
                elif len(ready) >= limit:
                    room.clear()
                    await room.wait()
        except asyncio.CancelledError:
            raise
        except BaseException as exc:  # handed to the consumer, in order
            failure = exc
        finally:
            ended = True
            arrived.set()
            aclose = getattr(source, "aclose", None)
            if aclose is not None:
                await aclose()

    task = asyncio.get_running_loop().create_task(pump())
    try:
        while True:
            if not ready and not ended:
                arrived.clear()
                await arrived.wait()
            if ready:
                burst = list(ready)
                ready.clear()
                room.set()
                yield burst
            elif ended:
                if failure is not None:
                    raise failure
                return
    finally:
        if not task.done():
            task.cancel()
        await asyncio.gather(task, return_exceptions=True)  # the upstream call is stopped
