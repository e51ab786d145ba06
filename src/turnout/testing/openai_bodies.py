"""JSON bodies in OpenAI's chat-completions wire format, as the fake server sends them.

Token counts are deterministic estimates (about four characters a token) so tests
can predict them: ``prompt_tokens`` counts the text of every message,
``completion_tokens`` the answer (content plus tool-call arguments).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

DEFAULT_REPLY = "Hello from the fake OpenAI server."

_ERRORS: dict[int, tuple[str, str, str | None]] = {
    400: (
        "Invalid request (the fake server was told to refuse it).",
        "invalid_request_error",
        None,
    ),
    401: ("Incorrect API key provided.", "invalid_request_error", "invalid_api_key"),
    403: ("You are not allowed to sample from this model.", "permission_error", None),
    404: ("The model does not exist.", "invalid_request_error", "model_not_found"),
    429: ("Rate limit reached for requests. Please try again later.", "requests", None),
    500: ("The server had an error while processing your request.", "server_error", None),
    503: ("The engine is currently overloaded, please try again later.", "server_error", None),
}

BAD_GATEWAY_HTML = (
    "<html><head><title>502 Bad Gateway</title></head><body><center><h1>502 Bad Gateway"
    "</h1></center><hr><center>nginx</center></body></html>"
)


def estimate_tokens(text: str) -> int:
    return max(1, (len(text) + 3) // 4) if text else 0


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
    messages = body.get("messages") or []
    return "".join(content_text(m.get("content")) for m in messages if isinstance(m, dict))


def echo_last_user(body: Mapping[str, Any]) -> str:
    """A reply function: the text of the last user message."""
    for message in reversed(body.get("messages") or []):
        if isinstance(message, dict) and message.get("role") == "user":
            return content_text(message.get("content"))
    return ""


def default_tool_calls(body: Mapping[str, Any]) -> tuple[tuple[str, str], ...]:
    """One call to the first tool the request offers (``lookup`` if it offers none)."""
    for tool in body.get("tools") or []:
        if isinstance(tool, dict) and isinstance(tool.get("function"), dict):
            return ((str(tool["function"].get("name", "lookup")), '{"query": "fake"}'),)
    return (("lookup", '{"query": "fake"}'),)


def tool_call_objects(calls: Sequence[tuple[str, str]], prefix: str) -> list[dict[str, Any]]:
    return [
        {
            "id": f"call_{prefix}_{i}",
            "type": "function",
            "function": {"name": name, "arguments": arguments},
        }
        for i, (name, arguments) in enumerate(calls)
    ]


def usage(prompt: int, completion: int, cached: int) -> dict[str, Any]:
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": cached},
    }


def completion(
    response_id: str,
    model: str,
    created: int,
    content: str | None,
    finish_reason: str,
    tool_calls: list[dict[str, Any]],
    usage_body: dict[str, Any],
) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": content}
    if tool_calls:
        message["tool_calls"] = tool_calls
    return {
        "id": response_id,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [
            {"index": 0, "message": message, "finish_reason": finish_reason, "logprobs": None}
        ],
        "usage": usage_body,
    }


def chunk(
    response_id: str,
    model: str,
    created: int,
    delta: dict[str, Any] | None,
    finish_reason: str | None = None,
    usage_body: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A ``chat.completion.chunk``; ``delta=None`` makes the usage-only chunk (no choices)."""
    body: dict[str, Any] = {
        "id": response_id,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "choices": []
        if delta is None
        else [{"index": 0, "delta": delta, "finish_reason": finish_reason, "logprobs": None}],
    }
    if usage_body is not None:
        body["usage"] = usage_body
    return body


def stream_deltas(content: str | None, tool_calls: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The deltas of a streamed answer: role first, then words, then tool-call pieces."""
    deltas: list[dict[str, Any]] = [{"role": "assistant", "content": ""}]
    words = (content or "").split(" ")
    deltas.extend(
        {"content": w + (" " if i < len(words) - 1 else "")} for i, w in enumerate(words) if content
    )
    for index, call in enumerate(tool_calls):
        fn = call["function"]
        head = {"index": index, "id": call["id"], "type": "function"}
        deltas.append({"tool_calls": [{**head, "function": {"name": fn["name"], "arguments": ""}}]})
        args: str = fn["arguments"]
        half = len(args) // 2
        for piece in (args[:half], args[half:]):
            deltas.append({"tool_calls": [{"index": index, "function": {"arguments": piece}}]})
    return deltas


def error_body(
    status: int,
    message: str | None = None,
    code: str | None = None,
    error_type: str | None = None,
) -> dict[str, Any]:
    """OpenAI's error shape: ``{"error": {"message", "type", "param", "code"}}``."""
    default_message, default_type, default_code = _ERRORS.get(
        status, (f"HTTP {status} from the fake server.", "server_error", None)
    )
    return {
        "error": {
            "message": message or default_message,
            "type": error_type or default_type,
            "param": None,
            "code": code or default_code,
        }
    }
