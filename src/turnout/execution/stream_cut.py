"""What happens when a stream breaks after tokens reached the caller (``on_stream_cut``).

``continue`` (the default): the next model of the decision (for ``single``, the
same model after backoff) is asked to continue the partial answer. The partial
text goes back as an assistant message followed by a user message asking to go on
exactly where it stopped; the request ends on a user turn, since many current
models refuse an assistant prefill. The caller sees one uninterrupted stream. A
continuation the model rejects is a failure of its own: the next model is tried.

``restart``: the caller said it can discard what it got; a :class:`Restart` event
says so and the next model answers from the beginning.

``fail``: the stream ends with the error that cut it.

A stream is never ended as if it had succeeded when it was cut. Partial tool
calls cannot be continued as text: under ``continue`` such a cut fails.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from turnout.errors import ProviderError
from turnout.types import ChatRequest, Message

CONTINUE_PROMPT = (
    "Your previous answer was cut off. Continue it exactly where it stopped: do not "
    "repeat anything already written and add no preamble."
)


@dataclass(frozen=True, slots=True)
class Restart:
    """The stream from ``failed`` broke after its first token; ``next`` starts over."""

    failed: str
    next: str
    error: str
    cause: ProviderError | None = None
    """The error itself (``error`` is its message)."""


def continuation(request: ChatRequest, partial: str) -> ChatRequest:
    """``request`` asking the model to continue ``partial`` (ends on a user turn)."""
    return replace(
        request,
        messages=(*request.messages, Message.assistant(partial), Message.user(CONTINUE_PROMPT)),
    )
