"""The gate a gateway request passes before any model is called: who is asking (the
virtual key), may it use this policy or model, is it within its rate limits, and does
its budget hold the request's estimate. Then, once answered, the hold is settled.

=================================================  ======  ===========================
refusal                                            status  ``error.code``
=================================================  ======  ===========================
no key, an unknown key                             401     ``invalid_api_key``
a revoked key / an expired key                     401     ``key_revoked`` / ``key_expired``
a policy or model the key may not use              403     ``policy_not_allowed`` /
                                                           ``model_not_allowed``
requests or tokens per minute                      429     ``rate_limit_exceeded``
                                                           (``type``: requests / tokens)
the key's budget for its period                    429     ``budget_exceeded``
=================================================  ======  ===========================

Rate-limit refusals carry OpenAI's ``x-ratelimit-*`` headers and ``retry-after``;
budget refusals ``retry-after`` until the period resets. Admitted requests carry the
rate-limit headers too, and ``x-turnout-budget-remaining-usd``; past 80% of the budget,
``x-turnout-budget-warning``. Messages name the key, never the key itself.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Coroutine, Generator, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from turnout.keys.cache import CachedKeys
from turnout.keys.model import KeyRefused, VirtualKey
from turnout.keys.refusals import (
    KINDS,
    WARNING,
    Refusal,
    Refused,
    bearer_token,
    budget_refusal,
    budget_warning,
    missing_key,
    rate_refusal,
)
from turnout.limits.budget import (
    KeyBudget,
    PaidCall,
    Reservation,
    estimate_request,
)
from turnout.limits.gate import Gate, GateResult, Later, retrieved
from turnout.limits.rate import RateLimit
from turnout.tracing.rows import cost_to_pico, pico_to_cost
from turnout.types import ChatRequest

if TYPE_CHECKING:
    from turnout.observability.metrics import Metrics


@dataclass(frozen=True, slots=True)
class Admission:
    """A request let through: its key, its budget hold, the headers it answers with."""

    key: VirtualKey
    reservation: Reservation | None
    headers: Mapping[str, str]
    counted: GateResult | None = None
    """What the gate counted (its tokens are recounted once the request is answered)."""
    grown: list[Reservation] = field(default_factory=list)
    """Holds taken since, for a streamed answer cut mid-way and continued
    (:meth:`KeyGuard.grow`): released when the request is settled."""

    @property
    def held_pico(self) -> int:
        """All the request holds against its key's budget, in pico-dollars."""
        first = self.reservation.estimate_pico if self.reservation is not None else 0
        return first + sum(r.estimate_pico for r in self.grown)

    def left_after(self, cost: Decimal | None) -> int | None:
        """The budget left, in pico-dollars, as this request saw it once it cost
        ``cost`` (its hold given back; others may have spent since): None without one."""
        reservation = self.reservation
        if reservation is None:
            return None
        spent = cost_to_pico(cost) if cost else 0
        return max(0, reservation.state.remaining_pico + reservation.estimate_pico - spent)

    def headers_after(self, cost: Decimal | None) -> Mapping[str, str]:
        """:attr:`headers`, the budget left counting this request at what it cost (a
        JSON answer's; a stream's headers go out before, counting its hold)."""
        left = self.left_after(cost)
        reservation = self.reservation
        if left is None or reservation is None:
            return self.headers
        headers = {**self.headers, "x-turnout-budget-remaining-usd": str(pico_to_cost(left))}
        headers.pop(WARNING, None)
        warning = budget_warning(self.key, reservation.budget, reservation.budget.pico - left)
        if warning is not None:
            headers[WARNING] = warning
        return headers


