"""The caches serve streamed calls too: a temperature-0 answer from the exact cache is
replayed as a stream, and a streamed answer is stored for the next request."""

from __future__ import annotations

from typing import Any

from turnout.config import settings_from_dict
from turnout.execution.cache import ExactCache, MemoryBackend
from turnout.execution.executor import Executor
from turnout.providers import FunctionProvider
from turnout.providers.pool import ModelPool
from turnout.types import ChatRequest, Decision, Message, StreamEnd, TextDelta, Usage

CONFIG: dict[str, Any] = {
    "providers": {"p": {"kind": "openai", "base_url": "http://127.0.0.1:9/v1"}},
    "models": {"m": {"provider": "p", "id": "m-1", "tier": "efficient",
                     "price": {"input": 1, "output": 2}}},
}  # fmt: skip
ASK = ChatRequest((Message.user("Which team handles refunds?"),), temperature=0)
D = Decision(("m",), "r", "p")


def executor() -> tuple[Executor, FunctionProvider]:
    settings = settings_from_dict(CONFIG)
    provider = FunctionProvider(
        lambda r: "billing",
        stream_fn=lambda r: [
            TextDelta("bill"),
            TextDelta("ing"),
            StreamEnd("stop", Usage(9, 2), "m-1"),
        ],
    )
    pool = ModelPool(settings, providers={"p": provider})
    return Executor(pool, caches=[ExactCache(MemoryBackend())]), provider


async def stream(ex: Executor) -> tuple[str, Any]:
    s = ex.stream(D, ASK, run_id="r", step_id="s")
    events = [e async for e in s]
    assert isinstance(events[-1], StreamEnd)
    return "".join(e.text for e in events if isinstance(e, TextDelta)), s.execution


async def test_a_cached_answer_is_replayed_as_a_stream() -> None:
    ex, provider = executor()
    first = await ex.execute(D, ASK, run_id="r", step_id="s")
    assert first.ok and first.attempts[0].cache is None
    text, out = await stream(ex)
    assert text == "billing" and len(provider.calls) == 1  # not asked again
    [hit] = out.attempts
    assert hit.cache == "exact" and hit.cost_usd == 0 and hit.saved_usd == first.cost > 0


async def test_a_streamed_answer_is_stored_for_the_next_request() -> None:
    ex, provider = executor()
    text, out = await stream(ex)
    assert text == "billing" and out.attempts[0].cache is None
    again = await ex.execute(D, ASK, run_id="r", step_id="s")
    assert again.response is not None and again.response.text == "billing"
    assert again.attempts[0].cache == "exact" and len(provider.calls) == 1
