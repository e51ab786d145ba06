"""The semantic cache with a table-driven embedder (the real model is tested in
test_minilm_embedding.py): threshold, scoping, TTL, bounds of the in-process index."""

from __future__ import annotations

import math
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

import pytest

from turnout.execution.cache.semantic import SemanticCache
from turnout.execution.cache.vectors import MemoryVectorIndex
from turnout.types import ChatRequest, ChatResponse, Message, Usage

np = pytest.importorskip("numpy", reason="numpy is part of the semantic extra")


def unit(angle_deg: float) -> list[float]:
    """A unit vector whose cosine with [1, 0, 0] is cos(angle)."""
    a = math.radians(angle_deg)
    return [math.cos(a), math.sin(a), 0.0]


def at_cosine(c: float) -> list[float]:
    return [c, math.sqrt(1 - c * c), 0.0]


class TableEmbedder:
    dim = 3

    def __init__(self, table: dict[str, list[float]]) -> None:
        self.table = table
        self.calls: list[str] = []

    def fits(self, text: str) -> bool:
        return len(text) <= 100  # stands in for the model's 256-token limit

    def embed(self, texts: Sequence[str]) -> object:
        self.calls.extend(texts)
        rows = np.array([self.table.get(t, [0.0, 0.0, 1.0]) for t in texts], dtype=np.float32)
        return rows / np.linalg.norm(rows, axis=1, keepdims=True)


TABLE = {
    "How do I reset my password?": [1.0, 0.0, 0.0],
    "I forgot my password": at_cosine(0.95),
    "exactly at threshold": at_cosine(0.921),
    "just below threshold": at_cosine(0.918),
    "What is the weather?": unit(80),
}


class FakeClock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def request(
    text: str, *, model: str = "haiku", system: str = "Support bot.", **kw: object
) -> ChatRequest:
    kw.setdefault("temperature", 0)
    messages = (Message.system(system), Message.user(text))
    return ChatRequest(messages=messages, model=model, **kw)  # type: ignore[arg-type]


ANSWER = ChatResponse(content="Use the reset link.", usage=Usage(50, 6), model="claude-haiku-4-5")


def make_cache(
    embedder: TableEmbedder | None = None, clock: FakeClock | None = None, **kw: object
) -> SemanticCache:
    clock = clock or FakeClock()
    index = MemoryVectorIndex(3, clock=clock)
    return SemanticCache(embedder or TableEmbedder(TABLE), index, clock=clock, **kw)  # type: ignore[arg-type]


async def test_similar_question_hits_with_its_similarity_and_cost() -> None:
    cache = make_cache()
    assert await cache.lookup(request("How do I reset my password?")) is None
    assert await cache.store(request("How do I reset my password?"), ANSWER, Decimal("0.0004"))
    hit = await cache.lookup(request("I forgot my password"))
    assert hit is not None
    assert hit.kind == "semantic"
    assert hit.response == ANSWER
    assert hit.cost_usd == Decimal("0.0004")
    assert hit.similarity == pytest.approx(0.95, abs=1e-6)
    assert await cache.lookup(request("What is the weather?")) is None
    assert (cache.stats.hits, cache.stats.misses, cache.stats.stores) == (1, 2, 1)


async def test_threshold_is_inclusive_and_configurable() -> None:
    cache = make_cache(threshold=0.92)
    await cache.store(request("How do I reset my password?"), ANSWER, Decimal(0))
    assert await cache.lookup(request("exactly at threshold")) is not None
    assert await cache.lookup(request("just below threshold")) is None
    strict = make_cache(threshold=0.99)
    await strict.store(request("How do I reset my password?"), ANSWER, Decimal(0))
    assert await strict.lookup(request("I forgot my password")) is None


async def test_a_hit_is_only_for_the_same_model_params_and_system_prompt() -> None:
    cache = make_cache()
    await cache.store(request("How do I reset my password?"), ANSWER, Decimal(0))
    same_text = "How do I reset my password?"
    assert await cache.lookup(request(same_text)) is not None
    assert await cache.lookup(request(same_text, model="opus")) is None
    assert await cache.lookup(request(same_text, max_tokens=5)) is None
    assert await cache.lookup(request(same_text, system="Pirate bot.")) is None


async def test_sampled_requests_are_not_cached() -> None:
    emb = TableEmbedder(TABLE)
    cache = make_cache(emb)
    hot = request("How do I reset my password?", temperature=0.9)
    assert not await cache.store(hot, ANSWER, Decimal(0))
    assert await cache.lookup(hot) is None
    assert cache.stats.skipped == 1  # look-ups that were not cacheable
    assert emb.calls == []  # nothing was embedded


async def test_texts_longer_than_the_model_reads_are_not_used() -> None:
    emb = TableEmbedder(TABLE)
    cache = make_cache(emb)
    long_question = "How do I reset my password? " + "x" * 100
    assert not await cache.store(request(long_question), ANSWER, Decimal(0))
    assert await cache.lookup(request(long_question)) is None
    assert cache.stats.skipped == 1
    assert emb.calls == []


