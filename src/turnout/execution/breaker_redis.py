"""Breaker state in Redis, shared by gateway replicas.

Every transition runs inside one Lua script, so it is atomic on the server: two
replicas can never both claim the half-open probe, and a failure that opens the
breaker is seen by every replica at once.

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

When Redis cannot be reached the store fails open (``fail_open=True``): every
model is allowed and results are dropped, so a Redis outage never stops
traffic. After a failure Redis is left alone for ``retry_after_s`` (1 s), so a
dead Redis costs one connection attempt a second, not one a call. The first
failure is logged as a warning on ``turnout.breaker`` and the recovery as info.
With ``fail_open=False`` the Redis error is raised.

Give the client short timeouts and no retries of its own (redis-py's default
retries with backoff take seconds per call when Redis is down)::

    Redis.from_url(url, socket_timeout=0.5, socket_connect_timeout=0.5,
                   retry=Retry(NoBackoff(), 0))

Needs ``pip install redis`` (redis-py >= 5, its asyncio client).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from turnout.execution.breaker import BreakerConfig, BreakerState, BreakerStatus, Clock

if TYPE_CHECKING:
    from redis.asyncio import Redis
    from redis.commands.core import AsyncScript

log = logging.getLogger("turnout.breaker")

_LUA = r"""
if redis.replicate_commands then redis.replicate_commands() end  -- Redis < 5: TIME, then writes
local op = ARGV[1]
local now = tonumber(ARGV[2])
if not now then
  local t = redis.call('TIME')
  now = tonumber(t[1]) + tonumber(t[2]) / 1000000
end
local bucket_s, n = tonumber(ARGV[3]), tonumber(ARGV[4])
local min_req, rate = tonumber(ARGV[5]), tonumber(ARGV[6])
local base, mult, cap = tonumber(ARGV[7]), tonumber(ARGV[8]), tonumber(ARGV[9])
local probe_timeout, ttl_ms = tonumber(ARGV[10]), tonumber(ARGV[11])
local sk, wk = KEYS[1], KEYS[2]
local f = redis.call('HMGET', sk, 'state', 'open_until', 'cooldown', 'probe_at')
local state = f[1] or 'closed'
local open_until = tonumber(f[2]) or 0
local cooldown = tonumber(f[3]) or 0
local probe_at = tonumber(f[4]) or 0
local function fmt(x) return string.format('%.6f', x) end
local function put(...)
  redis.call('HSET', sk, ...)
  redis.call('PEXPIRE', sk, ttl_ms)
end
local function window()
  local idx = math.floor(now / bucket_s)
  local all = redis.call('HGETALL', wk)
  local total, fails = 0, 0
  for i = 1, #all, 2 do
    local field = all[i]
    local b = tonumber(string.sub(field, 1, -3))
    if b <= idx - n then
      redis.call('HDEL', wk, field)
    else
      local c = tonumber(all[i + 1])
      total = total + c
      if string.sub(field, -1) == 'f' then fails = fails + c end
    end
  end
  return total, fails
end

if op == 'allow' then
  if state == 'closed' then return 1 end
  if state == 'open' then
    if now < open_until then return 0 end
  elseif now - probe_at < probe_timeout then
    return 0
  end
  put('state', 'half_open', 'probe_at', fmt(now))
  return 1
elseif op == 'record' then
  local ok = ARGV[12] == '1'
  if state == 'half_open' then
    if ok then
      redis.call('DEL', wk)
      put('state', 'closed', 'cooldown', '0', 'probe_at', '0', 'open_until', '0')
      return 'closed'
    end
    local c = math.min(math.max(cooldown, base) * mult, cap)
    put('state', 'open', 'cooldown', fmt(c), 'open_until', fmt(now + c))
    return 'open'
  elseif state == 'open' then
    return 'open'
  end
  redis.call('SADD', KEYS[3], ARGV[13])
  local idx = math.floor(now / bucket_s)
  local field = idx .. (ok and ':o' or ':f')
  local created = redis.call('HINCRBY', wk, field, 1) == 1
  redis.call('PEXPIRE', wk, math.ceil(n * bucket_s * 2000))
  if ok and not created then return 'closed' end
  local total, fails = window()  -- also prunes old buckets, once per new bucket
  if (not ok) and total >= min_req and fails >= rate * total then
    redis.call('DEL', wk)
    put('state', 'open', 'cooldown', fmt(base), 'open_until', fmt(now + base), 'probe_at', '0')
    return 'open'
  end
  return 'closed'
elseif op == 'view' then
  local total, fails = window()
  return {state, fmt(open_until), fmt(cooldown), fmt(probe_at), total, fails, fmt(now)}
