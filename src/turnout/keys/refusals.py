"""How a request's key is refused, as OpenAI would say it: the refusal (status, code,
message, type, headers) and the exception carrying it, the refusals of a missing key,
of a rate limit and of a budget, and the budget's soft-limit warning. Messages name the
key, never the key itself."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from turnout.keys.model import VirtualKey
from turnout.limits.budget import SOFT_LIMIT, KeyBudget, KeyBudgetExceeded
from turnout.limits.rate import RateDecision, RateLimitExceeded
from turnout.types import ChatRequest
from turnout.wire.errors import retry_after

BEARER = "bearer "


@dataclass(frozen=True, slots=True)
class Refusal:
    """A request turned away before any model was called, as OpenAI would say it."""

    status: int
    code: str
    message: str
    type: str
    headers: Mapping[str, str] = field(default_factory=dict)
    key: str | None = None

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.type, "param": None,
                          "code": self.code}}  # fmt: skip


class Refused(Exception):
    def __init__(self, refusal: Refusal) -> None:
        self.refusal = refusal
        super().__init__(refusal.message)


WARNING = "x-turnout-budget-warning"


def budget_warning(key: VirtualKey, budget: KeyBudget, used_pico: int) -> str | None:
    """The warning past the soft limit (80%) of ``budget``, ``used_pico`` of it spent or
    held; None below it."""
    cap = budget.pico
    if cap <= 0 or used_pico < SOFT_LIMIT * cap:
        return None
    used = f"{100 * used_pico / cap:.0f}%"
    return f"key {key.name!r} has used {used} of its ${key.budget_usd} {key.period.value} budget"


KINDS: dict[int, tuple[str, Mapping[str, str]]] = {
    401: ("invalid_request_error", {}),
    403: ("permission_error", {}),
    503: ("server_error", {"retry-after": "1"}),  # the key store is away: try again
}
"""OpenAI's error type (and headers) of a key refused with each status."""


def missing_key() -> Refusal:
    message = "missing API key: send 'Authorization: Bearer tk-...'"
    return Refusal(401, "invalid_api_key", message, "invalid_request_error")


def bearer_token(authorization: str | None) -> str | None:
    if not authorization or authorization[:7].lower() != BEARER:
        return None
    return authorization[7:].strip() or None


def rate_refusal(key: VirtualKey, scope: str, decision: RateDecision) -> Refusal:
    what = decision.refused_by or "requests"
    return Refusal(
        429,
        "rate_limit_exceeded",
        str(RateLimitExceeded(f"key {scope!r}", decision)),
        what,
        decision.headers(),
        key.name,
    )


def budget_refusal(
    key: VirtualKey, exc: KeyBudgetExceeded, headers: Mapping[str, str], request: ChatRequest
) -> Refusal:
    from turnout.execution.budget import DEFAULT_OUTPUT_ESTIMATE

    message = str(exc)
    if request.max_tokens is None and exc.state.remaining_pico > 0:
        message += (
            f"; max_tokens is not set, so {DEFAULT_OUTPUT_ESTIMATE} output tokens are held: "
            "a lower max_tokens holds less"
        )
    out = dict(headers)
    out["x-should-retry"] = "false"
    if exc.resets_at is not None:
        out["retry-after"] = retry_after(exc.resets_at - time.time())
    out["x-turnout-budget-remaining-usd"] = str(exc.state.remaining_usd)
    return Refusal(429, "budget_exceeded", message, "insufficient_quota", out, key.name)
