"""Bursts: what is ready together comes out together, in order, and nothing waits."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from turnout.gateway.bursts import bursts


async def reads(*groups: list[int], pause: float = 0.01) -> AsyncIterator[int]:
    """Like a network stream: each group arrives at once, a pause between groups."""
    for group in groups:
        await asyncio.sleep(pause)
        for item in group:
            yield item


async def collect(source: AsyncIterator[int], **kw: int) -> list[list[int]]:
    return [burst async for burst in bursts(source, **kw)]


def test_events_that_arrive_together_come_out_together_in_order() -> None:
    out = asyncio.run(collect(reads([1, 2, 3], [4], [5, 6])))
    assert out == [[1], [2, 3], [4], [5, 6]]  # the first alone, for the time to first byte


def test_a_slow_consumer_gets_everything_ready_by_then_and_the_limit_holds() -> None:
    async def main() -> list[list[int]]:
        got = []
        async for burst in bursts(reads([1, 2, 3, 4, 5, 6, 7], pause=0), limit=3):
            got.append(burst)
            await asyncio.sleep(0.01)
        return got

    out = asyncio.run(main())
    assert [x for burst in out for x in burst] == [1, 2, 3, 4, 5, 6, 7]
    assert max(len(b) for b in out) <= 3


def test_an_error_comes_after_the_events_before_it() -> None:
    async def failing() -> AsyncIterator[int]:
        yield 1
        yield 2
        raise ValueError("cut")

    seen: list[int] = []

    async def main() -> None:
        async for burst in bursts(failing()):
            seen.extend(burst)

    with pytest.raises(ValueError, match="cut"):
        asyncio.run(main())
    assert seen == [1, 2]


def test_closing_the_consumer_stops_the_stream_at_once() -> None:
    state = {"closed": False}

    async def endless() -> AsyncIterator[int]:
        try:
            i = 0
            while True:
                await asyncio.sleep(0.001)
                yield i
                i += 1
        finally:
            state["closed"] = True

    async def main() -> None:
        gen = bursts(endless())
        await anext(gen)
        await gen.aclose()
        assert state["closed"]  # by the time aclose returns
        await asyncio.sleep(0.01)

    asyncio.run(main())
    assert state["closed"]


def test_cancelling_the_consumer_cancels_the_stream() -> None:
    state = {"closed": False}

    async def hanging() -> AsyncIterator[int]:
        try:
            yield 1
            await asyncio.sleep(3600)
            yield 2
        finally:
            state["closed"] = True

    async def consume() -> None:
        gen = bursts(hanging())
        try:
            async for _ in gen:
                pass
        finally:
            await gen.aclose()

    async def main() -> None:
        task = asyncio.create_task(consume())
        await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    assert state["closed"]


def test_an_empty_stream_gives_no_burst() -> None:
    async def empty() -> AsyncIterator[int]:
        return
        yield  # pragma: no cover

    assert asyncio.run(collect(empty())) == []
