"""Work batched off the request path: one send per batch, drained on close, a failed
send logged and never raised."""

from __future__ import annotations

import asyncio
import logging

import pytest

from turnout.limits.batch import Batch


async def test_items_added_together_go_out_in_one_send() -> None:
    sent: list[list[int]] = []

    async def send(items: list[int]) -> None:
        sent.append(items)

    batch: Batch[int] = Batch(send, what="test", batch_s=0.01)
    for i in range(5):
        batch.add(i)
    assert len(batch) == 5 and sent == []  # nothing waits on it
    await asyncio.sleep(0.05)
    batch.add(5)
    await batch.drain()  # the rest goes at once
    assert sent == [[0, 1, 2, 3, 4], [5]] and len(batch) == 0


async def test_a_failed_send_is_logged_not_raised(caplog: pytest.LogCaptureFixture) -> None:
    async def send(items: list[int]) -> None:
        raise ConnectionError("away")

    batch: Batch[int] = Batch(send, what="rate limits", batch_s=0.001)
    with caplog.at_level(logging.WARNING, logger="turnout.limits"):
        batch.add(1)
        await asyncio.sleep(0.02)
        await batch.drain()
    assert "rate limits: sending a batch failed: away" in caplog.text


async def test_a_caller_can_wait_for_what_it_queued_to_go_out() -> None:
    sent: list[list[int]] = []

    async def send(items: list[int]) -> None:
        await asyncio.sleep(0.01)
        sent.append(items)

    batch: Batch[int] = Batch(send, what="test", batch_s=0.01)
    await batch.sent()  # nothing queued: at once
    batch.add(1)
    batch.add(2)
    await asyncio.wait_for(batch.sent(), 1)
    assert sent == [[1, 2]]
