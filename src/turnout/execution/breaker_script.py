"""The Lua script behind :class:`~turnout.execution.breaker_redis.RedisBreakerStore`,
and how its replies read.

One script, one op a call (``ARGV[1]``), each atomic on the server:

* ``allow``  claims the half-open probe when one is due; returns
  ``{allowed, state, open_until, probe_at, now}``;
* ``record`` one result; returns ``{0, state, ...}`` as ``allow`` does;
* ``oks``    ``ARGV[12]`` queued successes, counted only while the breaker is closed
  (so they never decide a probe); returns ``{counted, state, ...}``;
* ``view``   the breaker for display: ``{state, open_until, cooldown, probe_at,
  requests, failures, now}``.

``ARGV[2]`` is the caller's clock, or empty for the server's ``TIME``; ``ARGV[3..11]``
the :class:`~turnout.execution.breaker.BreakerConfig`; ``ARGV[13]`` the model name.
"""

from __future__ import annotations

from typing import Any

from turnout.execution.breaker import BreakerConfig, BreakerState, BreakerStatus

LUA = r"""
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
-- what every op but view returns: its result, then the state the caller may cache
local function brief(result)
  return {result, state, fmt(open_until), fmt(probe_at), fmt(now)}
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
local function count(ok, times)  -- true when this started a new bucket
  redis.call('SADD', KEYS[3], ARGV[13])
  local field = math.floor(now / bucket_s) .. (ok and ':o' or ':f')
  local created = redis.call('HINCRBY', wk, field, times) == times
  redis.call('PEXPIRE', wk, math.ceil(n * bucket_s * 2000))
  return created
end

if op == 'allow' then
  if state == 'closed' then return brief(1) end
  if state == 'open' then
    if now < open_until then return brief(0) end
  elseif now - probe_at < probe_timeout then
    return brief(0)
  end
  state, probe_at = 'half_open', now
  put('state', 'half_open', 'probe_at', fmt(now))
  return brief(1)
elseif op == 'oks' then
  -- queued successes: counted while closed, never taken as a probe's result
  if state ~= 'closed' then return brief(0) end
  local times = tonumber(ARGV[12])
  if count(true, times) then window() end  -- prunes old buckets, once per new bucket
  return brief(times)
elseif op == 'record' then
  local ok = ARGV[12] == '1'
  if state == 'half_open' then
    if ok then
      redis.call('DEL', wk)
      put('state', 'closed', 'cooldown', '0', 'probe_at', '0', 'open_until', '0')
      state, probe_at, open_until = 'closed', 0, 0
      return brief(0)
    end
    local c = math.min(math.max(cooldown, base) * mult, cap)
    put('state', 'open', 'cooldown', fmt(c), 'open_until', fmt(now + c))
    state, open_until = 'open', now + c
    return brief(0)
  elseif state == 'open' then
    return brief(0)
  end
  local created = count(ok, 1)
  if ok and not created then return brief(0) end
  local total, fails = window()  -- also prunes old buckets, once per new bucket
  if (not ok) and total >= min_req and fails >= rate * total then
    redis.call('DEL', wk)
    put('state', 'open', 'cooldown', fmt(base), 'open_until', fmt(now + base), 'probe_at', '0')
    state, open_until, probe_at = 'open', now + base, 0
  end
  return brief(0)
elseif op == 'view' then
  local total, fails = window()
  return {state, fmt(open_until), fmt(cooldown), fmt(probe_at), total, fails, fmt(now)}
end
return redis.error_reply('unknown op ' .. tostring(op))
"""


def status(model: str, raw: Any, config: BreakerConfig) -> BreakerStatus:
    state, open_until, cooldown, probe_at = (text(x) for x in raw[:4])
    total, fails, now = int(raw[4]), int(raw[5]), float(text(raw[6]))
    st = state_of(state)
    retry: float | None = None
    if st == "open":
        retry = max(0.0, float(open_until) - now)
        if retry == 0.0:
            st = "half_open"  # cooled down: the next allow() takes the probe
    elif st == "half_open" and now - float(probe_at) >= config.probe_timeout_s:
        retry = 0.0  # the probe was given up: the next allow() takes it
    return BreakerStatus(model, st, total, fails, retry, float(cooldown))


def blocked(v: BreakerStatus) -> bool:
    """Open and cooling down, or half-open with the probe in flight."""
    return v.retry_in_s is None if v.state == "half_open" else v.state == "open"


def text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def state_of(value: Any) -> BreakerState:
    name = text(value)
    if name == "open":
        return "open"
    if name == "half_open":
        return "half_open"
    return "closed"
