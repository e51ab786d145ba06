"""What a strategy tells the walk (:mod:`turnout.execution.strategies.chain`).

A route names the first model, the next one after a failure (and whether to pause
first: only before asking the same model again), and judges answers. The walk
does the rest identically for every strategy and both modes.
"""

from __future__ import annotations

from typing import Protocol

from turnout.errors import ProviderError
from turnout.types import ChatRequest, ChatResponse


class Route(Protocol):
    judged: bool
    """Answers must be judged whole before any of them is shown (never streamed live)."""

    def first(self) -> str: ...

    def after_error(self, model: str, error: ProviderError, *, moving_on: bool) -> str | None:
        """The model to ask next, or None to stop. ``moving_on``: the failed attempt was a
        continuation the model rejected, so go on to another model if there is one."""
        ...

    def judge(self, model: str, request: ChatRequest, response: ChatResponse) -> str | None:
        """None to accept the answer, else why not (then :meth:`after_reject`)."""
        ...

    def after_reject(self, model: str) -> str | None: ...

    def stopped(self, model: str, why: str) -> None:
        """The walk stopped before (or while) asking ``model``: a budget cap, the total
        timeout."""
        ...

    def note(self, answered: str | None, *, kept_rejected: bool = False) -> str | None:
        """What the strategy did, for the step's reason (None: nothing worth saying);
        ``kept_rejected``: no answer passed, the last one was kept."""
        ...
