"""Trace records: run, then steps, then attempts (every call, failed ones too).

Costs are Decimal (exact); times are epoch seconds (``started_at``) and
durations in seconds. ``checks`` is a tuple of :class:`~turnout.types.CheckResult`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from types import MappingProxyType
from typing import Any, Literal

from turnout.types import CheckResult

_EMPTY: Mapping[str, Any] = MappingProxyType({})

RunStatus = Literal["running", "succeeded", "failed", "interrupted", "abandoned"]
"""``interrupted``: stopped by Ctrl-C / SIGTERM (or an error before it could finish), its
attempts kept and charged. ``abandoned`` is never written: it is how a ``running`` run
whose writer process is gone reads back (see :mod:`turnout.tracing.liveness`)."""
FINISHED: frozenset[str] = frozenset({"succeeded", "failed"})
"""Run statuses of a run that ran to its end (a bench's finished jobs)."""
StepStatus = Literal["succeeded", "failed", "skipped"]
AttemptStatus = Literal["ok", "error", "rejected"]
"""``rejected``: the call succeeded (and cost money) but a cascade did not accept its answer."""


@dataclass(frozen=True, slots=True)
class AttemptRecord:
    """One call to one model: the unit that costs money."""

    run_id: str
    step_id: str
    attempt: int
    model: str
    provider: str
    tier: str | None
    policy: str
    reason: str
    started_at: float
    latency_s: float
    status: AttemptStatus
    ttft_s: float | None = None
    input_tokens: int = 0
    output_tokens: int = 0
    cached_input_tokens: int = 0
    cost_usd: Decimal = Decimal(0)
    error_class: str | None = None
    error: str | None = None
    cache: str | None = None
    """``exact`` or ``semantic`` when the answer came from the cache (cost 0)."""
    saved_usd: Decimal = Decimal(0)
    """What a cache hit would have cost: the original call's cost."""
    usage_estimated: bool = False
    """The provider reported no usage (e.g. a stream cut before its usage chunk): the
    tokens, and so the cost, are turnout's estimate."""

    @property
    def called(self) -> bool:
        """Whether a provider was called. A cache hit is traced as an attempt (cost 0)
        but called nothing; a model skipped for its open breaker is not traced at all.
        What the gateway's ``x-turnout-attempts`` and ``error.attempts`` count."""
        return self.cache is None


@dataclass(frozen=True, slots=True)
class StepRecord:
    run_id: str
    step_id: str
    kind: str
    status: StepStatus
    started_at: float
    latency_s: float
    model: str | None = None
    tier: str | None = None
    policy: str | None = None
    reason: str | None = None
    ttft_s: float | None = None
    input_tokens: int = 0
    output_tokens: int = 0
    cached_input_tokens: int = 0
    cost_usd: Decimal = Decimal(0)
    calls: int = 0
    score: float | None = None
    checks: tuple[CheckResult, ...] = ()
    output: str | None = None
    error_class: str | None = None
    error: str | None = None
    override_by: str | None = None
    """Who overrode the policy's decision for this step (with ``override_why``)."""
    override_why: str | None = None
    annotation: Mapping[str, str] | None = None
    """The step's ``scope`` / ``domain`` / ``ambiguity``, as the policy saw them."""
    prompt: tuple[Mapping[str, str], ...] = ()
    """The messages sent (``role``, ``content``), so a policy can be replayed offline."""


@dataclass(frozen=True, slots=True)
class RunRecord:
    run_id: str
    workflow: str
    policy: str
    status: RunStatus
    started_at: float
    ended_at: float | None = None
    inputs: Mapping[str, Any] = field(default_factory=lambda: _EMPTY)
    tags: Mapping[str, str] = field(default_factory=lambda: _EMPTY)
    bench_id: str | None = None
    variant: str | None = None
    calls: int = 0
    latency_s: float = 0.0
    input_tokens: int = 0
    output_tokens: int = 0
    cached_input_tokens: int = 0
    cost_usd: Decimal = Decimal(0)
    score: float | None = None
    error: str | None = None
    writer: str | None = None
    """``pid@host`` of the process writing a ``running`` run (so a reader can tell a run
    in flight from one whose process died)."""


@dataclass(frozen=True, slots=True)
class RunTrace:
    """A whole run as read back from a store."""

    run: RunRecord
    steps: tuple[StepRecord, ...]
    attempts: tuple[AttemptRecord, ...]


TraceRecord = RunRecord | StepRecord | AttemptRecord
