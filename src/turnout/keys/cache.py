"""Recognising keys on the request path without a database read per request, and
still refusing a revoked key on every replica at once.

:class:`CachedKeys` keeps the records of keys recently presented (by hash, bounded,
for ``ttl_s``). Every change to a key (``update``, ``revoke``, through the admin API
or ``turnout keys``) bumps a *generation* number in the shared state
(:class:`RedisKeyEvents`, one ``INCR``); before using a cached record the guard reads
the generation (one ``GET``), and a new number empties the cache, so the next request
reads the key afresh from the database. Without Redis (:class:`LocalKeyEvents`) the
number lives in the process, and the cache keeps records ``ttl_s`` at most (changes
made by another process are seen within that time).

If Redis cannot be read, the cache is trusted for ``ttl_s`` (a warning is logged once by
the degrader): never an outage. If the database cannot be read (down, or past its
deadline), a key's cached record is used however old (*stale if error*) to refuse it (a
key revoked before the outage stays refused), and to let it through only while key
changes are shared and heard (``shared``: the generation lives in Redis and was read
last time; no change since means the record is current). A key otherwise not decided
(never seen, not seen since a key changed, or a record too old to trust without shared
changes) gets 503 ``key_store_unavailable`` (the SDK retries it). The database is asked
again at most once every ``retry_s`` meanwhile, so the outage costs one request a wait,
not each one; a warning is logged when it starts and a note when it ends.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

from turnout.errors import StoreError
from turnout.keys.model import KeyRefused, VirtualKey, hash_key
from turnout.keys.store import KeyStore
from turnout.limits.degrade import Degrader, server_of

log = logging.getLogger("turnout.keys")

if TYPE_CHECKING:
    from redis.asyncio import Redis


class KeyEvents(Protocol):
    async def generation(self) -> int | None:
        """The current generation of key changes (None: unknown, Redis away)."""

    async def bump(self) -> None:
        """Tell every replica that a key changed."""


class LocalKeyEvents:
    """Key changes seen by this process only."""

    def __init__(self) -> None:
        self.value = 0

    async def generation(self) -> int | None:
        return self.value

    async def bump(self) -> None:
        self.value += 1


class RedisKeyEvents:
    """Key changes shared through one Redis counter."""

    def __init__(
        self,
        redis: Redis,
        *,
        prefix: str = "turnout:keys",
        timeout_s: float = 0.5,
        on_degrade: Callable[[str], None] | None = None,
    ) -> None:
        self.redis = redis
        self.key = f"{prefix}:generation"
        self.degrader = Degrader(
            "virtual keys", timeout_s=timeout_s, on_degrade=on_degrade, server=server_of(redis)
        )

    async def generation(self) -> int | None:
        async def read() -> int | None:
            value = await self.redis.get(self.key)
            return int(value or 0)

        return await self.degrader.run(read, lambda: None)

    async def bump(self) -> None:
        async def incr() -> None:
            await self.redis.incr(self.key)

        await self.degrader.attempt(incr)


class CachedKeys:
    """Finds presented keys in ``store`` through a bounded cache. The caller reports the
    generation of key changes it read from the shared state (:meth:`observe`)."""

    def __init__(
        self,
        store: KeyStore,
        *,
        ttl_s: float = 30.0,
        max_keys: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
        offload: bool = False,
        retry_s: float = 1.0,
        read_timeout_s: float = 2.0,
    ) -> None:
        self.store = store
        self.ttl_s = ttl_s
        self.max_keys = max_keys
        self.retry_s = retry_s
        self.read_timeout_s = read_timeout_s
        """How long a request waits for a read of the database (offloaded reads): past
        it, the read counts as failed (the request is decided on the cached record, or
        503), and goes on by itself."""
        self._reading: dict[str, tuple[asyncio.Future[VirtualKey | None], float, int]] = {}
        """The read under way of each key (when it began, in which epoch), joined by its
        other requests."""
        self._clock = clock
        self._offload = offload
        self._cache: OrderedDict[str, tuple[VirtualKey | None, float]] = OrderedDict()
        self._generation: int | None = None
        self.shared = False
        """Whether key changes are announced through a shared generation (Redis)."""
        self._heard = False  # the last generation read succeeded
        self._down_until: float | None = None
        """While the database is failing: when it may be asked again."""
        self.reads = 0
        self.store_failures = 0
        self._epoch = 0
        """Bumped when cached records may be stale (a key changed): a read begun before
        is not joined, and its record not cached."""

    @property
    def generation(self) -> int | None:
        """The generation of key changes the cached records are known to be as new as."""
        return self._generation

    def observe(self, generation: int | None, seen: int | None) -> bool:
        """Note the shared ``generation`` read after a key was found with the cache at
        ``seen``; True when that key may be stale (a change since): read it afresh."""
        self._heard = generation is not None
        if generation is None or generation == seen:
            return False
        if self._generation is None:  # the first look: what is cached was just read
            self._generation = generation
            return False
        if generation != self._generation:
            self._generation = generation
            self._stale()
        return True

    async def authenticate(self, presented: str, *, fresh: bool = False) -> VirtualKey:
        """The usable key for ``presented``; :class:`KeyRefused` (401) otherwise.
        ``fresh``: read the database even if the key is cached."""
        digest = hash_key(presented)
        now = self._clock()
        hit = self._cache.get(digest)
        if hit is not None and hit[1] > now and not fresh:
            key = hit[0]
        else:
            epoch = self._epoch
            try:
                key = await self._read(presented, now, fresh=fresh)
            except StoreError:
                key = self._last_known(hit)
            else:
                if epoch == self._epoch:  # no key changed while it was read
                    self._cache[digest] = (key, now + self.ttl_s)
                    if len(self._cache) > self.max_keys:
                        self._cache.popitem(last=False)
        if key is None:
            raise KeyRefused("invalid API key", status=401, code="invalid_api_key")
        refusal = key.refusal(time.time())
        if refusal is not None:
            raise refusal
        return key

    def holds(self, presented: str) -> bool:
        """Whether the record of the key ``presented`` is cached (a known key)."""
        hit = self._cache.get(hash_key(presented))
        return hit is not None and hit[0] is not None

    async def _read(self, presented: str, now: float, *, fresh: bool = False) -> VirtualKey | None:
        """The key's record from the database; :class:`StoreError` when it fails, or
        at once while it failed less than ``retry_s`` ago."""
        if self._down_until is not None and now < self._down_until:
            raise StoreError("the key store failed less than a second ago")
        try:
            if self._offload:  # a network database: keep the event loop free
                key = await self._offloaded(presented, fresh)
            else:
                self.reads += 1
                key = self.store.find(presented)
        except StoreError as exc:
            self.store_failures += 1
            if self._down_until is None:
                log.warning(
                    "keys: the key store failed (%s); keys are decided on their cached "
                    "records, others get 503 until it is back",
                    exc,
                )
            self._down_until = self._clock() + self.retry_s
            raise
        if self._down_until is not None:
            log.info("keys: the key store answers again")
            self._down_until = None
        return key

    async def _offloaded(self, presented: str, fresh: bool) -> VirtualKey | None:
        """The read in a thread, one at a time for each key (its other requests join it;
        not a ``fresh`` one, nor one after a key changed: the read under way may have
        read the record before), waited for at most ``read_timeout_s``: a database that
        stops answering (frozen, blackholed) fails a request within that, not within the
        driver's own timeouts."""
        digest = hash_key(presented)
        now = self._clock()
        under_way = self._reading.get(digest)
        reading: asyncio.Future[VirtualKey | None]
        if under_way is None or fresh or under_way[2] != self._epoch:
            self.reads += 1
            reading = asyncio.ensure_future(asyncio.to_thread(self.store.find, presented))
            self._reading[digest] = (reading, now, self._epoch)
            reading.add_done_callback(lambda done: self._read_done(digest, done))
            wait = self.read_timeout_s
        else:  # joined: it has the rest of its time (none left: the database is stuck)
            reading, began, _ = under_way
            wait = began + self.read_timeout_s - now
        try:
            if wait <= 0:
                raise TimeoutError
            async with asyncio.timeout(wait):  # a caller's cancel is never swallowed
                return await asyncio.shield(reading)
        except TimeoutError:
            raise StoreError(
                f"the key store did not answer within {self.read_timeout_s:g} s"
            ) from None

    def _read_done(self, digest: str, done: asyncio.Future[VirtualKey | None]) -> None:
        under_way = self._reading.get(digest)
        if under_way is not None and under_way[0] is done:
            del self._reading[digest]
        if not done.cancelled():
            done.exception()  # read by its callers, or by no one once they gave up

    def _last_known(self, hit: tuple[VirtualKey | None, float] | None) -> VirtualKey | None:
        """The record to decide on while the database fails (raises 503 without one)."""
        if hit is not None:
            key = hit[0]
            if key is None or key.refusal(time.time()) is not None:
                return key  # refusing on an old record is always safe
            if self.shared and self._heard:
                return key  # no key changed since it was read, as far as Redis says
            raise KeyRefused(
                "the key store is unavailable and this key's record is too old to trust "
                "without shared key changes; retry shortly",
                status=503,
                code="key_store_unavailable",
            )
        raise KeyRefused(
            "the key store is unavailable and this key was not seen since a key last "
            "changed; retry shortly",
            status=503,
            code="key_store_unavailable",
        )

    def forget(self) -> None:
        """A key was changed in this process: read keys afresh."""
        self._stale()

    def _stale(self) -> None:
        """Cached records, and reads under way, may be older than a key change."""
        self._cache.clear()
        self._epoch += 1
