"""Token estimates: the one home of the "about four characters a token" rule.

Used wherever a token count is needed before (or without) a provider's own
count: budget holds before a call, the usage of a stream cut before its usage
chunk, providers that report no usage, test doubles. Every usage built from
these estimates is marked ``Usage.estimated`` so traces can say so.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from turnout.types import ChatRequest, Message, Usage

CHARS_PER_TOKEN = 4
MESSAGE_OVERHEAD_CHARS = 12
"""Role and framing of one chat message, in characters (three tokens, as OpenAI counts)."""
REPLY_PRIMING_CHARS = 12
"""The assistant turn every prompt ends with, in characters (three tokens)."""


def estimate_tokens(text: str) -> int:
    """About four characters a token; at least one for any non-empty text."""
    return tokens_of_chars(len(text))


def tokens_of_chars(chars: int) -> int:
    """:func:`estimate_tokens` of a text ``chars`` characters long."""
    return (chars + CHARS_PER_TOKEN - 1) // CHARS_PER_TOKEN if chars > 0 else 0


def estimate_prompt_tokens(
    messages: Iterable[Message], tools: Iterable[Mapping[str, Any]] = ()
) -> int:
    """The prompt's tokens: every message's text, name and tool calls plus a little
    framing each, the tools' definitions (as the JSON sent), and the reply's priming."""
    chars = sum(_message_chars(m) for m in messages)
    if not chars:
        return 0
    chars += REPLY_PRIMING_CHARS + sum(
        len(json.dumps(tool, separators=(",", ":"), default=str)) for tool in tools
    )
    return (chars + CHARS_PER_TOKEN - 1) // CHARS_PER_TOKEN


def request_prompt_tokens(request: ChatRequest) -> int:
    """:func:`estimate_prompt_tokens` of a request: its messages and its tools."""
    return estimate_prompt_tokens(request.messages, request.tools)


def _message_chars(message: Message) -> int:
    chars = len(message.content or "") + len(message.name or "") + MESSAGE_OVERHEAD_CHARS
    chars += len(message.tool_call_id or "")
    for call in message.tool_calls:
        chars += len(call.name) + len(call.arguments) + len(call.id)
    return chars


def estimated_usage(
    messages: Iterable[Message], output: str, tools: Iterable[Mapping[str, Any]] = ()
) -> Usage:
    """The usage of a call that reported none, marked as an estimate."""
    return Usage(estimate_prompt_tokens(messages, tools), estimate_tokens(output), estimated=True)
