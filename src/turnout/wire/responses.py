"""Chat-completions answers, both directions: completion and chunk bodies.

In (a client reading a provider): :func:`parse_completion` and :class:`StreamState`.
When a server sends no ``usage`` (some proxies drop it, some ignore
``stream_options.include_usage``), or a count in it is null, the tokens are
estimated, four characters a token, rather than logged as zero: a call that
happened is never free.

What an answer says that turnout does not read itself (``logprobs``, a ``refusal``,
``system_fingerprint``, usage details...) is kept in a
:class:`~turnout.types.WireExtra`, by where it was, and put back there on the way out.

Out (a server answering): :func:`completion`, :func:`chunk` and :func:`usage` build
the bodies exactly as OpenAI sends them.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from turnout.pricing.tokens import estimate_tokens, tokens_of_chars
from turnout.types import (
    NO_EXTRA,
    ChatResponse,
    TextDelta,
    ToolCall,
    ToolCallDelta,
    Usage,
    WireExtra,
)
from turnout.wire.jsonio import encode

Delta = TextDelta | ToolCallDelta

# the fields turnout reads (or writes) itself, at each level of an answer: the rest is extra
_RESPONSE_OWN = frozenset({"id", "object", "created", "model", "choices", "usage", "obfuscation"})
"""Top-level fields turnout reads (or, ``obfuscation``, OpenAI's random padding of each
chunk's size, meaningless once re-encoded: passed on, it changed every chunk's extras and
cost a full re-encoding a chunk) and does not pass through."""
_CHOICE_OWN = frozenset({"index", "message", "delta", "finish_reason"})
_MESSAGE_OWN = frozenset({"role", "content", "tool_calls"})
_USAGE_OWN = frozenset({"prompt_tokens", "completion_tokens", "total_tokens"})


# -- in --------------------------------------------------------------------------------


Estimate = int | Callable[[], int]
"""A token estimate, or how to make it: made only when a count is missing (it walks the
prompt's messages and tools)."""


def _made(estimate: Estimate) -> int:
    return estimate if isinstance(estimate, int) else estimate()


def parse_usage(data: Any, *, prompt_estimate: Estimate, output_estimate: Estimate) -> Usage:
    """``usage`` in OpenAI's shape (``prompt_tokens_details.cached_tokens``). A count that
    is missing or null (or no ``usage`` at all) is unknown, not zero: the estimate stands
    in for it and the usage is marked estimated."""
    if not isinstance(data, dict):
        data = {}
    details = data.get("prompt_tokens_details")
    cached = details.get("cached_tokens") if isinstance(details, dict) else None
    if cached is None:
        cached = data.get("prompt_cache_hit_tokens")  # DeepSeek's spelling
    prompt, output = _count(data.get("prompt_tokens")), _count(data.get("completion_tokens"))
    return Usage(
        _made(prompt_estimate) if prompt is None else prompt,
        _made(output_estimate) if output is None else output,
        _count(cached) or 0,
        estimated=prompt is None or output is None,
    )


def rest(data: Any, own: frozenset[str]) -> dict[str, Any]:
    """The fields of ``data`` (an object) that are not in ``own`` and have a value."""
    if not isinstance(data, dict) or data.keys() <= own:  # the common case, fast
        return {}
    return {k: v for k, v in data.items() if v is not None and k not in own}


def _merge(into: dict[str, Any], part: Mapping[str, Any]) -> None:
    """Add one chunk's fields to the answer's so far, as OpenAI's SDK accumulates a
    stream: text and lists are appended to, objects merged, anything else replaced
    (``into`` owns its containers: the chunk's are never changed)."""
    for key, value in part.items():
        old = into.get(key)
        if isinstance(old, str) and isinstance(value, str):
            into[key] = old + value
        elif isinstance(old, list) and isinstance(value, list):
            old.extend(value)
        elif isinstance(old, dict) and isinstance(value, dict):
            _merge(old, value)
        else:
            into[key] = _own(value)


def _own(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _own(v) for k, v in value.items()}
    return list(value) if isinstance(value, list) else value


def _count(value: Any) -> int | None:
    """A token count, or None when there is none (missing, null, not a count)."""
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


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
    data: Any, *, model: str, latency_s: float, prompt_tokens: Estimate
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
    extra = WireExtra(
        rest(data, _RESPONSE_OWN),
        rest(choice, _CHOICE_OWN),
        rest(message, _MESSAGE_OWN),
        rest(data.get("usage"), _USAGE_OWN),
    )

    def output() -> int:
        said = (content or "") + "".join(c.arguments for c in tool_calls) + extra.output_text()
        return estimate_tokens(said)

    used = parse_usage(data.get("usage"), prompt_estimate=prompt_tokens, output_estimate=output)
    answered_by = data.get("model") if isinstance(data.get("model"), str) else model
    return ChatResponse(
        content=content,
        usage=used,
        model=answered_by or model,
        finish_reason=finish if isinstance(finish, str) else None,
        tool_calls=tool_calls,
        latency_s=latency_s,
        response_id=data.get("id") if isinstance(data.get("id"), str) else None,
        extra=extra,
    )


class StreamState:
    """What a stream has said so far; :meth:`feed` turns one chunk into deltas.

    What a chunk says that turnout does not read itself rides on its first delta
    (``extra``: the chunk's own fields, its choice's such as ``logprobs``, its delta's
    such as ``refusal``; a chunk with nothing else becomes an empty :class:`TextDelta`),
    and every delta carries the chunk's top-level fields (``system_fingerprint``).
    :meth:`extra` adds them up into the whole answer's."""

    __slots__ = (
        "_choice", "_message", "_response", "_top", "_top_only", "finish_reason", "model",
        "output_chars", "response_id", "usage",
    )  # fmt: skip

    def __init__(self, model: str) -> None:
        self.model = model
        self.finish_reason: str | None = None
        self.usage: Any = None
        """The last ``usage`` the server sent (None: none yet)."""
        self.response_id: str | None = None
        self.output_chars = 0
        self._top: Mapping[str, Any] = NO_EXTRA.response
        self._top_only = NO_EXTRA  # a WireExtra of _top alone
        self._response: dict[str, Any] = {}
        self._choice: dict[str, Any] = {}
        self._message: dict[str, Any] = {}

    def feed(self, chunk: Any) -> list[Delta]:
        """Deltas of one ``chat.completion.chunk``; ValueError if it is not one."""
        if not isinstance(chunk, dict):
            raise ValueError("stream chunk is not a JSON object")
        if self.response_id is None and isinstance(chunk.get("id"), str):
            self.response_id = chunk["id"]
            if isinstance(chunk.get("model"), str) and chunk["model"]:
                self.model = chunk["model"]
        if chunk.get("usage") is not None:
            self.usage = chunk["usage"]
        top = rest(chunk, _RESPONSE_OWN)
        if top != self._top:  # one object while it stays the same (the gateway keys on it)
            self._top, self._top_only = top, WireExtra(top) if top else NO_EXTRA
            self._response.update(top)
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
        if delta is not None and not isinstance(delta, dict):
            raise ValueError("stream chunk delta is not an object")
        said, besides = rest(choice, _CHOICE_OWN), rest(delta, _MESSAGE_OWN)
        if said or besides:
            _merge(self._choice, said)
            _merge(self._message, besides)
            extra = WireExtra(self._top, said, besides)
            self.output_chars += len(extra.output_text())
        else:
            extra = self._top_only
        out: list[Delta] = []
        text = delta.get("content") if delta else None
        if text:
            if not isinstance(text, str):
                raise ValueError("stream chunk delta.content is not a string")
            self.output_chars += len(text)
            out.append(TextDelta(text, extra))
        calls = delta.get("tool_calls") if delta else None
        if calls:
            later = self._top_only
            out.extend(self._tool_deltas(calls, later if out else extra, later))
        if not out and (said or besides):
            out.append(TextDelta("", extra))
        return out

    def extra(self) -> WireExtra:
        """What the whole answer said besides, so far: its chunks' top-level fields (the
        last value of each), their choices' and deltas' added up as OpenAI's SDK does, and
        its ``usage``'s."""
        usage = rest(self.usage, _USAGE_OWN)
        said = (_own(self._response), _own(self._choice), _own(self._message))  # frozen from now
        return WireExtra(*said, usage) if any(said) or usage else NO_EXTRA

    def _tool_deltas(self, calls: Any, first: WireExtra, later: WireExtra) -> list[Delta]:
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
                    later if out else first,
                )
            )
        return out

    def final_usage(self, prompt_tokens: Estimate) -> Usage:
        """The usage the server reported, estimated where it reported none."""
        output = tokens_of_chars(self.output_chars)
        return parse_usage(self.usage, prompt_estimate=prompt_tokens, output_estimate=output)


