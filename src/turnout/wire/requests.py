"""Chat-completions request bodies, both directions.

Out (a client calling a provider): :func:`request_body` builds the JSON body for a
:class:`~turnout.types.ChatRequest`. ``tools``, ``tool_choice``, ``response_format``
and ``extra`` pass through untouched (``extra`` may override any field but
``stream``/``stream_options``).

In (a server receiving one): :func:`prompt_text` reads the prompt out of a body.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from turnout.providers.function import estimate_tokens
from turnout.types import ChatRequest, Message

# -- out -------------------------------------------------------------------------------


def message_to_wire(message: Message) -> dict[str, Any]:
    out: dict[str, Any] = {"role": message.role}
    if message.role == "assistant" and message.tool_calls:
        out["content"] = message.content
        out["tool_calls"] = [
            {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
            for c in message.tool_calls
        ]
    else:
        out["content"] = message.content if message.content is not None else ""
    if message.role == "tool" and message.tool_call_id is not None:
        out["tool_call_id"] = message.tool_call_id
    if message.name is not None:
        out["name"] = message.name
    return out


def request_body(request: ChatRequest, *, model: str, stream: bool) -> dict[str, Any]:
    """The JSON body of ``POST /chat/completions`` for ``request``."""
    body: dict[str, Any] = {
        "model": model,
        "messages": [message_to_wire(m) for m in request.messages],
    }
    if request.max_tokens is not None:
        body["max_tokens"] = request.max_tokens
    if request.temperature is not None:
        body["temperature"] = request.temperature
    if request.top_p is not None:
        body["top_p"] = request.top_p
    if request.stop:
        body["stop"] = list(request.stop)
    if request.seed is not None:
        body["seed"] = request.seed
    if request.tools:
        body["tools"] = [dict(t) for t in request.tools]
    if request.tool_choice is not None:
        body["tool_choice"] = request.tool_choice
    if request.response_format is not None:
        body["response_format"] = dict(request.response_format)
    if request.extra:
        body.update(request.extra)
    if stream:
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
    else:
        body.pop("stream", None)
        body.pop("stream_options", None)
    return body


# -- in --------------------------------------------------------------------------------


def prompt_estimate(request: ChatRequest) -> int:
    return estimate_tokens("".join(m.content or "" for m in request.messages))


def content_text(content: Any) -> str:
    """The text of a message ``content``: a string or a list of ``{"type": "text"}`` parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            str(p.get("text", ""))
            for p in content
            if isinstance(p, dict) and p.get("type") == "text"
        )
    return ""


def prompt_text(body: Mapping[str, Any]) -> str:
    """The text of every message of a request body, concatenated."""
    messages = body.get("messages") or []
    return "".join(content_text(m.get("content")) for m in messages if isinstance(m, dict))
