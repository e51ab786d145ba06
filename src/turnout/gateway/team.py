"""The gateway for a team: virtual keys, rate limits and budgets (through
:class:`~turnout.keys.guard.KeyGuard`), Prometheus metrics and OpenTelemetry spans.

:class:`Team` is opened with the app (after the façade, whose trace store also holds the
keys) and used by the routes: :meth:`Team.admit` before any model is called,
:meth:`Team.done` once a request is answered or refused. With ``executor.state: redis``
the keys' change generation, the limits and the budgets are shared by every replica
(:class:`~turnout.limits.gate_redis.RedisGate`: one Redis round trip before a call);
otherwise they live in the process. A budget hold is settled off the request path.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from turnout.config.settings import Settings
from turnout.execution.budget import estimate_cost
from turnout.gateway.config import GatewayConfig
from turnout.gateway.context import Route
from turnout.keys.cache import CachedKeys, LocalKeyEvents
from turnout.keys.guard import Admission, Admitting, KeyGuard
from turnout.keys.model import VirtualKey, hash_key, same_hash
from turnout.keys.store import KeyStore
from turnout.limits.budget import MemoryBudgets, PaidCall
from turnout.limits.gate import Gate, LocalGate
from turnout.limits.rate import MemoryRateLimiter
from turnout.pricing.cost import Price
from turnout.tracing.store import TraceStore
from turnout.types import ChatRequest

if TYPE_CHECKING:
    from turnout.execution.run import CutSpend
    from turnout.gateway.engine import Answer
    from turnout.limits.ledger import SpendLedger
    from turnout.observability.metrics import Metrics
    from turnout.observability.otel import GenAISpans
    from turnout.tracing.spill import SpillFile

log = logging.getLogger("turnout.gateway")


@dataclass(slots=True)
class Team:
    """The team layer of one gateway process (every part optional)."""

    guard: KeyGuard | None = None
    keys: KeyStore | None = None
    metrics: Metrics | None = None
    spans: GenAISpans | None = None
    admin_hash: str | None = None
    prices: Mapping[str, Price] = field(default_factory=dict)
    reach: Mapping[str, frozenset[str]] = field(default_factory=dict)
    """The pool models each policy may call."""
    plans: Mapping[str, tuple[tuple[PaidCall, ...], ...]] = field(default_factory=dict)
    """Per policy, the sets of calls one request may pay for together
    (:func:`~turnout.workflows.keys.policy_plans`); the dearest prices a budget hold.
    A policy without them: its reach, one model at a time."""
    in_flight: int = 0
    """Chat requests under way in this process (counted by the route): alone, a
    request's gate script is written at once; among others, with theirs."""
    _closers: list[Any] = field(default_factory=list)

    @classmethod
    async def open(
        cls,
        settings: Settings,
        config: GatewayConfig,
        *,
        host: str,
        store: TraceStore | None,
        behind: Callable[[], bool] | None = None,
    ) -> Team:
        """``behind``: whether records the store lacks wait to be written (a spill file
        being replayed); a key's budget is not started from the store meanwhile."""
        from turnout.workflows.keys import policy_plans, policy_reach

        prices = {name: m.price for name, m in settings.models.items()}
        team = cls(
            prices=prices,
            reach={name: frozenset(policy_reach(settings, name)) for name in settings.policies},
            plans={
                name: tuple(
                    tuple(PaidCall(m, prices[m], reads) for m, reads in plan)
                    for plan in policy_plans(settings, name)
                )
                for name in settings.policies
            },
        )
        team.metrics = _metrics()
        team.spans = _spans(settings)
        admin = os.environ.get(config.admin_key_env)
        team.admin_hash = hash_key(admin) if admin else None
        if store is not None:
            team.keys = KeyStore(store)
        if config.auth_for(host) == "none":
            return team
        if store is None:
            from turnout.errors import ConfigError

            raise ConfigError("auth: keys needs a trace store (the keys live in it)",
                              field="gateway.auth")  # fmt: skip
        from turnout.limits.ledger import SpendLedger
        from turnout.tracing.sqlite import SQLiteStore

        offload = not isinstance(store, SQLiteStore)  # a network database: off the loop
        cache = CachedKeys(KeyStore(store), ttl_s=config.key_cache_s, offload=offload)
        ledger = SpendLedger(store, offload=offload, behind=behind)
        gate = await team._gate(settings, ledger)
        cache.shared = not isinstance(gate, LocalGate)  # key changes announced in Redis
        team.guard = KeyGuard(
            cache, gate, per_model_limits=config.per_model_limits, metrics=team.metrics
        )
        return team

    async def _gate(self, settings: Settings, ledger: SpendLedger) -> Gate:
        """The gate of ``settings``' state; a key's budget for a period starts from what
        the trace store holds of its spend (``ledger``), so a restart of the gateway or
        of Redis does not give a key its budget again."""
        executor = settings.executor
        on_degrade = self.metrics.count_degraded if self.metrics is not None else None
        if executor.get("state") != "redis":
            return LocalGate(LocalKeyEvents(), MemoryRateLimiter(), MemoryBudgets(), ledger)
        from turnout.config.schema import redis_of
        from turnout.execution.setup import redis_client
        from turnout.limits.gate_redis import RedisGate

        _, prefix, timeout = redis_of(executor)
        client = redis_client(executor)
        self._closers.append(client)
        gate = RedisGate(
            client, prefix=prefix, timeout_s=timeout, on_degrade=on_degrade, ledger=ledger
        )
        await gate.prepare()
        return gate

    # -- requests ----------------------------------------------------------------------

    async def start_admit(
        self, authorization: str | None, request: ChatRequest, route: Route
    ) -> Admitting | None:
        """None when auth is off; else the key checked (raises
        :class:`~turnout.keys.guard.Refused`) and its admission started: awaited, the
        :class:`~turnout.keys.guard.Admission` (or ``Refused``)."""
        if self.guard is None:
            return None
        plans: Sequence[Sequence[PaidCall]]
        if route.model is not None:
            models: Sequence[str] = (route.model,)
            price = self.prices.get(route.model)
            plans = ((PaidCall(route.model, price),),) if price is not None else ()
        else:
            models = ()
            plans = self.plans.get(route.policy or "") or tuple(
                (PaidCall(m, p),)
                for m, p in self.prices.items()
                if m in self.reach.get(route.policy or "", self.prices)
            )
        return await self.guard.start(
            authorization, request, policy=route.policy, models=models, plans=plans,
            at_once=self.in_flight <= 1,
        )  # fmt: skip

    async def admit(
        self, authorization: str | None, request: ChatRequest, route: Route
    ) -> Admission | None:
        """:meth:`start_admit`, awaited."""
        admitting = await self.start_admit(authorization, request, route)
        return await admitting if admitting is not None else None

    def may_answer(self, key: VirtualKey, policy: str) -> bool:
        """Whether ``policy`` may call any model ``key`` may use (else every request
        through it would be refused)."""
        reach = self.reach.get(policy, frozenset(self.prices))
        return not key.models or any(m in reach for m in key.models)

    async def identify(self, authorization: str | None) -> VirtualKey | None:
        """None when auth is off; else the key presented (raises
        :class:`~turnout.keys.guard.Refused`, 401)."""
        if self.guard is None:
            return None
        return await self.guard.identify(authorization)

    def cut_spend(self, admitting: Admitting) -> CutSpend:
        """For a streamed request through a key: before an answer cut mid-way is
        continued or restarted, the key's budget is asked to hold what the request has
        cost so far and the next call's estimate (its holds grown by what they lack)."""

        async def may_go_on(spent: Decimal, model: str, following: ChatRequest) -> bool:
            admission = admitting.admission
            price = self.prices.get(model)
            if admission is None or self.guard is None or price is None:
                return True
            return await self.guard.grow(admission, spent + estimate_cost(price, following))

        return may_go_on

    def done(
        self,
        *,
        route: Route,
        admission: Admission | None,
        answer: Answer | None,
        latency_s: float,
        error_class: str | None,
        streamed: bool = False,
        max_tokens: int | None = None,
        run_id: str | None = None,
        started_at: float | None = None,
        parent: Mapping[str, str] | None = None,
    ) -> None:
        """Settle the hold (off the request path), count the request, make its spans
        (a request that has no answer, abandoned, too: by ``run_id``), from
        ``started_at`` (when it came; else ``latency_s`` ago), a child of the caller's
        trace context ``parent`` (``traceparent``, ``tracestate``) when it sent one."""
        attempts = tuple(answer.attempts) if answer is not None else ()
        if admission is not None and self.guard is not None:
            if not attempts and error_class not in (None, "abandoned"):
                self.guard.take_back_soon(admission)  # refused after routing, nothing called
            else:
                used = (  # what the providers were asked for and gave: cache hits are free
                    sum(a.input_tokens + a.output_tokens for a in attempts if a.cache is None)
                    if answer is not None
                    else None
                )
                cost = answer.cost if answer is not None else None
                self.guard.finish_soon(admission, cost, used)
        key = admission.key.name if admission is not None else None
        model = answer.model if answer is not None else None
        policy = route.policy or route.label
        if self.metrics is not None:
            self.metrics.observe_request(
                policy=policy, model=model, key=key, error_class=error_class,
                latency_s=latency_s, upstream_s=sum(a.latency_s for a in attempts),
            )  # fmt: skip
            for attempt in attempts:
                self.metrics.observe_attempt(attempt, key)
        if self.spans is not None and (answer is not None or run_id is not None):
            from turnout.observability.otel import RequestSpan

            span = RequestSpan(
                run_id=answer.run_id if answer is not None else run_id or "",
                policy=policy, request_model=route.label, response_model=model,
                started_at=time.time() - latency_s if started_at is None else started_at,
                latency_s=latency_s, key=key, error_type=error_class, max_tokens=max_tokens,
                streamed=streamed, parent=parent,
            )  # fmt: skip
            if answer is not None:
                usage = answer.usage
                span = replace(
                    span,
                    input_tokens=usage.input_tokens,
                    output_tokens=usage.output_tokens,
                    cost_usd=float(answer.cost),
                )
            self.spans.record(span, attempts)

    def refused(
        self,
        route: Route,
        key: str | None,
        code: str,
        started: float,
        run_id: str,
        parent: Mapping[str, str] | None = None,
    ) -> None:
        """Count a request answered without any model call (refused, or one that could
        not be read or routed), and make its span."""
        latency_s = time.perf_counter() - started
        policy = route.policy or route.label or "-"
        if self.metrics is not None:
            self.metrics.observe_request(
                policy=policy, model=None, key=key, error_class=code, latency_s=latency_s
            )
        if self.spans is not None:
            from turnout.observability.otel import RequestSpan

            self.spans.record(
                RequestSpan(
                    run_id=run_id, policy=policy, request_model=route.label or "-",
                    response_model=None, started_at=time.time() - latency_s,
                    latency_s=latency_s, key=key, error_type=code, parent=parent,
                )
            )  # fmt: skip

    def watch_spill(self, spill: SpillFile) -> None:
        """Count the spill file's records in the metrics as they spill or drop (from
        the writer's thread), the ones before now included."""
        if self.metrics is not None:
            spill.watch(self.metrics.count_spill)

    # -- admin -------------------------------------------------------------------------

    def is_admin(self, authorization: str | None) -> bool:
        from turnout.keys.refusals import bearer_token

        token = bearer_token(authorization)
        if self.admin_hash is None or token is None:
            return False
        return same_hash(hash_key(token), self.admin_hash)

    async def key_changed(self) -> None:
        if self.guard is not None:
            await self.guard.key_changed()

    async def aclose(self) -> None:
        if self.guard is not None:
            await self.guard.given_back()  # before the budgets send what they hold
            await self.guard.gate.aclose()
        for closer in self._closers:
            await closer.aclose()
        if self.spans is not None:
            self.spans.shutdown()


def _metrics() -> Metrics | None:
    try:
        from turnout.observability.metrics import Metrics
    except ImportError:  # pragma: no cover - the module itself imports nothing optional
        return None
    try:
        return Metrics()
    except Exception as exc:  # prometheus-client missing: metrics off, said once
        log.info("gateway: no /metrics (%s)", exc)
        return None


def _spans(settings: Settings) -> GenAISpans | None:
    from turnout.observability.otel import GenAISpans, tracer_provider_from_env, upstreams

    provider = tracer_provider_from_env("turnout-gateway")
    return GenAISpans(provider, upstreams(settings)) if provider is not None else None
