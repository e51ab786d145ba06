"""What one decision's execution did: its attempts (in order), errors and outcome."""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from decimal import Decimal

from turnout.config.settings import ModelSpec
from turnout.errors import AllAttemptsFailed, ProviderError, TurnoutError
from turnout.execution.budget import Budget
from turnout.tracing.records import AttemptRecord, AttemptStatus
from turnout.types import ChatResponse, Decision, Usage


@dataclass(slots=True)
class Ledger:
    """Every attempt of one decision, failed ones too, each cost counted once."""

    run_id: str
    step_id: str
    decision: Decision
    budget: Budget | None = None
    attempts: list[AttemptRecord] = field(default_factory=list)
    errors: list[ProviderError] = field(default_factory=list)
    queued_s: float = 0.0
    fatal: TurnoutError | None = None
    """A failure that stops the whole decision (a budget cap): nothing more may be spent."""

    @property
    def cost(self) -> Decimal:
        return sum((a.cost_usd for a in self.attempts), Decimal(0))

    def record(
        self,
        spec: ModelSpec,
        started_at: float,
        latency: float,
        status: AttemptStatus,
        usage: Usage,
        response: ChatResponse | None,
        *,
        error: ProviderError | None = None,
        cache: str | None = None,
        saved: Decimal = Decimal(0),
    ) -> AttemptRecord:
        """Append one attempt (a cache hit costs nothing) and return it."""
        d = self.decision
        record = AttemptRecord(
            run_id=self.run_id,
            step_id=self.step_id,
            attempt=len(self.attempts) + 1,
            model=spec.name,
            provider=spec.provider,
            tier=spec.tier.value,
            policy=d.policy,
            reason=d.reason,
            started_at=started_at,
            latency_s=latency,
            status=status,
            ttft_s=response.ttft_s if response is not None else None,
            input_tokens=usage.input_tokens,
            output_tokens=usage.output_tokens,
            cached_input_tokens=usage.cached_input_tokens,
            cost_usd=Decimal(0) if cache else spec.price.cost(usage),
            error_class=error.error_class if error else None,
            error=str(error)[:500] if error else None,
            cache=cache,
            saved_usd=saved,
            usage_estimated=usage.estimated and cache is None,
        )
        self.attempts.append(record)
        return record

    def reject(self, index: int, why: str) -> None:
        """Mark a successful attempt whose answer a cascade did not accept."""
        a = self.attempts[index]
        self.attempts[index] = replace(a, status="rejected", error_class="rejected", error=why)

    def absorb(self, other: Ledger) -> None:
        """Take over a sub-ledger's attempts (an ensemble member's), renumbered (and their
        errors with them)."""
        offset = len(self.attempts)
        for a in other.attempts:
            self.attempts.append(replace(a, attempt=a.attempt + offset))
        for e in other.errors:
            if e.attempt is not None:
                e.attempt += offset
        self.errors.extend(other.errors)
        self.queued_s = max(self.queued_s, other.queued_s)
        self.fatal = self.fatal or other.fatal

    def failure(self) -> TurnoutError:
        """The error a decision that found no answer ends with."""
        if self.fatal is not None:
            return self.fatal
        if len(self.errors) == 1:
            return self.errors[0]
        return AllAttemptsFailed(self.step_id, self.errors)


@dataclass(frozen=True, slots=True)
class Execution:
    """The outcome of one decision: the answer (or the error) and every attempt."""

    decision: Decision
    attempts: tuple[AttemptRecord, ...]
    response: ChatResponse | None = None
    model: str | None = None
    error: TurnoutError | None = None
    latency_s: float = 0.0
    queued_s: float = 0.0
    note: str | None = None
    """What the strategy did, e.g. ``cascade: smol rejected (...) -> qwen accepted``."""

    @property
    def ok(self) -> bool:
        return self.response is not None

    @property
    def cost(self) -> Decimal:
        return sum((a.cost_usd for a in self.attempts), Decimal(0))

    def explained(self) -> Decision:
        """The decision with what the execution adds to its reason (a fallback, a cascade's
        rungs), without repeating what the policy already said: a fallback policy's reason
        lists the chain, so it says which model answered after which failed instead."""
        note = self.note
        d = self.decision
        if not note:
            return d
        if d.strategy == "fallback" and self.model is not None and note.startswith("fallback: "):
            failed = dict.fromkeys(
                a.model for a in self.attempts if a.status == "error" and a.model != self.model
            )
            if failed:
                return replace(d, reason=f"{d.reason}; answered by {self.model} after "
                               f"{', '.join(failed)} failed")  # fmt: skip
        return d if note in d.reason else replace(d, reason=f"{d.reason}; {note}")

    @property
    def usage(self) -> Usage:
        """Every attempt's tokens, added up (what the decision consumed)."""
        total = Usage()
        for a in self.attempts:
            total = total + Usage(
                a.input_tokens, a.output_tokens, a.cached_input_tokens, a.usage_estimated
            )
        return total

    @classmethod
    def of(
        cls,
        ledger: Ledger,
        response: ChatResponse | None,
        model: str | None,
        error: TurnoutError | None,
        started: float,
        note: str | None,
    ) -> Execution:
        return cls(
            ledger.decision, tuple(ledger.attempts), response, model,
            None if response is not None else error,
            latency_s=time.perf_counter() - started - ledger.queued_s,
            queued_s=ledger.queued_s, note=note,
        )  # fmt: skip
