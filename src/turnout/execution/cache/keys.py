"""Cache keys: which requests may be cached, and what makes two of them the same.

The exact key is the sha256 of a canonical JSON document holding:

- the model (``request.model``: the executor fills it in before looking up);
- the normalized messages: role, content with trailing whitespace stripped,
  name, tool calls (name and arguments, arguments re-serialized with sorted keys
  when they are JSON) and tool-call ids renumbered in order of appearance
  (providers mint random ids, which must not defeat the cache);
- every parameter that changes the answer: max_tokens, temperature, top_p,
  stop (as a set), seed, tools, tool_choice, response_format and the
  pass-through ``extra`` parameters.

Only deterministic requests are cached: ``temperature == 0``, unless the cache
is configured to cache sampled answers too (``force``).

The semantic cache uses :func:`scope_key` (the same document minus the last
user message) to make sure a hit is only ever for the same model, parameters
and conversation so far, and :func:`semantic_text` for the text it embeds.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from turnout.types import ChatRequest, Message

KEY_VERSION = "turnout-cache-v1"


def is_cacheable(request: ChatRequest, *, force: bool = False) -> bool:
    """True when the request is deterministic (temperature 0), or ``force``.

    A missing temperature means the provider's default (usually 1): sampled,
    so not cached.
    """
    if not request.messages:
        return False
    return force or request.temperature == 0


def normalize_messages(messages: tuple[Message, ...]) -> list[dict[str, Any]]:
    """The parts of the messages that can change the answer, in canonical form."""
    ids: dict[str, str] = {}

    def call_id(raw: str | None) -> str | None:
        if raw is None:
            return None
        return ids.setdefault(raw, f"call_{len(ids)}")

    out: list[dict[str, Any]] = []
    for m in messages:
        item: dict[str, Any] = {"role": m.role, "content": _strip(m.content)}
        if m.name is not None:
            item["name"] = m.name
        if m.tool_calls:
            item["tool_calls"] = [
                {"id": call_id(c.id), "name": c.name, "arguments": _canonical_args(c.arguments)}
                for c in m.tool_calls
            ]
        if m.tool_call_id is not None:
            item["tool_call_id"] = call_id(m.tool_call_id)
        out.append(item)
    return out


def parameters(request: ChatRequest) -> dict[str, Any]:
    """The request's answer-changing parameters, in canonical form."""
    return {
        "max_tokens": request.max_tokens,
        "temperature": None if request.temperature is None else float(request.temperature),
        "top_p": None if request.top_p is None else float(request.top_p),
        "stop": sorted(set(request.stop)),
        "seed": request.seed,
        "tools": list(request.tools),
        "tool_choice": request.tool_choice,
        "response_format": request.response_format,
        "extra": request.extra,
    }


def exact_key(request: ChatRequest) -> str:
    """The exact-match cache key (64 hex digits)."""
    doc = {
        "v": KEY_VERSION,
        "model": request.model,
        "messages": normalize_messages(request.messages),
        "params": parameters(request),
    }
    return _digest(doc)


def semantic_split(request: ChatRequest, *, context: bool = True) -> tuple[str, str] | None:
    """``(scope, text)`` for the semantic cache, or None when there is nothing to embed.

    ``text`` is the last message when it is a user message with text content,
    whitespace-normalized. ``scope`` hashes everything else: model, parameters
    and every message before it (system prompt and earlier turns), so a
    semantic hit never crosses models, parameters or conversations. With
    ``context=False`` only the system messages before it count, so a question
    may hit across conversations that share the system prompt.
    """
    if not request.messages:
        return None
    last = request.messages[-1]
    if last.role != "user" or not last.content or not last.content.strip():
        return None
    doc = {
        "v": KEY_VERSION + "-semantic",
        "model": request.model,
        "messages": normalize_messages(
            request.messages[:-1]
            if context
            else tuple(m for m in request.messages[:-1] if m.role == "system")
        ),
        "params": parameters(request),
    }
    return _digest(doc), semantic_text(last.content)


def semantic_text(content: str) -> str:
    """Whitespace runs collapsed to one space, ends stripped."""
    return " ".join(content.split())


def canonical_json(value: Any) -> str:
    """Sorted keys, no spaces, tuples as lists, mappings as objects."""
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=_default
    )


def _digest(doc: Any) -> str:
    return hashlib.sha256(canonical_json(doc).encode("utf-8")).hexdigest()


def _strip(content: str | None) -> str | None:
    return None if content is None else content.rstrip()


def _canonical_args(arguments: str) -> Any:
    try:
        return {"json": json.loads(arguments)}
    except ValueError:
        return {"text": arguments}


def _default(value: Any) -> Any:
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, set | frozenset):
        return sorted(value, key=repr)
    if isinstance(value, Decimal | bytes):
        return str(value)
    if hasattr(value, "__dataclass_fields__"):
        return {k: getattr(value, k) for k in value.__dataclass_fields__}
    raise TypeError(f"cache key: cannot serialize {type(value).__name__}")