class KeyGuard:
    """Admits requests by virtual key, rate limit and budget, through a
    :class:`~turnout.limits.gate.Gate` (in-process, or one Redis round trip)."""

    def __init__(
        self,
        keys: CachedKeys,
        gate: Gate,
        *,
        per_model_limits: bool = False,
        metrics: Metrics | None = None,
    ) -> None:
        self.keys = keys
        self.gate = gate
        self.per_model_limits = per_model_limits
        self.metrics = metrics
        self._refused: OrderedDict[str, float] = OrderedDict()  # key name: when (monotonic)
        if metrics is not None:
            gate.watch_spent(self._spent)
        self._giving_back: set[asyncio.Future[None]] = set()

    def refused_lately(self, name: str) -> bool:
        """Whether key ``name`` was refused by its limits or budget in this process within
        the last second (its next request is decided before any work is done for it)."""
        at = self._refused.get(name)
        return at is not None and time.monotonic() - at < _WARY_S

    async def admit(
        self,
        authorization: str | None,
        request: ChatRequest,
        *,
        policy: str | None,
        models: Sequence[str],
        plans: Sequence[Sequence[PaidCall]],
    ) -> Admission:
        """Raise :class:`Refused` or return the admission. ``policy`` is the policy the
        request names (None when it names a pool model); ``models`` the pool models it
        names; ``plans`` the sets of calls one request may pay for together (the dearest
        set, of the models the key may use, prices the budget hold)."""
        admitting = await self.start(
            authorization, request, policy=policy, models=models, plans=plans
        )
        return await admitting

    async def start(
        self,
        authorization: str | None,
        request: ChatRequest,
        *,
        policy: str | None,
        models: Sequence[str],
        plans: Sequence[Sequence[PaidCall]],
        at_once: bool = True,
    ) -> Admitting:
        """:meth:`admit` in two halves: the key presented is checked now (raises
        :class:`Refused`: 401, 403) and its gate started (one Redis script sent at
        once); awaiting the :class:`Admitting` gives the admission (or raises
        :class:`Refused`), so the shared state decides while the caller prepares.
        ``at_once=False`` when other requests are under way: the script is sent with
        theirs at the end of this turn of the loop (:meth:`Gate.start_admit`)."""
        presented = bearer_token(authorization)
        if presented is None:
            raise Refused(missing_key())
        asked = _Asked(presented, request, policy, tuple(models), plans, at_once)
        seen = self.keys.generation
        try:
            key = await self._key(presented, policy, models, False)
        except Refused:
            # Refused on a cached record (revoked, expired, not allowed): if a key
            # changed since, the record may be stale (a key loosened or renewed on
            # another replica), so decide again on the record as it is now.
            if not self.keys.holds(presented) or not await self._stale(seen):
                raise
            seen = self.keys.generation
            key = await self._key(presented, policy, models, True)
            return Admitting(self, asked, key, seen, fresh=True)
        return Admitting(self, asked, key, seen, fresh=False)

    def _gate(self, key: VirtualKey, asked: _Asked) -> tuple[str, Later[GateResult]]:
        """The scope ``key``'s limits count in, and its gate started."""
        limit = RateLimit(rpm=key.rpm, tpm=key.tpm)
        scope = key.name
        if self.per_model_limits and asked.policy is None and len(asked.models) == 1:
            scope = f"{key.name}|{asked.models[0]}"
        budget = (
            KeyBudget(key.name, key.budget_usd, key.period) if key.budget_usd is not None else None
        )
        request = asked.request
        tokens = _tokens(request) if key.tpm is not None else 0
        estimate = (
            estimate_request(
                [[c for c in plan if key.allows_model(c.model)] for plan in asked.plans], request
            )
            if budget is not None
            else Decimal(0)
        )
        return scope, self.gate.start_admit(
            scope, limit, tokens, budget, estimate, at_once=asked.at_once
        )

    async def identify(self, authorization: str | None) -> VirtualKey:
        """The usable key presented, for requests that call no model (feedback, the
        model list): no limit or budget, but a key changed anywhere is seen at once
        (the generation is read first). Raises :class:`Refused` (401)."""
        presented = bearer_token(authorization)
        if presented is None:
            raise Refused(missing_key())
        return await self._key(presented, None, (), await self._stale(self.keys.generation))

    async def _stale(self, seen: int | None) -> bool:
        """Whether records cached when the key-change generation was ``seen`` may be
        stale: a key changed since (read now from the shared state), or ``seen`` was not
        known yet. False when the generation cannot be read (the cache is trusted)."""
        generation = await self.gate.generation()
        return self.keys.observe(generation, seen) or (seen is None and generation is not None)

    async def _key(
        self, presented: str, policy: str | None, models: Sequence[str], fresh: bool
    ) -> VirtualKey:
        try:
            key = await self.keys.authenticate(presented, fresh=fresh)
            if policy is not None:
                key.check_route(policy=policy)
            for model in models:
                key.check_route(model=model)
        except KeyRefused as exc:
            kind, headers = KINDS.get(exc.status, ("permission_error", {}))
            raise Refused(
                Refusal(exc.status, exc.code, str(exc), kind, headers, key=exc.name)
            ) from None
        return key

    def _outcome(
        self, key: VirtualKey, scope: str, result: GateResult, request: ChatRequest
    ) -> Admission:
        headers: dict[str, str] = {}
        if result.rate is not None:
            headers.update(result.rate.headers())
            if not result.rate.allowed:
                self._was_refused(key.name)
                if self.metrics is not None:
                    limit = result.rate.refused_by or "requests"
                    self.metrics.count_rate_limited(key.name, limit)
                raise Refused(rate_refusal(key, scope, result.rate))
        if result.over_budget is not None:
            self._was_refused(key.name)
            if self.metrics is not None:
                self._spent(result.over_budget.state.budget, result.over_budget.state.spent_pico)
            raise Refused(budget_refusal(key, result.over_budget, headers, request))
        reservation = result.reservation
        if reservation is not None:
            state = reservation.state
            headers["x-turnout-budget-remaining-usd"] = str(state.remaining_usd)
            warning = budget_warning(key, state.budget, state.spent_pico + state.held_pico)
            if warning is not None:
                headers[WARNING] = warning
        return Admission(key, reservation, headers, result)

    def _was_refused(self, name: str) -> None:
        self._refused[name] = time.monotonic()
        self._refused.move_to_end(name)
        if len(self._refused) > _WARY_KEYS:
            self._refused.popitem(last=False)

    def finish_soon(
        self, admission: Admission, cost: Decimal | None, tokens: int | None = None
    ) -> None:
        """Settle the hold to ``cost`` (what the request really cost), or release it
        (``None``: nothing was spent), and recount its tokens against the key's limit to
        ``tokens`` (what its calls used; None: unknown, the count stays), without
        waiting: the gate batches both to the shared state off the request path."""
        if tokens is not None and admission.counted is not None:
            self.gate.recount_soon(admission.counted, tokens)
        reservation = admission.reservation
        if reservation is None:
            return
        self.gate.finish_soon(reservation, cost if cost is not None and cost > 0 else Decimal(0))
        for grown in admission.grown:  # the cost is settled on the first hold
            self.gate.finish_soon(grown, Decimal(0))

    def take_back_soon(self, admission: Admission) -> None:
        """The request called no model (refused after routing: a model the key may not
        use, every breaker open, a cap): it does not count against the key's rate
        limits and its holds are given back, without waiting (awaited on close)."""
        counted = admission.counted
        if counted is None or (counted.rate is None and counted.reservation is None):
            return
        for grown in admission.grown:
            self.gate.finish_soon(grown, Decimal(0))
        self.give_back_soon(self.gate.undo(counted))

    async def finish(self, admission: Admission, cost: Decimal | None) -> None:
        """:meth:`finish_soon`, then wait until the shared state has it."""
        reservation = admission.reservation
        if reservation is None:
            return
        if cost is None or cost <= 0:
            await self.gate.release(reservation)
        else:
            await self.gate.settle(reservation, cost)
        for grown in admission.grown:
            await self.gate.release(grown)

    async def grow(self, admission: Admission, total: Decimal) -> bool:
        """Whether the request may pay ``total`` in all (a streamed answer cut mid-way,
        about to be continued: what it has cost so far and the next call's estimate).
        What its holds lack is held against the key's budget, atomically as any hold
        (no rate limit counted); False, and nothing held, when the budget cannot hold it.
        So an answer cut and continued, however often, keeps within what it holds."""
        reservation = admission.reservation
        if reservation is None:
            return True
        lacking = cost_to_pico(total) - admission.held_pico
        if lacking <= 0:
            return True
        growing = asyncio.ensure_future(
            self.gate.admit(
                admission.key.name, RateLimit(), 0, reservation.budget, pico_to_cost(lacking)
            )
        )
        try:
            result = await asyncio.shield(growing)
        except asyncio.CancelledError:  # the caller gave up: what it took is given back
            growing.add_done_callback(self._give_back_grown)
            raise
        if result.reservation is None:
            if result.over_budget is not None:
                self._spent(reservation.budget, result.over_budget.state.spent_pico)
            return False
        admission.grown.append(result.reservation)
        return True

    def _give_back_grown(self, growing: asyncio.Future[GateResult]) -> None:
        if growing.cancelled() or growing.exception() is not None:
            return
        held = growing.result().reservation
        if held is not None:
            self.gate.finish_soon(held, Decimal(0))

    def _spent(self, budget: KeyBudget, spent_pico: int) -> None:
        """The budget-remaining gauge: what the key has not spent of ``budget`` in its
        period, as the shared state last said (holds in flight are not spent)."""
        if self.metrics is not None:
            self.metrics.set_budget_remaining(budget.name, max(0, budget.pico - spent_pico) / 1e12)

    def give_back_soon(self, giving_back: Coroutine[Any, Any, None]) -> None:
        """Run a give-back off the request path, kept until done (:meth:`given_back`)."""
        task = asyncio.ensure_future(giving_back)
        self._giving_back.add(task)
        task.add_done_callback(self._giving_back.discard)

    async def given_back(self) -> None:
        """Wait for the give-backs under way (requests given up, or taken back)."""
        if self._giving_back:
            await asyncio.gather(*self._giving_back, return_exceptions=True)

    async def key_changed(self) -> None:
        """A key was changed through this process (admin API): every replica rereads."""
        self.keys.forget()
        await self.gate.bump()


