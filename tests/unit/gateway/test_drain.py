"""The gateway's drain: the requests its handlers hold, waited for on stop."""

from __future__ import annotations

import asyncio

from turnout.gateway.drain import Drain


async def test_idle_at_once_with_nothing_under_way() -> None:
    drain = Drain()
    assert await drain.idle(0.01) and drain.draining


async def test_a_request_that_comes_as_another_ends_is_waited_for_too() -> None:
    drain = Drain()
    drain.enter()  # A under way when the stop begins
    waiting = asyncio.ensure_future(drain.idle(5))
    await asyncio.sleep(0)
    drain.exit()  # A answered...
    drain.enter()  # ...and B comes on a kept-alive connection in the same turn
    await asyncio.sleep(0.05)
    assert not waiting.done()  # B is waited for, not cut off
    drain.exit()
    assert await asyncio.wait_for(waiting, 1)


async def test_a_request_that_outlasts_the_timeout_is_said() -> None:
    drain = Drain()
    drain.enter()
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    assert not await drain.idle(0.1)
    assert 0.09 <= loop.time() - t0 < 1 and drain.under_way == 1
