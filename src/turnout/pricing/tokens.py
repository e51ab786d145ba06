"""Token estimates: the one home of the "about four characters a token" rule.

Used wherever a token count is needed before (or without) a provider's own
count: budget holds before a call, the usage of a stream cut before its usage
chunk, providers that report no usage, test doubles. Every usage built from
these estimates is marked ``Usage.estimated`` so traces can say so.
"""

from __future__ import annotations

from collections.abc import Iterable

from turnout.types import Message, Usage

CHARS_PER_TOKEN = 4
MESSAGE_OVERHEAD_CHARS = 8
"""Role and framing of one chat message, in characters."""


def estimate_tokens(text: str) -> int:
    """About four characters a token; at least one for any non-empty text."""
    return max(1, (len(text) + CHARS_PER_TOKEN - 1) // CHARS_PER_TOKEN) if text else 0


def estimate_prompt_tokens(messages: Iterable[Message]) -> int:
    """The prompt's tokens: every message's text plus a little framing each."""
    chars = sum(len(m.content or "") + MESSAGE_OVERHEAD_CHARS for m in messages)
    return (chars + CHARS_PER_TOKEN - 1) // CHARS_PER_TOKEN if chars else 0


def estimated_usage(messages: Iterable[Message], output: str) -> Usage:
    """The usage of a call that reported none, marked as an estimate."""
    return Usage(estimate_prompt_tokens(messages), estimate_tokens(output), estimated=True)
