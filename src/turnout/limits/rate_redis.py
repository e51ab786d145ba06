"""The sliding-window rate limiter in Redis: one Lua script, so it is exact across
replicas (see :mod:`turnout.limits.rate` for the algorithm and why).

Keys, per scope (a key name, or ``name|model``), under ``prefix`` (default
``turnout:rl``); the scope is a hash tag, so in Redis Cluster a scope's keys share a
slot::

    {prefix}:{scope}:log   sorted set of admitted requests "<id>:<tokens>" (score: ms)
    {prefix}:{scope}:sum   the sum of their tokens (kept only with a tpm limit)

Each expires one window after its last write. One log serves both limits: its size is
the request count, its entries carry the tokens; so a call takes about seven Redis
commands inside the script, not the eleven of a log per limit (``ZADD``, ``PEXPIRE``,
the trim and the oldest entry once, not twice). Time comes from the Redis server
(``TIME``), so replicas with skewed clocks agree; tests may pass ``clock=``.

Every call has a timeout; when Redis fails the request is decided by the in-process
limiter (:class:`~turnout.limits.degrade.Degrader`): per-process limits, a warning,
a metric; never an outage.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from itertools import chain
from typing import TYPE_CHECKING, Any

from turnout.limits.batch import Batch
from turnout.limits.degrade import Degrader, server_of
from turnout.limits.ids import entry_id
from turnout.limits.lua import Call, Lua
from turnout.limits.rate import WINDOW_S, MemoryRateLimiter, RateDecision, RateLimit

if TYPE_CHECKING:
    from redis.asyncio import Redis
    from redis.commands.core import AsyncScript

    from turnout.limits.pipelined import Pipelined

SERVER_NOW_LUA = r"""
local function server_now(arg)
  local now = tonumber(arg)
  if not now then
    local t = redis.call('TIME')
    now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  end
  return now
end
"""

RATE_LUA = r"""
local function count_of(entry) return tonumber(string.match(entry, ':(%d+)$')) end
local function rate_admit(lk, sk, now, window, rpm, tpm, tokens, member)
  local edge = now - window
  local used, dirty = 0, false
  if tpm > 0 then
    used = tonumber(redis.call('GET', sk) or '0')
    local expired = redis.call('ZRANGEBYSCORE', lk, '-inf', edge)
    if #expired > 0 then
      for i = 1, #expired do used = used - count_of(expired[i]) end
      used, dirty = math.max(0, used), true
      redis.call('ZREMRANGEBYSCORE', lk, '-inf', edge)
    end
  else
    redis.call('ZREMRANGEBYSCORE', lk, '-inf', edge)
  end
  local count = 0
  if rpm > 0 then count = redis.call('ZCARD', lk) end
  local wait_r, wait_t = 0, 0
  if rpm > 0 and count >= rpm then
    local e = redis.call('ZRANGE', lk, count - rpm, count - rpm, 'WITHSCORES')
    wait_r = tonumber(e[2]) + window - now
  end
  if tpm > 0 and used + tokens > tpm then
    if tokens > tpm then
      wait_t = -1
    else
      local need, freed = used + tokens - tpm, 0
      local entries = redis.call('ZRANGE', lk, 0, -1, 'WITHSCORES')
      for i = 1, #entries, 2 do
        freed = freed + count_of(entries[i])
        if freed >= need then wait_t = tonumber(entries[i + 1]) + window - now; break end
      end
    end
  end
  local allowed = wait_r <= 0 and wait_t == 0
  if allowed then  -- tokens are logged only when they are summed (a tpm limit)
    redis.call('ZADD', lk, now, member .. ':' .. (tpm > 0 and tokens or 0))
    redis.call('PEXPIRE', lk, window)
    if rpm > 0 then count = count + 1 end
    if tpm > 0 then used, dirty = used + tokens, true end
  end
  if dirty then redis.call('SET', sk, string.format('%d', used), 'PX', window) end
  local reset_r, reset_t = 0, 0
  if count > 0 or used > 0 then
    local newest = now  -- admitted, the entry just logged is the newest: a full reset
    if not allowed then
      local o = redis.call('ZRANGE', lk, -1, -1, 'WITHSCORES')
      newest = o[2] and tonumber(o[2]) or nil
    end
    if newest then
      local reset = newest + window - now
      if count > 0 then reset_r = reset end
      if used > 0 then reset_t = reset end
    end
  end
  return {allowed and 1 or 0, count, used, math.floor(wait_r), math.floor(wait_t),
          math.floor(reset_r), math.floor(reset_t)}
end
local function rate_undo(lk, sk, member, tokens, window)  -- tokens: as logged
  if redis.call('ZREM', lk, member .. ':' .. tokens) == 1 and tokens > 0 then
    local used = redis.call('GET', sk)
    if used then
      local left = math.max(0, tonumber(used) - tokens)
      redis.call('SET', sk, string.format('%d', left), 'PX', window)
    end
  end