# -- out -------------------------------------------------------------------------------


def tool_call_objects(calls: Sequence[tuple[str, str]], prefix: str) -> list[dict[str, Any]]:
    """``tool_calls`` entries for (name, arguments) pairs, ids ``call_<prefix>_<i>``."""
    return [
        {
            "id": f"call_{prefix}_{i}",
            "type": "function",
            "function": {"name": name, "arguments": arguments},
        }
        for i, (name, arguments) in enumerate(calls)
    ]


def usage(
    prompt: int, completion: int, cached: int, extra: Mapping[str, Any] = NO_EXTRA.usage
) -> dict[str, Any]:
    """A ``usage`` body; ``extra``: the upstream's other usage fields, put back (its
    ``prompt_tokens_details`` with ``cached_tokens`` set to ``cached``)."""
    details = extra.get("prompt_tokens_details")
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        **extra,
        "prompt_tokens_details": {
            **(details if isinstance(details, dict) else {}),
            "cached_tokens": cached,
        },
    }


def completion(
    response_id: str,
    model: str,
    created: int,
    content: str | None,
    finish_reason: str,
    tool_calls: list[dict[str, Any]],
    usage_body: dict[str, Any],
    extra: WireExtra = NO_EXTRA,
) -> dict[str, Any]:
    """A ``chat.completion`` body; ``extra``: what the upstream said besides, put back
    where it was (its ``usage`` part goes to :func:`usage`)."""
    message: dict[str, Any] = {"role": "assistant", "content": content, **extra.message}
    if tool_calls:
        message["tool_calls"] = tool_calls
    choice = {"index": 0, "message": message, "finish_reason": finish_reason, "logprobs": None}
    return {
        "id": response_id,
        "object": "chat.completion",
        "created": created,
        "model": model,
        **extra.response,
        "choices": [{**choice, **extra.choice}],
        "usage": usage_body,
    }


