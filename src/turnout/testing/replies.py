"""What the fake server answers: reply functions, default tool calls, how it splits a
stream into chunks. The bodies themselves are :mod:`turnout.wire`'s.

Token counts are deterministic estimates (about four characters a token) so tests
can predict them: ``prompt_tokens`` counts the text of every message,
``completion_tokens`` the answer (content plus tool-call arguments).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from turnout.wire.requests import content_text

DEFAULT_REPLY = "Hello from the fake OpenAI server."

BAD_GATEWAY_HTML = (
    "<html><head><title>502 Bad Gateway</title></head><body><center><h1>502 Bad Gateway"
    "</h1></center><hr><center>nginx</center></body></html>"
)


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
