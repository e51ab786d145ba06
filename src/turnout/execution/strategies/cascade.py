"""``cascade``: cheapest first, one attempt a rung.

A rung's answer must pass the step's checks (``accept``) and the decision's
answer-quality checks, else the next rung is asked; a failed call moves on to the
next rung too. When every rung was rejected the last answer is kept. With checks
to pass, no answer can be shown before it is judged: streamed, the cascade runs
to its answer and then streams it.
"""

from __future__ import annotations

from collections.abc import Callable

from turnout.errors import ProviderError, error_class_of
from turnout.execution.quality import QualityCheck
from turnout.types import ChatRequest, ChatResponse, Decision

Acceptor = Callable[[ChatResponse], str | None]
"""Judges an answer: None to accept it, or why it is not good enough."""


class CascadeRoute:
    def __init__(self, decision: Decision, accept: Acceptor | None) -> None:
        self.models = decision.models
        self.quality = QualityCheck.build(decision.quality) if decision.quality else None
        self.accept = accept
        self.judged = self.quality is not None or accept is not None
        self.i = 0
        self.steps: list[str] = []

    def first(self) -> str:
        return self.models[0]

    def _next(self) -> str | None:
        self.i += 1
        return self.models[self.i] if self.i < len(self.models) else None

    def after_error(self, model: str, error: ProviderError, *, moving_on: bool) -> str | None:
        self.steps.append(f"{model} failed ({error_class_of(error)})")
        return self._next()

    def judge(self, model: str, request: ChatRequest, response: ChatResponse) -> str | None:
        why = (self.quality.verdict(request, response) if self.quality else None) or (
            self.accept(response) if self.accept else None
        )
        if why is None:
            self.steps.append(f"{model} accepted")
            return None
        self.steps.append(f"{model} rejected ({why})")
        return why

    def after_reject(self, model: str) -> str | None:
        return self._next()

    def stopped(self, model: str, why: str) -> None:
        if why != "total timeout":
            self.steps.append(f"{model} not called ({why})")

    def note(self, answered: str | None, *, kept_rejected: bool = False) -> str | None:
        note = "cascade: " + " -> ".join(self.steps)
        return note + "; kept the last answer" if kept_rejected else note
