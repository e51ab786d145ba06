"""``fallback``: down the chain, each model once.

A retryable failure (429, 5xx, timeout, refused connection, malformed response,
open breaker) or a fault of the model's set-up (its provider refused turnout's key, or
has no such endpoint or model: 401/403/404) moves to the next model; context length
exceeded brings a model with a larger window next (from the chain, else the pool); a
content-filter refusal brings ``Decision.on_content_filter``; any other failure stops
the chain.
"""

from __future__ import annotations

from collections.abc import Sequence

from turnout.errors import ContentFiltered, ContextLengthExceeded, ProviderError
from turnout.providers.pool import ModelPool
from turnout.types import ChatRequest, ChatResponse, Decision


class FallbackRoute:
    judged = False

    def __init__(self, decision: Decision, pool: ModelPool) -> None:
        self.decision = decision
        self.pool = pool
        self.chain = list(decision.models)
        self.i = 0
        self.tried: list[str] = []

    def first(self) -> str:
        self.tried.append(self.chain[0])
        return self.chain[0]

    def after_error(self, model: str, error: ProviderError, *, moving_on: bool) -> str | None:
        nxt = self._reroute(error, moving_on)
        if nxt is None:
            return None
        self.tried.append(nxt)
        return nxt

    def _reroute(self, error: ProviderError, moving_on: bool) -> str | None:
        chain, i = self.chain, self.i
        pick: str | None = None
        if isinstance(error, ContextLengthExceeded):
            pick = self._larger_window(chain[i], chain[i + 1 :])
            if pick is None:
                return None
        elif isinstance(error, ContentFiltered):
            alt = self.decision.on_content_filter
            if alt is None or alt in self.tried:
                return None
            pick = alt
        elif not (error.retryable or error.model_fault or moving_on):
            return None
        if pick is not None:
            self.chain = [*chain[: i + 1], pick, *(m for m in chain[i + 1 :] if m != pick)]
        if self.i + 1 >= len(self.chain):
            return None
        self.i += 1
        return self.chain[self.i]

    def _larger_window(self, model: str, rest: Sequence[str]) -> str | None:
        """The next model with a larger context window: from the chain, else the pool
        (same tier or higher, cheapest first; only models the caller may use)."""
        spec = self.pool.spec(model)
        window = spec.context_window or 0
        for name in rest:
            other = self.pool.spec(name).context_window
            if other is None or other > window:
                return name
        allowed = self.decision.allowed
        candidates = [
            m for m in self.pool.settings.models.values()
            if m.name not in self.tried and (m.context_window or 0) > window
            and m.tier.rank >= spec.tier.rank and (allowed is None or m.name in allowed)
        ]  # fmt: skip
        if not candidates:
            return None
        return min(
            candidates, key=lambda m: (m.price.input + m.price.output, m.context_window)
        ).name

    def judge(self, model: str, request: ChatRequest, response: ChatResponse) -> str | None:
        return None

    def after_reject(self, model: str) -> str | None:
        return None

    def stopped(self, model: str, why: str) -> None:
        pass

    def note(self, answered: str | None, *, kept_rejected: bool = False) -> str | None:
        if answered is None:
            return f"fallback: {' -> '.join(self.tried)} all failed"
        if len(self.tried) == 1:
            return None
        return f"fallback: {' -> '.join(self.tried)}"
