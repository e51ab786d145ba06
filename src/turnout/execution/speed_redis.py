"""Speed estimates shared by every process through Redis (``executor.state: redis``).

Recording stays local and cheap: :meth:`RedisSpeedBoard.observe` updates this
process's estimates at once and queues the sample. At most every ``flush_s``
seconds (0.5 s) a background task sends the queued samples to Redis in one Lua
script call, which folds them into the shared estimates (the same exponentially
weighted update) and returns every model's shared estimate; this process then
takes those over. So each process sees its own calls at once and the others'
within about ``flush_s``; the request path never waits for Redis.

One hash holds every model (``{prefix}`` -> field per model, a JSON array
``[ttft_s, per_token_s or false, samples, updated_at]``), so the script touches one
key (Redis Cluster safe) and the hash expires ``ttl_s`` (7 days) after the last
write. Every call has a timeout (``timeout_s``, 0.5 s); when Redis fails, the board
keeps working on its local estimates, drops the batch (its samples are already in
the local estimates), leaves Redis alone for ``retry_after_s`` (1 s), logs the first
failure as a warning on ``turnout.speed`` and the recovery as info. At most
``max_pending`` samples wait for a flush (the oldest are dropped beyond it).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections import deque
from typing import TYPE_CHECKING, Any

from turnout.execution.speed import DEFAULT_ALPHA, Sample, SpeedBoard
from turnout.policies.speed import SpeedEstimate, SpeedSnapshot

if TYPE_CHECKING:
    from redis.asyncio import Redis
    from redis.commands.core import AsyncScript

log = logging.getLogger("turnout.speed")

_LUA = r"""
local key, alpha, ttl_ms = KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2])
local batch = cjson.decode(ARGV[3])
for _, s in ipairs(batch) do
  local model, ttft, per, at = s[1], s[2], s[3], s[4]
  local raw = redis.call('HGET', key, model)
  local e
  if raw then
    e = cjson.decode(raw)
    e[1] = e[1] + alpha * (ttft - e[1])
    if per ~= false then
      if e[2] == false then e[2] = per else e[2] = e[2] + alpha * (per - e[2]) end
    end
    e[3] = e[3] + 1
    if at > e[4] then e[4] = at end
  else
    e = {ttft, per, 1, at}
  end
  redis.call('HSET', key, model, cjson.encode(e))
end
if #batch > 0 then redis.call('PEXPIRE', key, ttl_ms) end
return redis.call('HGETALL', key)
"""


class RedisSpeedBoard(SpeedBoard):
    """A :class:`SpeedBoard` whose estimates are shared through Redis."""

    def __init__(
        self,
        client: Redis,
        *,
        prefix: str = "turnout:speed",
        alpha: float = DEFAULT_ALPHA,
        flush_s: float = 0.5,
        timeout_s: float = 0.5,
        retry_after_s: float = 1.0,
        ttl_s: float = 7 * 86400.0,
        max_pending: int = 4096,
    ) -> None:
        from redis.exceptions import RedisError

        super().__init__(alpha=alpha)
        self._client = client
        self.prefix = prefix
        self.flush_s = flush_s
        self.timeout_s = timeout_s
        self.retry_after_s = retry_after_s
        self._ttl_ms = int(ttl_s * 1000)
        self._errors: tuple[type[Exception], ...] = (RedisError, OSError, TimeoutError)
        self._script: AsyncScript = client.register_script(_LUA)
        self._pending: deque[Sample] = deque(maxlen=max_pending)
        self._next_sync = 0.0
        self._task: asyncio.Task[bool] | None = None
        self.last_error: str | None = None

    def add(self, s: Sample) -> None:
        super().add(s)
        self._pending.append(s)
        self._maybe_sync()

    def snapshot(self) -> SpeedSnapshot:
        self._maybe_sync()
        return super().snapshot()

    def _maybe_sync(self) -> None:
        now = time.monotonic()
        if now < self._next_sync or (self._task is not None and not self._task.done()):
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no event loop (a synchronous caller): the next async one syncs
            return
        self._next_sync = now + self.flush_s
        self._task = loop.create_task(self.sync())

    async def sync(self) -> bool:
        """Send the queued samples and take over the shared estimates; False when Redis
        failed (the local estimates stay in use)."""
        batch = [
            [s.model, s.ttft_s, False if s.per_token_s is None else s.per_token_s, s.at]
            for s in self._pending
        ]
        self._pending.clear()
        payload = json.dumps(batch)
        try:
            async with asyncio.timeout(self.timeout_s):
                reply = await self._script(
                    keys=[self.prefix], args=[repr(self.alpha), self._ttl_ms, payload]
                )
        except self._errors as exc:
            self._next_sync = time.monotonic() + self.retry_after_s
            if self.last_error is None:
                log.warning("speed estimates: Redis failed, using this process's own: %s", exc)
            self.last_error = f"{type(exc).__name__}: {exc}"[:300]
            return False
        if self.last_error is not None:
            log.info("speed estimates: Redis is answering again")
            self.last_error = None
        self.replace(_estimates(reply))
        return True

    async def aclose(self) -> None:
        """Wait for a sync in flight, then flush what is still queued."""
        if self._task is not None:
            with contextlib.suppress(Exception):
                await self._task
        if self._pending:
            await self.sync()


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _estimates(reply: Any) -> dict[str, SpeedEstimate]:
    items = list(reply or ())
    out: dict[str, SpeedEstimate] = {}
    for field, raw in zip(items[::2], items[1::2], strict=True):
        ttft, per, n, at = json.loads(_text(raw))
        out[_text(field)] = SpeedEstimate(
            float(ttft), None if per is False else float(per), int(n), float(at)
        )
    return out
