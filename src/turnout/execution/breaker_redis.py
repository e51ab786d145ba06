"""Breaker state in Redis, shared by gateway replicas.

Every transition runs inside one Lua script, so it is atomic on the server: two
replicas can never both claim the half-open probe, and failures from every replica
add up in one window.

The common path costs no round trip. Each process keeps a local view of the
breakers (:mod:`turnout.execution.breaker_view`), refreshed from every script reply
it gets anyway and trusted for at most ``view_ttl_s`` (0.25 s; never more than half
the cooldown):

* ``allow`` of a model seen closed within the bound answers at once; an open one
  still cooling down is refused at once; anything else (half-open, a cooldown that
  is over, a view too old) asks Redis, where the probe is claimed atomically;
* ``unavailable()`` (the pool health every request's policy sees) answers from the
  view while it is fresh; otherwise one caller refreshes it in one round trip (the
  models set and every model's state, pipelined) while the others wait for it;
* a success on a breaker seen closed is queued: the queue is one counter per model,
  sent within ``flush_s`` (10 ms) in one pipeline, only counted while the breaker is
  still closed (a queued success never decides a probe), dropped when Redis fails,
  and sent by :meth:`RedisBreakerStore.aclose`. Every other result (a failure, a
  probe's result) is sent at once, after that model's queued successes in the same
  round trip so the failure rate is the true one; the state it returns updates the
  view, so a breaker this process opens is refused here at once.

So a state change made by this process is seen here at once, and one made by
another replica is seen here within ``view_ttl_s``: until then this process may send
a model calls its breaker already refuses elsewhere, as if they had started just
before it opened. ``view_ttl_s=0`` asks Redis on every call. Display (``state``,
``snapshot``) always asks Redis.

The script is run with EVALSHA (never SCRIPT EXISTS first); when Redis answers
NOSCRIPT (it restarted or its scripts were flushed) the script is loaded and the
refused calls are sent once more.

Keys, per model, under a configurable prefix (default ``turnout:breaker``)::

    {prefix}:{model}:s   hash: state, open_until, cooldown, probe_at
    {prefix}:{model}:w   hash: "<bucket>:o" / "<bucket>:f" -> ok / failure counts;
                         buckets older than the window are deleted, and the key
                         expires after two windows without a write
    {prefix}:models      set of the model names seen (for unavailable / snapshot)

Time comes from the Redis server (``TIME`` in the script) so that replicas with
skewed clocks agree; tests pass ``clock=`` to use their own. In Redis Cluster
put a hash tag in the prefix (``{turnout}:breaker``) so a script's keys share a
slot.

When Redis cannot be reached the store fails open (``fail_open=True``): the breakers go
on in the process (``local``, a :class:`~turnout.execution.breaker.MemoryBreakerStore`,
as with one process and no Redis: they learn afresh from the calls made meanwhile),
results queued for Redis are dropped, and a Redis outage never stops traffic. After a
failure Redis is left alone for ``retry_after_s`` (1 s); then one call tries it again
while the others still rest, so a dead or frozen Redis costs one attempt a second, not
one a call. An outage another part of the process found on the same server
(:data:`turnout.limits.degrade.OUTAGES`) is taken at once, and while one caller
refreshes the view the others answer from it as last seen. The first failure is logged
as a warning on ``turnout.breaker`` and the recovery as info. With ``fail_open=False``
the Redis error is raised (a failed background flush has no caller: it is logged).

Give the client short timeouts and no retries of its own (redis-py's default
retries with backoff take seconds per call when Redis is down)::

    Redis.from_url(url, socket_timeout=0.5, socket_connect_timeout=0.5,
                   retry=Retry(NoBackoff(), 0))  # redis.asyncio.retry.Retry

Needs ``pip install redis`` (redis-py >= 5, its asyncio client).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from turnout.execution.breaker import (
    BreakerConfig,
    BreakerState,
    BreakerStatus,
    Clock,
    MemoryBreakerStore,
)
from turnout.execution.breaker_script import LUA, blocked, state_of, status, text
from turnout.execution.breaker_view import BreakerView
from turnout.limits.degrade import OUTAGES, server_of, unreachable
from turnout.limits.lua import Lua

if TYPE_CHECKING:
    from redis.asyncio import Redis

log = logging.getLogger("turnout.breaker")


Call = tuple[str, list[Any]]  # (model, the script's ARGV)


class RedisBreakerStore:
    """A :class:`~turnout.execution.breaker.BreakerStore` in Redis (redis-py asyncio client).

    ``client`` is a ``redis.asyncio.Redis``; the store does not close it, but
    :meth:`aclose` should run before it is closed (it sends the queued successes).
    ``view_ttl_s`` bounds how old the local view may be (0: ask Redis every time);
    ``flush_s`` is how long a success may wait to be sent.
    """

    def __init__(
        self,
        client: Redis,
        *,
        prefix: str = "turnout:breaker",
        clock: Clock | None = None,
        fail_open: bool = True,
        retry_after_s: float = 1.0,
        view_ttl_s: float = 0.25,
        flush_s: float = 0.01,
        local: MemoryBreakerStore | None = None,
    ) -> None:
        from redis.exceptions import RedisError

        self._client = client
        self.prefix = prefix
        self._clock = clock
        self.fail_open = fail_open
        self._errors: tuple[type[Exception], ...] = (RedisError, OSError)
        self._script = Lua(LUA)
        self.last_error: str | None = None  # set while Redis is failing
        self.retry_after_s = retry_after_s
        self._retry_at = 0.0
        self._probe_until = 0.0  # a caller is trying Redis again after a failure
        self._server = server_of(client)  # its outages are shared (turnout.limits.degrade)
        self._view = BreakerView(view_ttl_s, clock or time.monotonic)
        self._refreshing = asyncio.Lock()
        self.flush_s = flush_s
        self._pending: dict[tuple[str, BreakerConfig], int] = {}  # one counter per model
        self._flusher: asyncio.Task[None] | None = None
        self.local = local or MemoryBreakerStore(clock or time.monotonic)
        """The breakers while Redis is away."""

    def _resting(self) -> bool:
        """Redis failed lately: leave it alone. Once ``retry_after_s`` is over, the first
        caller tries it again (the probe) and the others keep resting until that call
        reports (or ``retry_after_s`` more has passed), so a Redis that does not answer
        delays one call, not every call meanwhile."""
        self._take_shared_outage()
        if self._retry_at == 0.0:
            return False
        now = time.monotonic()
        if now < self._retry_at or now < self._probe_until:
            return True
        self._probe_until = now + self.retry_after_s  # this caller is the probe
        return False

    def _failed_lately(self) -> bool:
        self._take_shared_outage()
        return self._retry_at > 0.0 and time.monotonic() < self._retry_at

    def _take_shared_outage(self) -> None:
        """Rest while another part of the process finds this Redis away (failing open:
        a store that raises Redis's errors meets them itself)."""
        if self._server is not None and self.fail_open:
            shared = OUTAGES.until(self._server)
            if shared > self._retry_at:
                self._retry_at = shared

    def _failed(self, op: str, exc: Exception) -> None:
        if not self.fail_open:
            raise exc
        self._retry_at = time.monotonic() + self.retry_after_s
        self._probe_until = 0.0
        if self._server is not None and unreachable(exc):
            OUTAGES.failed(self._server, self._retry_at)
        if self.last_error is None:
            log.warning(
                "breaker store: Redis failed (%s), breakers kept in this process until it "
                "is back: %s",
                op,
                exc,
            )
        self.last_error = f"{op}: {type(exc).__name__}: {exc}"[:300]

    def _ok(self) -> None:
        self._retry_at = self._probe_until = 0.0
        if self._server is not None:
            OUTAGES.answered(self._server)
        if self.last_error is not None:
            log.info("breaker store: Redis is answering again")
            self.last_error = None

    def _keys(self, model: str) -> list[str]:
        return [f"{self.prefix}:{model}:s", f"{self.prefix}:{model}:w", f"{self.prefix}:models"]

    def _args(self, op: str, config: BreakerConfig) -> list[str | float | int]:
        ttl_s = 2 * (config.max_cooldown_s + config.probe_timeout_s + config.window_s)
        return [
            op,
            "" if self._clock is None else repr(self._clock()),
            repr(config.bucket_s),
            config.buckets,
            config.min_requests,
            repr(config.failure_rate),
            repr(config.cooldown_s),
            repr(config.cooldown_multiplier),
            repr(config.max_cooldown_s),
            repr(config.probe_timeout_s),
            int(ttl_s * 1000),
        ]

    # -- talking to Redis: EVALSHA, the script loaded again when Redis lost it ------------

    async def _eval(self, calls: list[Call], *, names: bool = False) -> list[Any]:
        """Run ``calls`` through the script in one round trip (the models set first when
        ``names``); see :class:`~turnout.limits.lua.Lua`."""
        models = f"{self.prefix}:models"
        return await self._script.many(
            self._client,
            [(self._keys(model), args) for model, args in calls],
            first=(lambda pipe: pipe.smembers(models)) if names else None,
        )

    async def _run(self, model: str, args: list[Any]) -> Any:
        return (await self._eval([(model, args)]))[0]

    def _learn(self, model: str, raw: Any, config: BreakerConfig, at: float) -> BreakerState:
        """Cache what a script said of ``model`` (``state, open_until, probe_at, now``)."""
        state = state_of(raw[0])
        open_until, probe_at, now = (float(text(x)) for x in raw[1:4])
        until = open_until if state == "open" else probe_at + config.probe_timeout_s
        self._view.learn(model, state, until if state != "closed" else now, now, at)
        return state

    # -- the request path ------------------------------------------------------------------

    async def allow(self, model: str, config: BreakerConfig) -> bool:
        if self._view.closed(model, config):
            return True
        if self._resting():
            return await self.local.allow(model, config)
        if self._view.cooling(model, config):
            return False
        at = self._view.now()
        try:
            raw = await self._run(model, self._args("allow", config))
        except self._errors as exc:
            self._failed("allow", exc)
            return await self.local.allow(model, config)
        self._ok()
        self._learn(model, raw[1:], config, at)
        return bool(int(raw[0]))

    async def record(self, model: str, ok: bool, config: BreakerConfig) -> BreakerState:
        """A success on a breaker known to be closed is queued and sent within
        ``flush_s``; anything else is sent now (after that model's queued successes,
        in the same round trip, so the failure rate Redis sees is the true one)."""
        if self._failed_lately():
            return await self.local.record(model, ok, config)
        if ok and self._view.closed(model, config):
            self._queue(model, config)
            return "closed"
        if self._resting():  # another call is trying Redis again
            return await self.local.record(model, ok, config)
        calls: list[Call] = []
        queued = self._pending.pop((model, config), 0)
        if queued:
            calls.append((model, [*self._args("oks", config), queued, model]))
        calls.append((model, [*self._args("record", config), "1" if ok else "0", model]))
        at = self._view.now()
        try:
            replies = await self._eval(calls)
        except self._errors as exc:
            self._failed("record", exc)
            return await self.local.record(model, ok, config)
        self._ok()
        return self._learn(model, replies[-1][1:], config, at)

    def _queue(self, model: str, config: BreakerConfig) -> None:
        key = (model, config)
        self._pending[key] = self._pending.get(key, 0) + 1
        loop = asyncio.get_running_loop()
        f = self._flusher
        if f is None or f.done() or f.get_loop() is not loop:
            self._flusher = loop.create_task(self._flush_soon())

    async def _flush_soon(self) -> None:
        """Flush every ``flush_s`` while anything is queued (so a success queued while a
        flush was on its way does not wait for the next one)."""
        while self._pending:
            await asyncio.sleep(self.flush_s)
            try:
                await self.flush()
            except self._errors as exc:  # fail_open=False, and no caller to raise to
                log.warning("breaker store: queued successes were not recorded: %s", exc)

    async def flush(self) -> None:
        """Send the queued successes now, in one round trip (dropped if Redis fails)."""
        if not self._pending:
            return
        batch, self._pending = self._pending, {}
        if self._resting():
            return
        calls = [(m, [*self._args("oks", c), n, m]) for (m, c), n in batch.items()]
        at = self._view.now()
        try:
            replies = await self._eval(calls)
        except self._errors as exc:
            self._failed("record", exc)
            return
        self._ok()
        for (model, config), raw in zip(batch, replies, strict=True):
            self._learn(model, raw[1:], config, at)

    async def aclose(self) -> None:
        """Wait for the background flush (within ``flush_s`` and a round trip), then send
        what is still queued."""
        f, self._flusher = self._flusher, None
        if f is not None and f.get_loop() is asyncio.get_running_loop():
            with contextlib.suppress(Exception):
                await f
        try:
            await self.flush()
        except self._errors as exc:
            log.warning("breaker store: queued successes were not recorded: %s", exc)

    # -- what policies and people see ------------------------------------------------------

    async def _views(
        self, models: list[str], config: BreakerConfig, *, names: bool = False
    ) -> tuple[list[str], list[BreakerStatus]]:
        """The models set (when ``names``; else ``models``) and its models' breakers, in one
        round trip (two when the set holds models not in ``models``)."""
        args = self._args("view", config)
        at = self._view.now()
        replies = await self._eval([(m, args) for m in models], names=names)
        raws = dict(zip(models, replies[1:] if names else replies, strict=True))
        if names:
            found = sorted(text(m) for m in replies[0])
            new = [m for m in found if m not in raws]
            if new:
                raws.update(zip(new, await self._eval([(m, args) for m in new]), strict=True))
            self._view.learn_names(found, at)
            models = found
        statuses = [status(m, raws[m], config) for m in models]
        for m in models:
            raw = raws[m]
            self._learn(m, [raw[0], raw[1], raw[3], raw[6]], config, at)
        return models, statuses

    async def state(self, model: str, config: BreakerConfig) -> BreakerState:
        try:
            _, (seen,) = await self._views([model], config)
        except self._errors as exc:
            self._failed("state", exc)
            return await self.local.state(model, config)
        return seen.state

    async def models(self) -> list[str]:
        """The model names this prefix has seen, sorted."""
        members = await self._client.smembers(f"{self.prefix}:models")
        return sorted(text(m) for m in members)

    async def unavailable(self, config: BreakerConfig) -> frozenset[str]:
        """From the local view while it is fresh; else from Redis, by one caller at a
        time: while it asks, the others answer from the view as last seen (they wait
        only when nothing was seen yet), and a caller that waited does not ask again
        when that call failed."""
        known = self._view.unavailable(config)
        if known is not None:
            return known
        if self._refreshing.locked():
            seen = self._view.unavailable(config, any_age=True)
            if seen is not None:
                return seen
        if self._resting():
            return await self.local.unavailable(config)
        async with self._refreshing:
            known = self._view.unavailable(config)
            if known is not None:
                return known
            if self._failed_lately():
                return await self.local.unavailable(config)
            try:
                _, views = await self._views(sorted(self._view.names), config, names=True)
            except self._errors as exc:
                self._failed("unavailable", exc)
                return await self.local.unavailable(config)
        self._ok()
        return frozenset(v.model for v in views if blocked(v))

    async def retry_in(self, model: str, config: BreakerConfig) -> float | None:
        """From what this process last learned of ``model`` (an ``allow`` that was refused
        has just learned it), without a round trip; while Redis is away, from the breakers
        kept in the process."""
        seen = self._view.retry_in(model)
        return seen if seen is not None else await self.local.retry_in(model, config)

    async def snapshot(self, config: BreakerConfig) -> Mapping[str, BreakerStatus]:
        """Every model's breaker, the queued successes counted; while Redis is away,
        the breakers kept in the process (raises instead with ``fail_open=False``)."""
        await self.flush()
        try:
            _, views = await self._views(sorted(self._view.names), config, names=True)
        except self._errors as exc:
            self._failed("snapshot", exc)
            return await self.local.snapshot(config)
        return {v.model: v for v in views}

    async def reset(self, model: str | None = None) -> None:
        models = [model] if model is not None else await self.models()
        for m in models:
            s, w, _ = self._keys(m)
            await self._client.delete(s, w)
            await self._client.srem(f"{self.prefix}:models", m)
        self._pending = {k: n for k, n in self._pending.items() if model not in (None, k[0])}
        self._view.forget(model)