def chunk(
    response_id: str,
    model: str,
    created: int,
    delta: dict[str, Any] | None,
    finish_reason: str | None = None,
    usage_body: dict[str, Any] | None = None,
    extra: WireExtra = NO_EXTRA,
) -> dict[str, Any]:
    """A ``chat.completion.chunk``; ``delta=None`` makes the usage-only chunk (no choices).
    ``extra``: what the upstream chunk said besides, put back where it was."""
    choices: list[dict[str, Any]] = []
    if delta is not None:
        choice = {"index": 0, "delta": {**delta, **extra.message}, "finish_reason": finish_reason}
        choices.append({**choice, "logprobs": None, **extra.choice})
    body: dict[str, Any] = {
        "id": response_id,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        **extra.response,
        "choices": choices,
    }
    if usage_body is not None:
        body["usage"] = usage_body
    return body


SSE_DONE = b"data: [DONE]\n\n"


def sse(body: Mapping[str, Any]) -> bytes:
    """One server-sent event carrying ``body``, as OpenAI frames its chunks."""
    return b"data: " + encode(body) + b"\n\n"


def tool_call_delta(
    index: int, call_id: str | None, name: str | None, arguments: str
) -> dict[str, Any]:
    """One entry of a chunk's ``delta.tool_calls``: id, type and name only when known."""
    out: dict[str, Any] = {"index": index}
    if call_id is not None:
        out["id"] = call_id
        out["type"] = "function"
    function: dict[str, Any] = {"arguments": arguments}
    if name is not None:
        function["name"] = name
    out["function"] = function
    return out