async def test_entries_expire() -> None:
    clock = FakeClock()
    cache = make_cache(clock=clock, ttl_s=60)
    await cache.store(request("How do I reset my password?"), ANSWER, Decimal(0))
    clock.t += 59
    assert await cache.lookup(request("I forgot my password")) is not None
    clock.t += 1
    assert await cache.lookup(request("I forgot my password")) is None


async def test_store_after_a_miss_reuses_the_embedding() -> None:
    emb = TableEmbedder(TABLE)
    cache = make_cache(emb, in_thread=False, memo_size=2)
    q = request("How do I reset my password?")
    await cache.lookup(q)
    await cache.store(q, ANSWER, Decimal(0))
    assert emb.calls == ["How do I reset my password?"]
    for text in ("I forgot my password", "What is the weather?"):
        await cache.lookup(request(text))
    await cache.lookup(q)  # pushed out of the two-entry memo: embedded again
    assert emb.calls.count("How do I reset my password?") == 2


async def test_the_best_match_wins() -> None:
    cache = make_cache(threshold=0.5)
    a = ChatResponse(content="A", usage=Usage(), model="m")
    b = ChatResponse(content="B", usage=Usage(), model="m")
    await cache.store(request("What is the weather?"), a, Decimal(0))
    await cache.store(request("How do I reset my password?"), b, Decimal(0))
    hit = await cache.lookup(request("I forgot my password"))
    assert hit is not None
    assert hit.response.content == "B"


@pytest.mark.parametrize("kw", [{"threshold": 0}, {"threshold": 1.5}, {"ttl_s": 0}])
def test_settings_are_validated(kw: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="semantic cache"):
        make_cache(**kw)


# -- the in-process index -------------------------------------------------------------------


def vec(*xs: float) -> object:
    v = np.array(xs, dtype=np.float32)
    return v / np.linalg.norm(v)


async def test_index_bounds_each_scope_dropping_the_oldest() -> None:
    index = MemoryVectorIndex(3, max_entries_per_scope=3)
    for i in range(5):
        await index.add("s", vec(1, i, 0), str(i).encode(), ttl_s=60)
    assert len(index) == 3
    m = await index.search("s", vec(1, 0, 0), 0.0)  # entries 0 and 1 are gone
    assert m is not None
    assert m.payload == b"2"


async def test_index_bounds_all_scopes_taking_from_the_least_recently_used() -> None:
    index = MemoryVectorIndex(3, max_entries=4)
    for scope in ("old", "new"):
        for i in range(2):
            await index.add(scope, vec(1, i, 0), f"{scope}{i}".encode(), 60)
    await index.search("old", vec(1, 0, 0), 0.0)  # "old" is now the most recently used
    await index.add("third", vec(0, 0, 1), b"t", 60)
    assert len(index) == 4
    m = await index.search("new", vec(1, 0, 0), 0.0)
    assert m is not None
    assert m.payload == b"new1"  # new0 was dropped
    for i in range(3):
        await index.add("third", vec(0, 1, i), b"t", 60)
    assert len(index) == 4
    assert await index.search("new", vec(1, 0, 0), 0.0) is None  # an emptied scope is removed


async def test_index_compacts_expired_entries_and_grows() -> None:
    clock = FakeClock()
    index = MemoryVectorIndex(3, max_entries_per_scope=1000, clock=clock)
    for i in range(40):
        await index.add("s", vec(1, i, 1), b"old", ttl_s=10)
    clock.t += 10
    for i in range(40):
        await index.add("s", vec(1, 0, i / 10), f"{i}".encode(), ttl_s=10)
    m = await index.search("s", vec(1, 0, 0), 0.99)
    assert m is not None
    assert m.payload == b"0"
    assert await index.search("missing", vec(1, 0, 0), 0.0) is None
    await index.clear()
    assert len(index) == 0


class SyncRecorder(MemoryVectorIndex):
    """An in-process index that records sync/search calls (and can fail its sync)."""

    def __init__(self, *, sync_fails: bool = False) -> None:
        super().__init__(3, clock=FakeClock())
        self.calls: list[str] = []
        self.sync_fails = sync_fails

    async def sync(self, scope: str) -> None:
        self.calls.append("sync")
        if self.sync_fails:
            raise ConnectionError("index unreachable")

    async def search(
        self, scope: str, vector: Any, min_similarity: float, *, synced: bool = False
    ) -> Any:
        self.calls.append(f"search(synced={synced})")
        return await super().search(scope, vector, min_similarity, synced=synced)


@pytest.mark.parametrize(
    ("in_thread", "sync_fails", "calls"),
    [
        (True, False, ["sync", "search(synced=True)"]),  # the sync overlaps the embedding
        (True, True, ["sync", "search(synced=False)"]),  # a failed sync: search syncs itself
        (False, False, ["search(synced=False)"]),
    ],
)
async def test_lookup_syncs_the_index_while_embedding(
    in_thread: bool, sync_fails: bool, calls: list[str]
) -> None:
    index = SyncRecorder(sync_fails=sync_fails)
    cache = SemanticCache(TableEmbedder(TABLE), index, in_thread=in_thread)  # type: ignore[arg-type]
    assert await cache.lookup(request("How do I reset my password?")) is None
    assert index.calls == calls
    assert cache.stats.misses == 1 and not cache.stats.errors
