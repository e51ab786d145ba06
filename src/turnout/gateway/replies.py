"""What a successful request looks like on the wire: the ``chat.completion`` body, the
``chat.completion.chunk`` events of a stream, and the headers that say what happened.

``model`` in every body is the pool model that answered. Headers on every response:
``x-request-id`` (the trace's run id), ``x-turnout-policy``, ``x-turnout-model``,
``x-turnout-reason``, ``x-turnout-attempts`` (the calls made to providers: a cache hit
makes none) and, for JSON, ``x-turnout-cost-usd`` and ``x-turnout-usage-estimated: true``
when some of ``usage`` is turnout's estimate (a stream's headers leave before its usage
is known: its trace marks it).
A stream's usage chunk (``stream_options.include_usage``) carries ``cost_usd`` next
to the token counts. What the answering upstream said that turnout does not read itself
(``logprobs``, a ``refusal``, ``system_fingerprint``, usage details: its
:class:`~turnout.types.WireExtra`) goes back where it was.
"""

from __future__ import annotations

import time
from decimal import Decimal
from typing import Any

from turnout.gateway.engine import Answer
from turnout.pricing.money import usd_exact
from turnout.types import NO_EXTRA, StreamEnd, TextDelta, ToolCallDelta, Usage, WireExtra
from turnout.wire import responses as wire
from turnout.wire.jsonio import encode

_HEADER_LIMIT = 300
_MARK = "\x00turnout-text\x00"
_MARK_JSON = encode(_MARK)


def header_value(text: str) -> str:
    """A value safe for an HTTP header: one line, ASCII, at most 300 characters."""
    flat = " ".join(text.split()).encode("ascii", "replace").decode("ascii")
    return flat if len(flat) <= _HEADER_LIMIT else flat[: _HEADER_LIMIT - 1] + "~"


def answer_headers(answer: Answer | None, run_id: str, *, cost: bool = True) -> dict[str, str]:
    headers = {"x-request-id": run_id}
    if answer is None:
        return headers
    if answer.policy:
        headers["x-turnout-policy"] = header_value(answer.policy)
    if answer.model:
        headers["x-turnout-model"] = header_value(answer.model)
    if answer.reason:
        headers["x-turnout-reason"] = header_value(answer.reason)
    headers["x-turnout-attempts"] = str(sum(1 for a in answer.attempts if a.called))
    if cost:
        headers["x-turnout-cost-usd"] = usd_exact(answer.cost)
    if answer.usage.estimated:
        headers["x-turnout-usage-estimated"] = "true"
    return headers


def usage_body(usage: Usage, cost: Decimal, extra: WireExtra = NO_EXTRA) -> dict[str, Any]:
    """``usage`` with turnout's counts and cost, and the upstream's other usage fields."""
    u = usage
    body = wire.usage(u.input_tokens, u.output_tokens, u.cached_input_tokens, extra.usage)
    body["cost_usd"] = float(cost)
    return body


def completion_body(answer: Answer, response_id: str) -> dict[str, Any]:
    """The ``chat.completion`` body of a successful answer."""
    response = answer.response
    assert response is not None
    calls = [
        {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
        for c in response.tool_calls
    ]
    finish = response.finish_reason or ("tool_calls" if calls else "stop")
    return wire.completion(
        response_id,
        answer.model or response.model,
        int(time.time()),
        response.content,
        finish,
        calls,
        usage_body(answer.usage, answer.cost, response.extra),
        response.extra,
    )


def _top(extra: WireExtra) -> WireExtra:
    """Only the top-level fields of ``extra`` (``system_fingerprint``): those every chunk
    of an upstream's answer carries, the role, finish and usage chunks too."""
    return WireExtra(extra.response) if extra.response else NO_EXTRA


class ChunkEncoder:
    """Stream events to SSE bytes, exactly as OpenAI frames them: a first chunk with the
    role, content and tool-call deltas (one chunk each, with what its upstream chunk said
    besides), a last chunk with ``finish_reason``, the usage-only chunk when asked for,
    then ``data: [DONE]``."""

    def __init__(self, response_id: str, model: str, *, include_usage: bool) -> None:
        self.response_id = response_id
        self.model = model
        self.include_usage = include_usage
        self.created = int(time.time())
        self.started = False
        self._text: tuple[str, WireExtra, bytes, bytes] | None = None
        """The model and top-level fields the text frame was made for, and the frame."""

    def _text_chunk(self, text: str, extra: WireExtra) -> bytes:
        """A content chunk with only top-level fields besides: the frame around the text
        is encoded once per model and such fields, only the text each time (the same
        bytes as :meth:`_chunk`, a fraction of the work)."""
        made, top = self._text, extra.response
        if (
            made is None
            or made[0] != self.model
            or (made[1].response is not top and made[1].response != top)
        ):
            whole = self._chunk({"content": _MARK}, extra=extra)
            head, _, tail = whole.partition(_MARK_JSON)
            made = self._text = (self.model, extra, head, tail)
        return made[2] + encode(text) + made[3]

    def _chunk(
        self,
        delta: dict[str, Any] | None,
        finish: str | None = None,
        usage: dict[str, Any] | None = None,
        extra: WireExtra = NO_EXTRA,
    ) -> bytes:
        return wire.sse(
            wire.chunk(self.response_id, self.model, self.created, delta, finish, usage, extra)
        )

    def delta(self, event: TextDelta | ToolCallDelta) -> bytes:
        """A delta's chunk, with what its upstream chunk said besides (``logprobs``, a
        ``refusal``, ``system_fingerprint``), after the role chunk if it is the first."""
        extra = event.extra
        head = b""
        if not self.started:
            self.started = True
            head = self._chunk({"role": "assistant", "content": ""}, extra=_top(extra))
        if isinstance(event, TextDelta):
            if not (extra.choice or extra.message):
                return head + self._text_chunk(event.text, extra)
            return head + self._chunk({"content": event.text} if event.text else {}, extra=extra)
        call = wire.tool_call_delta(event.index, event.id, event.name, event.arguments)
        return head + self._chunk({"tool_calls": [call]}, extra=extra)

    def end(self, end: StreamEnd, cost: Decimal) -> bytes:
        top = _top(end.extra)
        out = b"" if self.started else self._chunk({"role": "assistant", "content": ""}, extra=top)
        self.started = True
        out += self._chunk({}, end.finish_reason or "stop", extra=top)
        if self.include_usage:
            out += self._chunk(None, usage=usage_body(end.usage, cost, end.extra), extra=top)
        return out + wire.SSE_DONE

    @staticmethod
    def error(body: dict[str, Any]) -> bytes:
        """The in-band error event of a stream that cannot be completed (no ``[DONE]``)."""
        return wire.sse(body)
