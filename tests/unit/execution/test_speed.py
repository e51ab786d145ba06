"""Observed speed: the estimates, what is recorded, seeding from a real SQLite store,
and recording under concurrency."""

from __future__ import annotations

import asyncio
import threading
import time
from decimal import Decimal
from pathlib import Path

import pytest

from turnout.config import Settings
from turnout.errors import ServerError
from turnout.execution.executor import Executor
from turnout.execution.retry import RetryPolicy
from turnout.execution.speed import SpeedBoard, sample_of, seed_from_store
from turnout.providers import FunctionProvider
from turnout.providers.pool import ModelPool
from turnout.tracing.records import AttemptRecord
from turnout.tracing.sqlite import SQLiteStore
from turnout.types import ChatRequest, ChatResponse, Decision, Message, Usage

REQ = ChatRequest((Message.user("hello there"),))


def test_sample_streamed_and_unstreamed() -> None:
    s = sample_of("m", latency_s=1.0, ttft_s=0.2, output_tokens=9, at=5.0)
    assert (s.ttft_s, s.per_token_s) == (0.2, pytest.approx(0.1))
    s = sample_of("m", latency_s=1.0, ttft_s=None, output_tokens=9, at=5.0)
    assert (s.ttft_s, s.per_token_s) == (1.0, None)  # the whole answer came at once
    assert sample_of("m", 1.0, 0.2, 1, 5.0).per_token_s is None  # one token: no rate


def test_exponentially_weighted_with_counts() -> None:
    board = SpeedBoard(alpha=0.5)
    board.observe("a", 1.0, 0.4, 7, at=10.0)  # per token (1.0 - 0.4) / 6 = 0.1
    board.observe("a", 0.8, None, 7, at=11.0)  # unstreamed: ttft 0.8, no per-token sample
    e = board.snapshot().get("a")
    assert e is not None
    assert (e.ttft_s, e.per_token_s, e.samples, e.updated_at) == (
        pytest.approx(0.6), pytest.approx(0.1), 2, 11.0,
    )  # fmt: skip
    assert board.snapshot().get("b") is None


def test_snapshot_is_rebuilt_only_after_a_change() -> None:
    board = SpeedBoard()
    board.observe("a", 1.0, None, 3, at=1.0)
    first, second = board.snapshot(), board.snapshot()
    assert first.estimates is second.estimates
    board.observe("a", 1.0, None, 3, at=2.0)
    assert board.snapshot().estimates is not first.estimates
    assert first.get("a").samples == 1  # type: ignore[union-attr]  # a snapshot never changes


def _executor(settings: Settings, fn: FunctionProvider) -> Executor:
    pool = ModelPool(settings, providers={"hosted": fn, "backup": fn})

    async def sleep(_: float) -> None:
        return None

    return Executor(pool, retry=RetryPolicy(max_attempts=2), sleep=sleep)


async def test_recorded_after_successful_attempts_only(settings: Settings) -> None:
    outcomes = iter([ServerError("500"), "ok"])

    def fn(req: ChatRequest) -> str:
        o = next(outcomes)
        if isinstance(o, Exception):
            raise o
        return o

    ex = _executor(settings, FunctionProvider(fn))
    out = await ex.execute(Decision(("opus",), "r", "p"), REQ, run_id="r", step_id="s")
    assert [a.status for a in out.attempts] == ["error", "ok"]
    health = await ex.health()
    e = health.speeds.get("opus")
    assert e is not None and e.samples == 1 and e.ttft_s == pytest.approx(out.attempts[1].latency_s)
    assert health.speeds.as_of == pytest.approx(time.time(), abs=5)


async def test_estimates_under_concurrency(settings: Settings) -> None:
    async def slow(req: ChatRequest) -> ChatResponse:
        await asyncio.sleep(0.55)  # longer than the provider's own 0.5 s: that one is used
        return ChatResponse("ok", Usage(5, 11), req.model, "stop", latency_s=0.5, ttft_s=0.1)

    ex = _executor(settings, FunctionProvider(slow))
    calls = [
        ex.execute(Decision((m,), "r", "p"), REQ, run_id=f"r{i}", step_id="s")
        for i in range(200)
        for m in ("opus", "haiku")
    ]
    results = await asyncio.gather(*calls)
    assert all(r.ok for r in results)
    speeds = (await ex.health()).speeds
    for m in ("opus", "haiku"):
        e = speeds.get(m)
        assert e is not None and e.samples == 200
        assert (e.ttft_s, e.per_token_s) == (pytest.approx(0.1), pytest.approx(0.04))

    # and from threads: no sample is lost
    board = SpeedBoard()

    def worker() -> None:
        for _ in range(2000):
            board.observe("m", 0.2, 0.1, 3, at=1.0)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert board.snapshot().get("m").samples == 8000  # type: ignore[union-attr]


def _attempt(
    i: int,
    model: str,
    latency: float,
    *,
    ttft: float | None = None,
    status: str = "ok",
    cache: str | None = None,
    at: float = 0.0,
) -> AttemptRecord:
    return AttemptRecord(
        run_id=f"r{i}", step_id="s", attempt=1, model=model, provider="p", tier="efficient",
        policy="p", reason="r", started_at=at or time.time() - 60 + i, latency_s=latency,
        status=status, ttft_s=ttft, output_tokens=11, cost_usd=Decimal(0), cache=cache,  # type: ignore[arg-type]
    )  # fmt: skip


def test_seeded_from_the_trace_store(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "traces.db")
    try:
        store.write_batch([], [], [
            *(_attempt(i, "fast", 0.1) for i in range(5)),
            *(_attempt(10 + i, "slow", 0.9, ttft=0.4) for i in range(3)),
            _attempt(20, "slow", 9.0, status="error"),  # failures say nothing of speed
            _attempt(21, "fast", 0.0, cache="exact"),  # nor do cache hits
            _attempt(22, "old", 1.0, at=time.time() - 10 * 86400),  # outside the window
        ])  # fmt: skip
        board = SpeedBoard()
        assert seed_from_store(board, store) == 8
        snap = board.snapshot()
        assert snap.get("fast").samples == 5 and snap.get("fast").ttft_s == pytest.approx(0.1)  # type: ignore[union-attr]
        slow = snap.get("slow")
        assert slow is not None and slow.samples == 3
        assert (slow.ttft_s, slow.per_token_s) == (pytest.approx(0.4), pytest.approx(0.05))
        assert snap.get("old") is None
        assert seed_from_store(SpeedBoard(), store, limit=2) == 2
    finally:
        store.close()
