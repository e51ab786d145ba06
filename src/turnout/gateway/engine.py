"""What the gateway needs from the library façade (:class:`turnout.Turnout`): ``chat``
and ``stream``. Written as protocols so the routes can be unit-tested with a double."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Sequence
from decimal import Decimal
from typing import Any, Protocol

from turnout.errors import TurnoutError
from turnout.execution.stream_cut import Restart
from turnout.tracing.records import AttemptRecord
from turnout.types import ChatResponse, Decision, StreamEvent, Usage


class Answer(Protocol):
    @property
    def ok(self) -> bool: ...
    @property
    def response(self) -> ChatResponse | None: ...
    @property
    def model(self) -> str | None: ...
    @property
    def policy(self) -> str: ...
    @property
    def reason(self) -> str: ...
    @property
    def attempts(self) -> Sequence[AttemptRecord]: ...
    @property
    def usage(self) -> Usage: ...
    @property
    def cost(self) -> Decimal: ...
    @property
    def run_id(self) -> str: ...
    @property
    def error(self) -> TurnoutError | None: ...


class AnswerStream(Protocol):
    def __aiter__(self) -> AsyncGenerator[StreamEvent | Restart, None]: ...
    @property
    def answer(self) -> Answer | None: ...
    @property
    def decision(self) -> Decision | None:
        """What the policy decided (known once the first event comes)."""
        ...

    @property
    def model(self) -> str | None:
        """The pool model whose answer is streaming now."""
        ...


class Engine(Protocol):
    async def chat(self, messages: Any, **options: Any) -> Answer: ...
    def stream(self, messages: Any, **options: Any) -> AnswerStream: ...
    async def feedback(
        self,
        run_id: str,
        *,
        passed: bool | None,
        score: float | None,
        by: str,
        step: str,
        key_name: str | None = None,
    ) -> None: ...
