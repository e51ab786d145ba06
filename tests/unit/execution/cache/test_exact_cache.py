"""The in-process backend (TTL, LRU bounds) and the exact cache round trip."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal

import pytest

from turnout.execution.cache import CachedAnswer, ExactCache, MemoryBackend, stats
from turnout.execution.cache.answer import decode_answer, encode_answer, storable
from turnout.types import ChatRequest, ChatResponse, Message, ToolCall, Usage, WireExtra


class FakeClock:
    def __init__(self, t: float = 100.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def request(text: str = "Is this a refund request?", **kw: object) -> ChatRequest:
    kw.setdefault("temperature", 0)
    return ChatRequest(messages=(Message.user(text),), model="haiku", **kw)  # type: ignore[arg-type]


RESPONSE = ChatResponse(
    content="yes",
    usage=Usage(input_tokens=120, output_tokens=2, cached_input_tokens=100),
    model="claude-haiku-4-5",
    finish_reason="stop",
    tool_calls=(ToolCall("call_1", "refund", '{"id": 7}'),),
    latency_s=0.8,
    ttft_s=0.3,
    response_id="resp_1",
)


# -- memory backend ----------------------------------------------------------------------


async def test_memory_backend_expires_entries() -> None:
    clock = FakeClock()
    mem = MemoryBackend(clock=clock)
    await mem.set("k", b"v", ttl_s=10)
    assert await mem.get("k") == b"v"
    clock.t += 9.99
    assert await mem.get("k") == b"v"
    clock.t += 0.01
    assert await mem.get("k") is None
    assert len(mem) == 0
    assert mem.size_bytes == 0


async def test_memory_backend_is_a_bounded_lru() -> None:
    mem = MemoryBackend(max_entries=3)
    for k in "abc":
        await mem.set(k, k.encode(), 60)
    assert await mem.get("a") == b"a"  # a is now the most recently used
    await mem.set("d", b"d", 60)
    assert len(mem) == 3
    assert await mem.get("b") is None  # b was the least recently used
    assert [await mem.get(k) for k in "acd"] == [b"a", b"c", b"d"]


async def test_memory_backend_bounds_bytes() -> None:
    mem = MemoryBackend(max_bytes=10)
    await mem.set("a", b"12345", 60)
    await mem.set("b", b"12345", 60)
    await mem.set("c", b"1", 60)
    assert await mem.get("a") is None
    assert mem.size_bytes == 6
    await mem.set("huge", b"x" * 11, 60)  # larger than the whole cache: not stored
    assert await mem.get("huge") is None
    assert mem.size_bytes == 6


async def test_memory_backend_overwrite_delete_clear() -> None:
    mem = MemoryBackend()
    await mem.set("a", b"1", 60)
    await mem.set("a", b"22", 60)
    assert await mem.get("a") == b"22"
    assert mem.size_bytes == 2
    await mem.delete("a")
    await mem.delete("missing")
    assert await mem.get("a") is None
    await mem.set("b", b"1", 60)
    await mem.set("zero", b"1", 0)  # a zero TTL stores nothing
    await mem.clear()
    assert len(mem) == 0
    assert mem.size_bytes == 0


def test_memory_backend_validates_bounds() -> None:
    with pytest.raises(ValueError, match="max_entries"):
        MemoryBackend(max_entries=0)


# -- answers -------------------------------------------------------------------------------


def test_answer_round_trip_keeps_every_field() -> None:
    data = encode_answer(RESPONSE, Decimal("0.000123"), stored_at=5.0)
    answer = decode_answer(data, kind="exact", key="k")
    assert answer is not None
    assert answer.response == RESPONSE
    assert answer.cost_usd == Decimal("0.000123")
    assert answer.saved_usd == Decimal("0.000123")
    assert (answer.kind, answer.key, answer.stored_at, answer.similarity) == ("exact", "k", 5.0, 1)


def test_answer_round_trip_keeps_what_the_upstream_said_besides() -> None:
    extra = WireExtra(
        response={"system_fingerprint": "fp_1"},
        choice={"logprobs": {"content": [{"token": "yes", "logprob": -0.1}]}},
        usage={"completion_tokens_details": {"reasoning_tokens": 3}},
    )
    with_extra = replace(RESPONSE, extra=extra)
    answer = decode_answer(encode_answer(with_extra, Decimal(1), 5.0), kind="exact", key="k")
    assert answer is not None and answer.response == with_extra
    assert b"extra" not in encode_answer(RESPONSE, Decimal(1), 5.0)  # none: nothing stored


def test_answer_round_trip_keeps_an_estimated_usage_marked() -> None:
    estimated = replace(RESPONSE, usage=replace(RESPONSE.usage, estimated=True))
    answer = decode_answer(encode_answer(estimated, Decimal(1), 5.0), kind="exact", key="k")
    assert answer is not None and answer.response.usage.estimated
    plain = decode_answer(encode_answer(RESPONSE, Decimal(1), 5.0), kind="exact", key="k")
    assert plain is not None and not plain.response.usage.estimated


@pytest.mark.parametrize("data", [b"not json", b"[]", b'{"format": 99}', b'{"format": 1}'])
def test_foreign_bytes_decode_as_a_miss(data: bytes) -> None:
    assert decode_answer(data, kind="exact", key="k") is None


def test_what_is_storable() -> None:
    assert storable(RESPONSE)
    assert not storable(ChatResponse(content="", usage=Usage(), model="m"))
    filtered = ChatResponse(content="x", usage=Usage(), model="m", finish_reason="content_filter")
    assert not storable(filtered)
    assert storable(ChatResponse(content="x", usage=Usage(), model="m", finish_reason="length"))


# -- exact cache ---------------------------------------------------------------------------


async def test_exact_cache_round_trip_and_stats() -> None:
    cache = ExactCache(MemoryBackend(), ttl_s=60)
    assert await cache.lookup(request()) is None
    assert await cache.store(request(), RESPONSE, Decimal("0.0021"))
    hit = await cache.lookup(request("Is this a refund request?  \n"))  # same after normalization
    assert isinstance(hit, CachedAnswer)
    assert hit.response == RESPONSE
    assert hit.cost_usd == Decimal("0.0021")
    assert hit.kind == "exact"
    assert await cache.lookup(request("Is this a refund?")) is None
    s = cache.stats
    assert (s.hits, s.misses, s.stores, s.skipped) == (1, 2, 1, 0)
    assert s.saved_usd == Decimal("0.0021")


async def test_exact_cache_skips_sampled_requests() -> None:
    cache = ExactCache(MemoryBackend())
    hot = request(temperature=0.8)
    assert not await cache.store(hot, RESPONSE, Decimal(1))
    assert await cache.lookup(hot) is None
    assert cache.stats.skipped == 1
    assert cache.key(hot) is None


async def test_exact_cache_can_be_forced_for_sampled_requests() -> None:
    cache = ExactCache(MemoryBackend(), force=True)
    hot = request(temperature=0.8)
    assert await cache.store(hot, RESPONSE, Decimal(1))
    assert await cache.lookup(hot) is not None
    assert await cache.lookup(request(temperature=0.5)) is None  # still part of the key


async def test_exact_cache_does_not_store_empty_or_filtered_answers() -> None:
    cache = ExactCache(MemoryBackend())
    empty = ChatResponse(content=None, usage=Usage(), model="m")
    assert not await cache.store(request(), empty, Decimal(0))
    assert await cache.lookup(request()) is None


async def test_exact_cache_ttl() -> None:
    clock = FakeClock()
    cache = ExactCache(MemoryBackend(clock=clock), ttl_s=5)
    await cache.store(request(), RESPONSE, Decimal(0))
    clock.t += 5
    assert await cache.lookup(request()) is None


def test_exact_cache_validates_ttl() -> None:
    with pytest.raises(ValueError, match="ttl_s"):
        ExactCache(MemoryBackend(), ttl_s=0)


class FlakyBackend(MemoryBackend):
    def __init__(self) -> None:
        super().__init__()
        self.down = True
        self.calls = 0

    async def get(self, key: str) -> bytes | None:
        self.calls += 1
        if self.down:
            raise ConnectionError("backend unreachable")
        return await super().get(key)

    async def set(self, key: str, value: bytes, ttl_s: float) -> None:
        self.calls += 1
        if self.down:
            raise ConnectionError("backend unreachable")
        await super().set(key, value, ttl_s)


async def test_a_failing_backend_is_a_miss_logged_once(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(stats, "RETRY_AFTER_S", 0.0)  # try the backend on every call
    backend = FlakyBackend()
    cache = ExactCache(backend)
    with caplog.at_level("INFO", logger="turnout.cache"):
        for _ in range(3):
            assert await cache.lookup(request()) is None
            assert not await cache.store(request(), RESPONSE, Decimal(1))
        assert cache.stats.errors == 6
        assert cache.stats.last_error == "set: ConnectionError: backend unreachable"
        backend.down = False
        assert await cache.store(request(), RESPONSE, Decimal(1))
        assert await cache.lookup(request()) is not None
    assert cache.stats.last_error is None
    levels = [r.levelname for r in caplog.records]
    assert levels == ["WARNING", "INFO"]


async def test_a_failed_backend_is_left_alone_for_a_while(monkeypatch: pytest.MonkeyPatch) -> None:
    now = [50.0]
    monkeypatch.setattr(stats.time, "monotonic", lambda: now[0])
    backend = FlakyBackend()
    cache = ExactCache(backend)
    assert await cache.lookup(request()) is None
    assert await cache.lookup(request()) is None  # not tried: resting
    assert not await cache.store(request(), RESPONSE, Decimal(1))
    assert (backend.calls, cache.stats.errors, cache.stats.misses) == (1, 1, 1)
    now[0] += stats.RETRY_AFTER_S
    backend.down = False
    assert await cache.store(request(), RESPONSE, Decimal(1))
    assert await cache.lookup(request()) is not None
