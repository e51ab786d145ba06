"""The semantic cache's vectors in Redis, searched in process.

Plain Redis has no vector search, and fetching a scope's thousand vectors on
every look-up would move 1.5 MB a call. So each replica keeps an in-process
mirror of the scopes it searches, and syncs it incrementally:

- ``{prefix}:s:{scope}`` is a Redis stream, one entry per stored answer with its
  vector (float32 bytes), its expiry (epoch seconds) and the key of its payload;
  it is capped at about ``max_entries_per_scope`` entries (``XADD MAXLEN ~``)
  and expires a TTL after its last write;
- ``{prefix}:a:{id}`` holds the payload (the answer JSON) with ``SET ... PX``,
  so Redis, not the mirror, decides when an answer has expired;
- a search first reads the entries the mirror has not seen yet (``XRANGE`` from
  the last id, one round trip, empty when nothing changed), then takes the best
  match in process and ``GET``\\ s its payload (a second round trip, on hits only).

A scope's mirror is rebuilt from scratch when its stream is found empty or
trimmed past the mirror, or after the scope was evicted from the mirror's LRU.
Entries written by any replica are seen by every replica on its next search.

Needs numpy and redis-py.
"""

from __future__ import annotations

import time
import uuid
from collections import OrderedDict
from typing import TYPE_CHECKING, Any

from turnout.execution.cache.backends import as_bytes, unlink_under
from turnout.execution.cache.vectors import Clock, Match, ScopeEntries

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from turnout.execution.cache.vectors import F32


class _Mirror:
    __slots__ = ("entries", "last_id")

    def __init__(self, dim: int) -> None:
        self.entries = ScopeEntries(dim)
        self.last_id = b"0-0"


class RedisVectorIndex:
    """A :class:`~turnout.execution.cache.vectors.VectorIndex` shared through Redis.

    ``clock`` is wall time (``time.time``): expiries are compared across replicas.
    """

    def __init__(
        self,
        client: Redis,
        dim: int,
        *,
        prefix: str = "turnout:semantic",
        max_entries_per_scope: int = 1_000,
        max_scopes: int = 256,
        clock: Clock = time.time,
    ) -> None:
        self._client = client
        self.dim = dim
        self.prefix = prefix
        self.max_entries_per_scope = max_entries_per_scope
        self.max_scopes = max_scopes
        self._clock = clock
        self._mirrors: OrderedDict[str, _Mirror] = OrderedDict()

    def _stream(self, scope: str) -> str:
        return f"{self.prefix}:s:{scope}"

    async def sync(self, scope: str) -> None:
        await self._sync(scope)

    async def search(
        self, scope: str, vector: F32, min_similarity: float, *, synced: bool = False
    ) -> Match | None:
        mirror = self._mirrors.get(scope) if synced else None
        if mirror is None:
            mirror = await self._sync(scope)
        best = mirror.entries.best(vector, self._clock())
        if best is None or best[0] < min_similarity:
            return None
        payload = await self._client.get(best[1].decode())
        if payload is None:
            return None  # expired or evicted in Redis
        return Match(best[0], as_bytes(payload))

    async def add(self, scope: str, vector: F32, payload: bytes, ttl_s: float) -> None:
        import numpy as np

        ms = int(ttl_s * 1000)
        if ms <= 0:
            return
        payload_key = f"{self.prefix}:a:{uuid.uuid4().hex}"
        fields: dict[Any, Any] = {
            "v": np.asarray(vector, dtype=np.float32).tobytes(),
            "e": repr(self._clock() + ttl_s),
            "k": payload_key,
        }
        stream = self._stream(scope)
        async with self._client.pipeline(transaction=False) as pipe:
            pipe.set(payload_key, payload, px=ms)
            pipe.xadd(stream, fields, maxlen=self.max_entries_per_scope, approximate=True)
            pipe.pexpire(stream, ms)
            await pipe.execute()

    async def clear(self) -> None:
        """Delete every stream and payload under the prefix, and the local mirrors."""
        self._mirrors.clear()
        await unlink_under(self._client, self.prefix)

    async def _sync(self, scope: str) -> _Mirror:
        import numpy as np

        mirror = self._mirrors.get(scope)
        if mirror is None:
            mirror = self._mirrors[scope] = _Mirror(self.dim)
            while len(self._mirrors) > self.max_scopes:
                self._mirrors.popitem(last=False)
        self._mirrors.move_to_end(scope)
        stream = self._stream(scope)
        async with self._client.pipeline(transaction=False) as pipe:
            pipe.xrange(stream, min=b"(" + mirror.last_id, max="+")
            pipe.xlen(stream)
            new, length = await pipe.execute()
        if len(mirror.entries) + len(new) > length and len(mirror.entries) > 0:
            # the stream was cleared or trimmed past what we hold: start over
            mirror = self._mirrors[scope] = _Mirror(self.dim)
            new = await self._client.xrange(stream, min="-", max="+")
        now = self._clock()
        for entry_id, fields in new:
            f = {as_bytes(k): v for k, v in fields.items()}
            vec = np.frombuffer(f[b"v"], dtype=np.float32)
            if vec.shape != (self.dim,):
                continue  # written by a different model: ignore
            mirror.entries.append(
                vec, float(as_bytes(f[b"e"])), as_bytes(f[b"k"]), self.max_entries_per_scope, now
            )
            mirror.last_id = as_bytes(entry_id)
        return mirror
