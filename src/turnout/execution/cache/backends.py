"""Key-value backends for the exact cache: in-process and Redis, one interface.

Values are bytes; every entry has a time to live. The in-process backend is a
bounded LRU (``max_entries`` and ``max_bytes``), so memory never grows without
bound; the Redis backend stores each entry under a prefix with ``SET ... PX``.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from redis.asyncio import Redis

Clock = Callable[[], float]


class CacheBackend(Protocol):
    """Async bytes store with a TTL per entry."""

    async def get(self, key: str) -> bytes | None: ...

    async def set(self, key: str, value: bytes, ttl_s: float) -> None: ...

    async def delete(self, key: str) -> None: ...

    async def clear(self) -> None:
        """Remove every entry this backend holds (under its prefix, for Redis)."""
        ...


class MemoryBackend:
    """A bounded LRU with per-entry expiry, for one process.

    Expired entries are dropped when read, and the least recently used ones when
    either bound is passed. ``clock`` defaults to ``time.monotonic``.
    """

    def __init__(
        self,
        *,
        max_entries: int = 10_000,
        max_bytes: int = 64 * 1024 * 1024,
        clock: Clock = time.monotonic,
    ) -> None:
        if max_entries < 1 or max_bytes < 1:
            raise ValueError("cache: max_entries and max_bytes must be >= 1")
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self._clock = clock
        self._data: OrderedDict[str, tuple[float, bytes]] = OrderedDict()
        self._bytes = 0

    def __len__(self) -> int:
        return len(self._data)

    @property
    def size_bytes(self) -> int:
        return self._bytes

    async def get(self, key: str) -> bytes | None:
        item = self._data.get(key)
        if item is None:
            return None
        expires, value = item
        if self._clock() >= expires:
            self._drop(key)
            return None
        self._data.move_to_end(key)
        return value

    async def set(self, key: str, value: bytes, ttl_s: float) -> None:
        if ttl_s <= 0 or len(value) > self.max_bytes:
            return
        self._drop(key)
        self._data[key] = (self._clock() + ttl_s, value)
        self._bytes += len(value)
        while len(self._data) > self.max_entries or self._bytes > self.max_bytes:
            oldest = next(iter(self._data))
            self._drop(oldest)

    async def delete(self, key: str) -> None:
        self._drop(key)

    async def clear(self) -> None:
        self._data.clear()
        self._bytes = 0

    def _drop(self, key: str) -> None:
        item = self._data.pop(key, None)
        if item is not None:
            self._bytes -= len(item[1])


class RedisBackend:
    """Entries in Redis under ``{prefix}:{key}``, expiring with ``SET ... PX``.

    ``client`` is a ``redis.asyncio.Redis`` (the backend does not close it).
    Shared by every replica that uses the same Redis and prefix.
    """

    def __init__(self, client: Redis, *, prefix: str = "turnout:cache") -> None:
        self._client = client
        self.prefix = prefix

    def _k(self, key: str) -> str:
        return f"{self.prefix}:{key}"

    async def get(self, key: str) -> bytes | None:
        value = await self._client.get(self._k(key))
        return None if value is None else as_bytes(value)

    async def set(self, key: str, value: bytes, ttl_s: float) -> None:
        ms = int(ttl_s * 1000)
        if ms > 0:
            await self._client.set(self._k(key), value, px=ms)

    async def delete(self, key: str) -> None:
        await self._client.delete(self._k(key))

    async def clear(self) -> None:
        await unlink_under(self._client, self.prefix)


async def unlink_under(client: Redis, prefix: str) -> None:
    """Delete every key under ``prefix:`` (SCAN and UNLINK, 500 at a time)."""
    batch: list[bytes | str] = []
    async for k in client.scan_iter(match=f"{_glob_escape(prefix)}:*", count=500):
        batch.append(k)
        if len(batch) >= 500:
            await client.unlink(*batch)
            batch = []
    if batch:
        await client.unlink(*batch)


def as_bytes(value: Any) -> bytes:
    """A Redis reply as bytes (a client made with ``decode_responses`` gives str)."""
    return value if isinstance(value, bytes) else str(value).encode("utf-8")


def _glob_escape(text: str) -> str:
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)