end
"""

_RECOUNT = r"""
local window = tonumber(ARGV[1])
local olds, news, changes, seen = {}, {}, {}, {}
for i = 2, #ARGV, 3 do
  local old = ARGV[i] .. ':' .. ARGV[i + 1]
  if not seen[old] then  -- an admission named twice is recounted once
    seen[old] = true
    olds[#olds + 1] = old
    news[#news + 1] = ARGV[i] .. ':' .. ARGV[i + 2]
    changes[#changes + 1] = tonumber(ARGV[i + 2]) - tonumber(ARGV[i + 1])
  end
end
local scores = redis.call('ZMSCORE', KEYS[1], unpack(olds))
local gone, added, change = {}, {}, 0
for i = 1, #olds do
  if scores[i] then
    gone[#gone + 1] = olds[i]
    added[#added + 1] = scores[i]
    added[#added + 1] = news[i]
    change = change + changes[i]
  end
end
if #gone > 0 then
  redis.call('ZREM', KEYS[1], unpack(gone))
  redis.call('ZADD', KEYS[1], unpack(added))
  local used = tonumber(redis.call('GET', KEYS[2]) or '0') + change
  redis.call('SET', KEYS[2], string.format('%d', math.max(0, used)), 'PX', window)
  redis.call('PEXPIRE', KEYS[1], window)
end
return 1
"""
"""Recount admissions of one scope to the tokens they used: ARGV window, then
(member, counted, used) triples; an entry that has left the window is left alone. Six
commands a batch, not six an admission (the script once cost Redis more than the gate's
own at concurrency 16)."""

_RECOUNTS_PER_CALL = 1000  # Lua's unpack has a limit

_LUA = (
    SERVER_NOW_LUA
    + RATE_LUA
    + r"""
return rate_admit(KEYS[1], KEYS[2], server_now(ARGV[1]), tonumber(ARGV[2]),
                  tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5]), ARGV[6])
"""
)


def rate_keys(prefix: str, scope: str) -> list[str]:
    """The two keys of a scope's log (the scope is their hash tag)."""
    base = f"{prefix}:{{{scope}}}"
    return [f"{base}:log", f"{base}:sum"]


def rate_decision(reply: Sequence[Any], limit: RateLimit) -> RateDecision:
    """``rate_admit``'s seven numbers as a decision."""
    allowed, count, used, wait_r, wait_t, reset_r, reset_t = (int(v) for v in reply)
    never = wait_t < 0
    return RateDecision(
        allowed=bool(allowed),
        limit=limit,
        requests=count,
        tokens=used,
        reset_requests_s=reset_r / 1000,
        reset_tokens_s=reset_t / 1000,
        retry_after_s=None if allowed or never else max(wait_r, wait_t) / 1000,
        shared=True,
    )


class RedisRateLimiter:
    """:class:`~turnout.limits.rate.RateLimiter` shared by every process on ``redis``."""

    def __init__(
        self,
        redis: Redis,
        *,
        prefix: str = "turnout:rl",
        window_s: float = WINDOW_S,
        timeout_s: float = 0.5,
        retry_after_s: float = 1.0,
        on_degrade: Callable[[str], None] | None = None,
        clock: Callable[[], float] | None = None,
        local: MemoryRateLimiter | None = None,
        pipelined: Pipelined | None = None,
    ) -> None:
        self.redis = redis
        self.prefix = prefix
        self.window_ms = int(window_s * 1000)
        self._clock = clock
        self._script: AsyncScript = redis.register_script(_LUA)
        self.local = local or MemoryRateLimiter(window_s=window_s)
        self.degrader = Degrader(
            "rate limits", timeout_s=timeout_s, retry_after_s=retry_after_s,
            on_degrade=on_degrade, server=server_of(redis),
        )  # fmt: skip
        self._recount = Lua(_RECOUNT)
        self._pipelined = pipelined
        self._recounts: Batch[tuple[str, str, int, int]] = Batch(
            self._send_recounts, what="rate limits"
        )

    def recount_soon(self, scope: str, member: str, counted: int, used: int) -> None:
        """Recount the admission ``member`` of ``scope`` from ``counted`` tokens to
        ``used`` without waiting (batched; lost, never wrong, if Redis is away: the
        entry leaves the window within a minute anyway)."""
        if counted != used:
            self._recounts.add((scope, member, counted, max(0, used)))

    async def _send_recounts(self, items: list[tuple[str, str, int, int]]) -> None:
        by_scope: dict[str, list[tuple[str, int, int]]] = {}
        for scope, member, counted, used in items:
            by_scope.setdefault(scope, []).append((member, counted, used))
        n = _RECOUNTS_PER_CALL
        calls: list[Call] = [
            (rate_keys(self.prefix, scope), [self.window_ms, *chain(*triples[i : i + n])])
            for scope, triples in by_scope.items()
            for i in range(0, len(triples), n)
        ]

        async def shared() -> None:
            if self._pipelined is not None:
                await self._pipelined.evalsha_many(self._recount, calls)
            else:
                await self._recount.many(self.redis, calls)

        await self.degrader.attempt(shared)

    async def admit(self, scope: str, limit: RateLimit, tokens: int = 0) -> RateDecision:
        if not limit:
            return RateDecision(allowed=True, limit=limit)

        async def shared() -> RateDecision:
            return await self._admit(scope, limit, tokens)

        return await self.degrader.run(shared, lambda: self.local.admit_now(scope, limit, tokens))

    async def _admit(self, scope: str, limit: RateLimit, tokens: int) -> RateDecision:
        now = "" if self._clock is None else str(int(self._clock() * 1000))
        args: list[Any] = [
            now, self.window_ms, limit.rpm or 0, limit.tpm or 0, max(0, tokens),
            entry_id(),
        ]  # fmt: skip
        reply = await self._script(keys=rate_keys(self.prefix, scope), args=args)
        return rate_decision(reply, limit)

    async def prepare(self) -> bool:
        """Load the Lua scripts and open a connection now, not on the first request;
        False (and per-process state for now) when Redis cannot be reached."""

        async def load() -> None:
            self._script.sha = await self.redis.script_load(self._script.script)

        return await self.degrader.attempt(load)

    async def aclose(self) -> None:
        await self._recounts.drain()
        await self.local.aclose()
