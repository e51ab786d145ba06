"""Watchdog: one timer per stream that bounds each wait (attempt and total limits)."""

from __future__ import annotations

import asyncio

import pytest

from turnout.execution.watchdog import Expired, Watchdog


async def test_watchdog_says_which_limit_passed() -> None:
    loop = asyncio.get_running_loop()
    watch = Watchdog(0.02, loop.time() + 10)
    with pytest.raises(Expired) as attempt:
        await watch.wait(asyncio.sleep(1))
    watch = Watchdog(10.0, loop.time() + 0.02)
    with pytest.raises(Expired) as total:
        await watch.wait(asyncio.sleep(1))
    watch.close()
    assert not attempt.value.total and total.value.total
    assert uncancelled()


async def test_watchdog_rearms_between_waits_and_lets_other_errors_through() -> None:
    watch = Watchdog(0.05, None)
    for _ in range(4):  # 0.12 s in all, each wait well within 0.05 s
        await watch.wait(asyncio.sleep(0.03))
    await asyncio.sleep(0.08)  # the timer goes off between waits: nothing to cancel
    with pytest.raises(TimeoutError, match="own"):
        await watch.wait(_raise(TimeoutError("own")))
    watch.close()


async def test_watchdog_withdraws_its_cancel_when_the_wait_answers_anyway() -> None:
    async def stubborn() -> str:
        try:
            await asyncio.sleep(1)
        except asyncio.CancelledError:
            return "late"
        return "never"

    watch = Watchdog(0.02, None)
    assert await watch.wait(stubborn()) == "late"
    watch.close()
    assert uncancelled()
    await asyncio.sleep(0)  # and this task goes on uncancelled


async def _raise(exc: BaseException) -> None:
    raise exc


def uncancelled() -> bool:
    """No cancellation of the current task is pending (the watchdog withdrew its own)."""
    task = asyncio.current_task()
    return task is not None and task.cancelling() == 0


async def test_watchdog_refuses_a_wait_that_starts_past_the_deadline() -> None:
    """A caller that took its time past the total deadline gets Expired at once, even
    when the awaited step would not have paused (buffered events)."""
    loop = asyncio.get_running_loop()
    watch = Watchdog(10.0, loop.time() - 0.001)

    async def ready() -> str:
        return "buffered"

    with pytest.raises(Expired) as expired:
        await watch.wait(ready())  # closed, not left un-awaited (warnings are errors here)
    assert expired.value.total
    watch.close()