end
return redis.error_reply('unknown op ' .. tostring(op))
"""


class RedisBreakerStore:
    """A :class:`~turnout.execution.breaker.BreakerStore` in Redis (redis-py asyncio client).

    ``client`` is a ``redis.asyncio.Redis``; the store does not close it.
    """

    def __init__(
        self,
        client: Redis,
        *,
        prefix: str = "turnout:breaker",
        clock: Clock | None = None,
        fail_open: bool = True,
        retry_after_s: float = 1.0,
    ) -> None:
        from redis.exceptions import RedisError

        self._client = client
        self.prefix = prefix
        self._clock = clock
        self.fail_open = fail_open
        self._errors: tuple[type[Exception], ...] = (RedisError, OSError)
        self._script: AsyncScript = client.register_script(_LUA)
        self.last_error: str | None = None  # set while Redis is failing
        self.retry_after_s = retry_after_s
        self._retry_at = 0.0

    def _resting(self) -> bool:
        return self._retry_at > 0.0 and time.monotonic() < self._retry_at

    def _failed(self, op: str, exc: Exception) -> None:
        if not self.fail_open:
            raise exc
        self._retry_at = time.monotonic() + self.retry_after_s
        if self.last_error is None:
            log.warning(
                "breaker store: %s failed, allowing every model until Redis is back: %s", op, exc
            )
        self.last_error = f"{op}: {type(exc).__name__}: {exc}"[:300]

    def _ok(self) -> None:
        self._retry_at = 0.0
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

    async def _run(self, model: str, args: list[Any]) -> Any:
        return await self._script(keys=self._keys(model), args=args)

    async def allow(self, model: str, config: BreakerConfig) -> bool:
        if self._resting():
            return True
        try:
            allowed = bool(await self._run(model, self._args("allow", config)))
        except self._errors as exc:
            self._failed("allow", exc)
            return True
        self._ok()
        return allowed

    async def record(self, model: str, ok: bool, config: BreakerConfig) -> BreakerState:
        if self._resting():
            return "closed"
        args = [*self._args("record", config), "1" if ok else "0", model]
        try:
            state = _state(await self._run(model, args))
        except self._errors as exc:
            self._failed("record", exc)
            return "closed"
        self._ok()
        return state

    async def _views(self, models: list[str], config: BreakerConfig) -> list[BreakerStatus]:
        """Every model's breaker in one round trip (a pipeline of script calls)."""
        if not models:
            return []
        args = self._args("view", config)
        async with self._client.pipeline(transaction=False) as pipe:
            for model in models:
                await self._script(keys=self._keys(model), args=args, client=pipe)
            raws = await pipe.execute()
        return [_status(m, raw, config) for m, raw in zip(models, raws, strict=True)]

    async def state(self, model: str, config: BreakerConfig) -> BreakerState:
        try:
            raw = await self._run(model, self._args("view", config))
        except self._errors as exc:
            self._failed("state", exc)
            return "closed"
        return _status(model, raw, config).state

    async def models(self) -> list[str]:
        """The model names this prefix has seen, sorted."""
        members = await self._client.smembers(f"{self.prefix}:models")
        return sorted(_text(m) for m in members)

    async def unavailable(self, config: BreakerConfig) -> frozenset[str]:
        if self._resting():
            return frozenset()
        try:
            views = await self._views(await self.models(), config)
        except self._errors as exc:
            self._failed("unavailable", exc)
            return frozenset()
        self._ok()
        return frozenset(v.model for v in views if _blocked(v))

    async def snapshot(self, config: BreakerConfig) -> Mapping[str, BreakerStatus]:
        """Every model's breaker (raises when Redis cannot be reached: this is for display)."""
        return {v.model: v for v in await self._views(await self.models(), config)}

    async def reset(self, model: str | None = None) -> None:
        models = [model] if model is not None else await self.models()
        for m in models:
            s, w, _ = self._keys(m)
            await self._client.delete(s, w)
            await self._client.srem(f"{self.prefix}:models", m)


def _status(model: str, raw: Any, config: BreakerConfig) -> BreakerStatus:
    state, open_until, cooldown, probe_at = (_text(x) for x in raw[:4])
    total, fails, now = int(raw[4]), int(raw[5]), float(_text(raw[6]))
    st = _state(state)
    retry: float | None = None
    if st == "open":
        retry = max(0.0, float(open_until) - now)
        if retry == 0.0:
            st = "half_open"  # cooled down: the next allow() takes the probe
    elif st == "half_open" and now - float(probe_at) >= config.probe_timeout_s:
        retry = 0.0  # the probe was given up: the next allow() takes it
    return BreakerStatus(model, st, total, fails, retry, float(cooldown))


def _blocked(v: BreakerStatus) -> bool:
    """Open and cooling down, or half-open with the probe in flight."""
    return v.retry_in_s is None if v.state == "half_open" else v.state == "open"


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _state(value: Any) -> BreakerState:
    text = _text(value)
    if text == "open":
        return "open"
    if text == "half_open":
        return "half_open"
    return "closed"
