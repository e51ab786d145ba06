"""The OpenAI chat-completions wire format: request bodies out, answers and chunks in.

Pure functions, no I/O, so every case is unit-testable. ``tools``,
``tool_choice``, ``response_format`` and ``extra`` pass through untouched
(``extra`` may override any field but ``stream``/``stream_options``).

When a server sends no ``usage`` (some proxies drop it, some ignore
``stream_options.include_usage``) the tokens are estimated, four characters a
token, rather than logged as zero: a call that happened is never free.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from turnout.pricing.tokens import estimate_prompt_tokens, estimate_tokens
from turnout.types import (
    ChatRequest,
    ChatResponse,
    Message,
    TextDelta,
    ToolCall,
    ToolCallDelta,
    Usage,
)

Delta = TextDelta | ToolCallDelta


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


def encode(body: Mapping[str, Any]) -> bytes:
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


# -- in --------------------------------------------------------------------------------


def load_json(raw: bytes | str, *, what: str = "response body") -> Any:
    """Parse JSON or raise ValueError naming ``what`` (the caller adds provider and model)."""
    try:
        return json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ValueError(
            f"{what} is not valid JSON ({exc.msg}: line {exc.lineno} column {exc.colno})"
        ) from None
    except ValueError:  # bytes that are not UTF-8
        raise ValueError(f"{what} is not valid UTF-8 JSON") from None


def prompt_estimate(request: ChatRequest) -> int:
    return estimate_prompt_tokens(request.messages)


def parse_usage(data: Any) -> Usage | None:
    """``usage`` in OpenAI's shape (``prompt_tokens_details.cached_tokens``), or None."""
    if not isinstance(data, dict):
        return None
    details = data.get("prompt_tokens_details")
    cached = details.get("cached_tokens") if isinstance(details, dict) else None
    if cached is None:
        cached = data.get("prompt_cache_hit_tokens")  # DeepSeek's spelling
    return Usage(_int(data.get("prompt_tokens")), _int(data.get("completion_tokens")), _int(cached))


def _int(value: Any) -> int:
    return value if isinstance(value, int) and value >= 0 else 0


def _arguments(value: Any) -> str:
    if value is None:
        return ""
    return value if isinstance(value, str) else json.dumps(value)


def parse_tool_calls(data: Any) -> tuple[ToolCall, ...]:
    if not data:
        return ()
    if not isinstance(data, list):
        raise ValueError("message.tool_calls is not a list")
    calls = []
    for i, call in enumerate(data):
        fn = call.get("function") if isinstance(call, dict) else None
        if not isinstance(fn, dict) or not isinstance(fn.get("name"), str):
            raise ValueError(f"tool_calls[{i}] has no function name")
        calls.append(
            ToolCall(
                str(call.get("id") or f"call_{i}"), fn["name"], _arguments(fn.get("arguments"))
            )
        )
    return tuple(calls)


def parse_completion(
    data: Any, *, model: str, latency_s: float, prompt_tokens: int
) -> ChatResponse:
    """A ChatResponse from a ``chat.completion`` body; ValueError if it is not one."""
    if not isinstance(data, dict):
        raise ValueError("response body is not a JSON object")
    choices = data.get("choices")
    if not isinstance(choices, list) or not choices:
        raise ValueError("response has no choices")
    choice = choices[0]
    message = choice.get("message") if isinstance(choice, dict) else None
    if not isinstance(message, dict):
        raise ValueError("choices[0] has no message")
    content = message.get("content")
    if content is not None and not isinstance(content, str):
        raise ValueError("choices[0].message.content is not a string")
    tool_calls = parse_tool_calls(message.get("tool_calls"))
    finish = choice.get("finish_reason")
    used = parse_usage(data.get("usage"))
    if used is None:
        out = (content or "") + "".join(c.arguments for c in tool_calls)
        used = Usage(prompt_tokens, estimate_tokens(out), estimated=True)
    answered_by = data.get("model") if isinstance(data.get("model"), str) else model
    return ChatResponse(
        content=content,
        usage=used,
        model=answered_by or model,
        finish_reason=finish if isinstance(finish, str) else None,
        tool_calls=tool_calls,
        latency_s=latency_s,
        response_id=data.get("id") if isinstance(data.get("id"), str) else None,
    )


class StreamState:
    """What a stream has said so far; :meth:`feed` turns one chunk into deltas."""

    __slots__ = ("finish_reason", "model", "output_chars", "response_id", "usage")

    def __init__(self, model: str) -> None:
        self.model = model
        self.finish_reason: str | None = None
        self.usage: Usage | None = None
        self.response_id: str | None = None
        self.output_chars = 0

    def feed(self, chunk: Any) -> list[Delta]:
        """Deltas of one ``chat.completion.chunk``; ValueError if it is not one."""
        if not isinstance(chunk, dict):
            raise ValueError("stream chunk is not a JSON object")
        if self.response_id is None and isinstance(chunk.get("id"), str):
            self.response_id = chunk["id"]
            if isinstance(chunk.get("model"), str) and chunk["model"]:
                self.model = chunk["model"]
        if chunk.get("usage") is not None:
            self.usage = parse_usage(chunk["usage"])
        choices = chunk.get("choices")
        if not choices:
            if choices is None and chunk.get("usage") is None:
                raise ValueError("stream chunk has neither choices nor usage")
            return []
        if not isinstance(choices, list) or not isinstance(choices[0], dict):
            raise ValueError("stream chunk choices is not a list of objects")
        choice = choices[0]
        if choice.get("finish_reason"):
            self.finish_reason = str(choice["finish_reason"])
        delta = choice.get("delta")
        if delta is None:
            return []
        if not isinstance(delta, dict):
            raise ValueError("stream chunk delta is not an object")
        out: list[Delta] = []
        text = delta.get("content")
        if text:
            if not isinstance(text, str):
                raise ValueError("stream chunk delta.content is not a string")
            self.output_chars += len(text)
            out.append(TextDelta(text))
        calls = delta.get("tool_calls")
        if calls:
            out.extend(self._tool_deltas(calls))
        return out

    def _tool_deltas(self, calls: Any) -> list[Delta]:
        if not isinstance(calls, list):
            raise ValueError("stream chunk delta.tool_calls is not a list")
        out: list[Delta] = []
        for position, call in enumerate(calls):
            if not isinstance(call, dict):
                raise ValueError("stream chunk tool call is not an object")
            function = call.get("function")
            fn: dict[str, Any] = function if isinstance(function, dict) else {}
            arguments = _arguments(fn.get("arguments"))
            self.output_chars += len(arguments)
            index = call.get("index")
            out.append(
                ToolCallDelta(
                    index if isinstance(index, int) else position,
                    call.get("id") if isinstance(call.get("id"), str) else None,
                    fn.get("name") if isinstance(fn.get("name"), str) else None,
                    arguments,
                )
            )
        return out

    def final_usage(self, prompt_tokens: int) -> Usage:
        """The usage the server reported, or an estimate if it sent none."""
        if self.usage is not None:
            return self.usage
        return Usage(prompt_tokens, estimate_tokens("x" * self.output_chars), estimated=True)
