"""Speed estimates shared by every process through Redis (``executor.state: redis``).

Recording stays local and cheap: :meth:`RedisSpeedBoard.observe` updates this
process's estimates at once and queues the sample. At most every ``flush_s``
seconds (0.5 s) a background task sends the queued samples to Redis in one Lua
script call, folded per model here first (the same exponentially weighted update, as
one multiply-add a model, so Redis reads and writes each model once a batch, not once
a sample), and the script returns every model's shared estimate; this process then
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
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from turnout.execution.speed import DEFAULT_ALPHA, Sample, SpeedBoard
from turnout.policies.speed import SpeedEstimate, SpeedSnapshot

if TYPE_CHECKING:
    from redis.asyncio import Redis
    from redis.commands.core import AsyncScript

log = logging.getLogger("turnout.speed")

_LUA = r"""
local key, ttl_ms = KEYS[1], tonumber(ARGV[1])
local batch = cjson.decode(ARGV[2])
for _, s in ipairs(batch) do
  local model, d, c, first, pd, pc, pfirst, n, at = unpack(s)
  local raw = redis.call('HGET', key, model)
  local e
  if raw then e = cjson.decode(raw) else e = {first, false, 0, at} end
  e[1] = e[1] * d + c
  if pfirst ~= false then
    if e[2] == false then e[2] = pfirst end
    e[2] = e[2] * pd + pc
  end
  e[3] = e[3] + n
  if at > e[4] then e[4] = at end
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
        payload = json.dumps(_folded(self._pending, self.alpha))
        self._pending.clear()
        try:
            async with asyncio.timeout(self.timeout_s):
                reply = await self._script(keys=[self.prefix], args=[self._ttl_ms, payload])
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


class _Fold:
    """A model's samples of one batch as one update of the shared estimate: applying
    ``e += alpha * (x - e)`` for x1..xk is ``e * d + c`` with ``d = (1 - alpha)**k``, the
    same for the time per token over the samples that have one."""

    __slots__ = ("at", "c", "d", "first", "n", "pc", "pd", "pfirst")

    def __init__(self, first: float, at: float) -> None:
        self.first, self.d, self.c, self.n, self.at = first, 1.0, 0.0, 0, at
        self.pfirst: float | None = None
        self.pd, self.pc = 1.0, 0.0


def _folded(samples: Iterable[Sample], alpha: float) -> list[list[Any]]:
    """One entry per model: ``[model, d, c, first, pd, pc, pfirst or false, n, at]``; the
    script folds it into the shared estimate (a model it has not seen starts at its
    first sample), so Redis does one read and one write a model, not a sample."""
    keep = 1.0 - alpha
    folds: dict[str, _Fold] = {}
    for model, ttft, per, at in samples:
        f = folds.get(model)
        if f is None:
            f = folds[model] = _Fold(ttft, at)
        f.d, f.c = f.d * keep, f.c * keep + alpha * ttft
        if per is not None:
            if f.pfirst is None:
                f.pfirst = per
            f.pd, f.pc = f.pd * keep, f.pc * keep + alpha * per
        f.n += 1
        f.at = max(f.at, at)
    return [
        [m, f.d, f.c, f.first, f.pd, f.pc, False if f.pfirst is None else f.pfirst, f.n, f.at]
        for m, f in folds.items()
    ]


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
