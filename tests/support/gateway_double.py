"""An in-process stand-in for the façade: answers (or fails) as told, records calls."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from turnout.errors import TurnoutError
from turnout.tracing.records import AttemptRecord
from turnout.types import ChatResponse, StreamEnd, StreamEvent, TextDelta, Usage


def call(model: str = "haiku", n: int = 1, error_class: str | None = None) -> AttemptRecord:
    """One traced call to ``model`` (failed with ``error_class``, if given)."""
    status = "error" if error_class else "ok"
    return AttemptRecord("r", "chat", n, model, "hosted", "efficient", "rules", "why", 0.0, 0.1,
                         status, error_class=error_class)  # fmt: skip


@dataclass
class FakeAnswer:
    ok: bool = True
    response: ChatResponse | None = None
    model: str | None = "haiku"
    policy: str | None = "rules"
    reason: str | None = "domain docs → efficient"
    attempts: Sequence[AttemptRecord] = (call(),)
    usage: Usage = field(default_factory=lambda: Usage(12, 3))
    cost: Decimal = Decimal("0.0000270")
    run_id: str | None = None
    error: TurnoutError | None = None


@dataclass
class FakeStream:
    events: list[StreamEvent | TurnoutError]
    final: FakeAnswer
    delay: float = 0.0
    answer: FakeAnswer | None = None
    closed: bool = False
    decision: Any = None
    model: str | None = None

    def __aiter__(self) -> AsyncGenerator[StreamEvent, None]:
        return self._run()

    async def _run(self) -> AsyncGenerator[StreamEvent, None]:
        try:
            for event in self.events:
                if self.delay:
                    await asyncio.sleep(self.delay)
                if isinstance(event, TurnoutError):
                    self.answer = self.final
                    raise event
                if isinstance(event, StreamEnd):
                    self.answer = self.final
                yield event
        finally:
            self.closed = True


@dataclass
class FakeEngine:
    answer: FakeAnswer = field(default_factory=FakeAnswer)
    events: list[StreamEvent | TurnoutError] | None = None
    delay: float = 0.0
    calls: list[dict[str, Any]] = field(default_factory=list)
    streams: list[FakeStream] = field(default_factory=list)
    cancelled: int = 0

    async def chat(self, messages: Any, **options: Any) -> FakeAnswer:
        self.calls.append({"messages": messages, **options})
        try:
            if self.delay:
                await asyncio.sleep(self.delay)
        except asyncio.CancelledError:
            self.cancelled += 1
            raise
        return self.answer

    def stream(self, messages: Any, **options: Any) -> FakeStream:
        self.calls.append({"messages": messages, **options, "stream": True})
        events = self.events
        if events is None:
            events = [
                TextDelta("Hello "),
                TextDelta("there."),
                StreamEnd("stop", Usage(12, 3), "haiku"),
            ]
        stream = FakeStream(list(events), self.answer, self.delay)
        self.streams.append(stream)
        return stream


def ok_answer(text: str = "Hello there.") -> FakeAnswer:
    return FakeAnswer(response=ChatResponse(text, Usage(12, 3), "claude-haiku-4-5", "stop"))
