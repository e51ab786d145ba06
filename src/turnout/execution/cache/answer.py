"""What a cache hit returns: the stored answer and what it cost the first time.

The executor traces a hit as an attempt with cost 0 and ``saved_usd`` equal to
``CachedAnswer.cost_usd`` (the cost of the call that produced the answer).
Answers are stored as JSON (UTF-8 bytes) so every backend, in-process or
Redis, holds the same thing.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any, Literal

from turnout.types import ChatResponse, ToolCall, Usage, WireExtra

CacheKind = Literal["exact", "semantic"]
FORMAT = 1
_UNCACHEABLE_FINISH = frozenset({"content_filter", "error"})
_EXTRA = ("response", "choice", "message", "usage")
"""The parts of an answer's :class:`~turnout.types.WireExtra`, stored when not empty."""


@dataclass(frozen=True, slots=True)
class CachedAnswer:
    """A cache hit. ``response`` is the original answer (its ``latency_s`` is the
    original call's); ``cost_usd`` what that call cost, i.e. what this hit saved.
    ``similarity`` is 1.0 for an exact hit, the cosine for a semantic one."""

    response: ChatResponse
    cost_usd: Decimal
    kind: CacheKind
    key: str
    stored_at: float
    similarity: float = 1.0

    @property
    def saved_usd(self) -> Decimal:
        return self.cost_usd


def storable(response: ChatResponse) -> bool:
    """Whether an answer is worth caching: it has content or tool calls and was
    not cut off by a content filter or an error."""
    if response.finish_reason in _UNCACHEABLE_FINISH:
        return False
    return bool(response.content) or bool(response.tool_calls)


def encode_answer(response: ChatResponse, cost_usd: Decimal, stored_at: float) -> bytes:
    stored: dict[str, Any] = {
        "content": response.content,
        "usage": [
            response.usage.input_tokens,
            response.usage.output_tokens,
            response.usage.cached_input_tokens,
            *((1,) if response.usage.estimated else ()),  # turnout's estimate, not the provider's
        ],
        "model": response.model,
        "finish_reason": response.finish_reason,
        "tool_calls": [[c.id, c.name, c.arguments] for c in response.tool_calls],
        "latency_s": response.latency_s,
        "ttft_s": response.ttft_s,
        "response_id": response.response_id,
    }
    extra = {p: dict(getattr(response.extra, p)) for p in _EXTRA if getattr(response.extra, p)}
    if extra:  # what the upstream said besides (logprobs, ...), replayed with the answer
        stored["extra"] = extra
    doc = {"format": FORMAT, "stored_at": stored_at, "cost_usd": str(cost_usd), "response": stored}
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def decode_answer(
    data: bytes | str, *, kind: CacheKind, key: str, similarity: float = 1.0
) -> CachedAnswer | None:
    """The stored answer, or None when the bytes are not an answer of this format
    (an entry written by another version is a miss, not an error)."""
    try:
        doc: Any = json.loads(data)
        if not isinstance(doc, dict) or doc.get("format") != FORMAT:
            return None
        r = doc["response"]
        inp, out, cached, *estimated = (int(x) for x in r["usage"])
        extra = r.get("extra") or {}
        usage = Usage(inp, out, cached, estimated=bool(estimated and estimated[0]))
        response = ChatResponse(
            content=r["content"],
            usage=usage,
            model=str(r["model"]),
            finish_reason=r["finish_reason"],
            tool_calls=tuple(ToolCall(str(i), str(n), str(a)) for i, n, a in r["tool_calls"]),
            latency_s=float(r["latency_s"]),
            ttft_s=None if r["ttft_s"] is None else float(r["ttft_s"]),
            response_id=r["response_id"],
            extra=WireExtra(**{p: dict(extra[p]) for p in _EXTRA if p in extra}),
        )
        return CachedAnswer(
            response, Decimal(doc["cost_usd"]), kind, key, float(doc["stored_at"]), similarity
        )
    except (ValueError, KeyError, TypeError, InvalidOperation):
        return None