@dataclass(frozen=True, slots=True)
class _Asked:
    presented: str
    request: ChatRequest
    policy: str | None
    models: tuple[str, ...]
    plans: Sequence[Sequence[PaidCall]]
    at_once: bool = True


class Admitting:
    """A request's admission under way (:meth:`KeyGuard.start`): :attr:`key` is known
    and may be used, the shared state is deciding the rest. Await it for the
    :class:`Admission` (or :class:`Refused`); awaited again, the same outcome."""

    def __init__(
        self, guard: KeyGuard, asked: _Asked, key: VirtualKey, seen: int | None, *, fresh: bool
    ) -> None:
        self.key = key
        """The key presented; after a key changed elsewhere, its record as it is now."""
        self._guard = guard
        self._asked = asked
        self._seen = seen
        self._fresh = fresh
        self._scope, self._pending = guard._gate(key, asked)
        self._outcome: Admission | Refused | None = None
        self._again: asyncio.Future[GateResult] | None = None

    def __await__(self) -> Generator[Any, None, Admission]:
        return self._concluded().__await__()

    @property
    def wary(self) -> bool:
        """The key was refused lately: better decided before any work is done for it (a
        key past its limits does not make the gateway route every refused request)."""
        return self._guard.refused_lately(self.key.name)

    def abandon(self) -> None:
        """The request was given up before it was admitted (its client hung up): once
        the work under way has finished (the script already sent, a decision awaited
        and given up part-way, a second pass for a key changed elsewhere), what it held
        is given back, off the request path. Nothing sent or awaited yet, or decided
        already: nothing to do."""
        pending = self._pending
        under_way = pending.sent or pending.started or self._again is not None
        if self._outcome is not None or not under_way:
            return
        self._guard.give_back_soon(self._give_back())

    async def _give_back(self) -> None:
        try:
            admission = await self
        except Exception:  # refused, or Redis away: nothing held
            return
        self._guard.finish_soon(admission, None)

    @property
    def admission(self) -> Admission | None:
        """The admission, once awaited and let through (else None)."""
        return self._outcome if isinstance(self._outcome, Admission) else None

    async def _concluded(self) -> Admission:
        if self._outcome is None:
            try:
                self._outcome = await self._decide()
            except Refused as exc:
                self._outcome = exc
        if isinstance(self._outcome, Refused):
            raise self._outcome
        return self._outcome

    async def _decide(self) -> Admission:
        guard = self._guard
        again = self._again
        if again is None:
            result = await self._pending
            if guard.keys.observe(result.generation, self._seen) and not self._fresh:
                # A key changed somewhere since this one was cached: decided again, by
                # a task of its own, so a caller that stops waiting leaves it to finish
                # and awaiting the admission again (to give its hold back) reads its answer
                again = self._again = asyncio.ensure_future(self._decide_again(result))
                again.add_done_callback(retrieved)
        if again is not None:
            result = await asyncio.shield(again)
        return guard._outcome(self.key, self._scope, result, self._asked.request)

    async def _decide_again(self, first: GateResult) -> GateResult:
        """``first`` taken back, and the request decided on its key's record as it is
        now (a revoked key is refused here, at once: raises :class:`Refused`)."""
        guard, asked = self._guard, self._asked
        await guard.gate.undo(first)
        seen = guard.keys.generation
        self.key = await guard._key(asked.presented, asked.policy, asked.models, True)
        self._scope, pending = guard._gate(self.key, asked)
        result = await pending
        guard.keys.observe(result.generation, seen)
        return result


_WARY_S = 1.0
_WARY_KEYS = 10_000


def _tokens(request: ChatRequest) -> int:
    """The tokens a request counts against a key's TPM when admitted: the prompt's
    estimate plus ``max_tokens`` when it sets one, as OpenAI counts (recounted to what
    was used once it is answered)."""
    from turnout.pricing.tokens import request_prompt_tokens

    return request_prompt_tokens(request) + (request.max_tokens or 0)
