"""Vector indexes for the semantic cache: nearest stored entry within a scope.

A scope (see :func:`turnout.execution.cache.keys.semantic_split`) groups entries
that may answer each other: same model, parameters and prior messages. Vectors
are unit length, so cosine similarity is a dot product; a search is one
matrix-vector product over the scope's live entries (a few tens of µs for a
thousand entries).

:class:`MemoryVectorIndex` is bounded: at most ``max_entries_per_scope`` per
scope (oldest dropped first), at most ``max_entries`` in all (the least recently
searched scope gives up its oldest first), and expired entries are skipped and
compacted away.

Needs numpy (``pip install 'turnout[semantic]'``).
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray

    F32 = NDArray[np.float32]

Clock = Callable[[], float]


@dataclass(frozen=True, slots=True)
class Match:
    similarity: float
    payload: bytes


class VectorIndex(Protocol):
    async def sync(self, scope: str) -> None:
        """Bring this process's view of ``scope`` up to date (a round trip for a shared
        index, nothing in process): the semantic cache does it while the question is
        being embedded, then searches with ``synced=True``."""
        ...

    async def search(
        self, scope: str, vector: F32, min_similarity: float, *, synced: bool = False
    ) -> Match | None:
        """The most similar live entry of ``scope`` if its similarity is at least
        ``min_similarity``; ``synced``: :meth:`sync` has just been done."""
        ...

    async def add(self, scope: str, vector: F32, payload: bytes, ttl_s: float) -> None: ...

    async def clear(self) -> None: ...


class ScopeEntries:
    """One scope's entries in insertion order: rows ``[start, end)`` of a matrix
    that grows by doubling and is compacted when it fills up."""

    __slots__ = ("end", "expires", "payloads", "start", "vectors")

    def __init__(self, dim: int, capacity: int = 16) -> None:
        import numpy as np

        self.vectors: F32 = np.empty((capacity, dim), dtype=np.float32)
        self.expires = np.empty(capacity, dtype=np.float64)
        self.payloads: list[bytes | None] = [None] * capacity
        self.start = 0
        self.end = 0

    def __len__(self) -> int:
        return self.end - self.start

    def append(self, vector: F32, expires: float, payload: bytes, limit: int, now: float) -> int:
        """Add an entry; returns how many old entries were dropped to make room."""
        dropped = 0
        while len(self) >= limit:
            self.drop_oldest()
            dropped += 1
        if self.end == len(self.payloads):
            self._compact(now, limit)
        self.vectors[self.end] = vector
        self.expires[self.end] = expires
        self.payloads[self.end] = payload
        self.end += 1
        return dropped

    def drop_oldest(self) -> None:
        if self.start < self.end:
            self.payloads[self.start] = None
            self.start += 1

    def best(self, vector: F32, now: float) -> tuple[float, bytes] | None:
        import numpy as np

        if self.start == self.end:
            return None
        sims = self.vectors[self.start : self.end] @ vector
        sims[self.expires[self.start : self.end] <= now] = -np.inf
        i = int(np.argmax(sims))
        payload = self.payloads[self.start + i]
        if payload is None or not np.isfinite(sims[i]):
            return None
        return float(sims[i]), payload

    def _compact(self, now: float, limit: int) -> None:
        import numpy as np

        live = np.nonzero(self.expires[self.start : self.end] > now)[0] + self.start
        n = len(live)
        capacity = len(self.payloads)
        if n * 2 > capacity:
            capacity = min(max(capacity * 2, 16), max(limit, 16) * 2)
        vectors = np.empty((capacity, self.vectors.shape[1]), dtype=np.float32)
        expires = np.empty(capacity, dtype=np.float64)
        vectors[:n] = self.vectors[live]
        expires[:n] = self.expires[live]
        payloads: list[bytes | None] = [self.payloads[int(i)] for i in live]
        payloads.extend([None] * (capacity - n))
        self.vectors, self.expires, self.payloads = vectors, expires, payloads
        self.start, self.end = 0, n


class MemoryVectorIndex:
    """Vectors and payloads in this process. ``clock`` defaults to ``time.monotonic``."""

    def __init__(
        self,
        dim: int,
        *,
        max_entries_per_scope: int = 1_000,
        max_entries: int = 10_000,
        clock: Clock = time.monotonic,
    ) -> None:
        if max_entries_per_scope < 1 or max_entries < 1:
            raise ValueError("semantic cache: max_entries must be >= 1")
        self.dim = dim
        self.max_entries_per_scope = max_entries_per_scope
        self.max_entries = max_entries
        self._clock = clock
        self._scopes: OrderedDict[str, ScopeEntries] = OrderedDict()
        self._count = 0

    def __len__(self) -> int:
        return self._count

    async def sync(self, scope: str) -> None:
        return None  # always up to date

    async def search(
        self, scope: str, vector: F32, min_similarity: float, *, synced: bool = False
    ) -> Match | None:
        entries = self._scopes.get(scope)
        if entries is None:
            return None
        self._scopes.move_to_end(scope)
        best = entries.best(vector, self._clock())
        if best is None or best[0] < min_similarity:
            return None
        return Match(best[0], best[1])

    async def add(self, scope: str, vector: F32, payload: bytes, ttl_s: float) -> None:
        if ttl_s <= 0:
            return
        now = self._clock()
        entries = self._scopes.get(scope)
        if entries is None:
            entries = self._scopes[scope] = ScopeEntries(self.dim)
        self._scopes.move_to_end(scope)
        before = len(entries)
        entries.append(vector, now + ttl_s, payload, self.max_entries_per_scope, now)
        self._count += len(entries) - before
        while self._count > self.max_entries:
            oldest_scope, oldest = next(iter(self._scopes.items()))
            oldest.drop_oldest()
            self._count -= 1
            if not oldest:
                del self._scopes[oldest_scope]

    async def clear(self) -> None:
        self._scopes.clear()
        self._count = 0
