"""Building an :class:`~turnout.execution.executor.Executor` from ``turnout.yaml``.

::

    executor:
      retries:  {max_attempts: 3, base_delay_s: 0.25, max_delay_s: 8, max_retry_after_s: 30}
      timeouts: {attempt_s: 120, total_s: 600}
      breaker:  {enabled: true, window_s: 30, min_requests: 5, failure_rate: 0.5, cooldown_s: 30,
                 view_ttl_s: 0.25, flush_s: 0.01}   # the last two: state: redis only
      cache:
        exact:    {enabled: true, ttl_s: 3600, max_entries: 10000}
        semantic: {enabled: false, threshold: 0.92, ttl_s: 3600, engine: auto, threads: 1}
      speed:    {alpha: 0.2, seed_window_s: 86400, seed_limit: 2000, flush_s: 0.5}
      state: memory            # or redis: breaker state, caches and speeds shared by every replica
      on_stream_cut: continue  # or restart, fail: a stream that breaks after its first token
      redis_url: redis://127.0.0.1:6379/0
      redis_prefix: turnout

With ``state: redis`` one Redis connection pool serves the breakers, the caches and
the speed estimates; :meth:`Resources.aclose` flushes the estimates and the breakers'
queued successes, then closes it.
Given the trace store, the speed estimates are seeded from its recent successful
attempts (:func:`~turnout.execution.speed.seed_from_store`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from turnout.config.schema import redis_of
from turnout.config.settings import Settings
from turnout.execution.breaker import BreakerBoard, BreakerConfig
from turnout.execution.cache_gate import ResponseCache
from turnout.execution.executor import AttemptSink, Executor
from turnout.execution.retry import RetryPolicy
from turnout.execution.run import StreamCutRule
from turnout.execution.speed import SpeedBoard, seed_from_store
from turnout.execution.timeouts import Timeouts
from turnout.providers.pool import ModelPool
from turnout.tracing.store import TraceStore

T = TypeVar("T")


@dataclass(slots=True)
class Resources:
    """What an executor holds open besides its providers (a Redis client)."""

    closers: list[Any] = field(default_factory=list)

    async def aclose(self) -> None:
        for c in self.closers:
            await c.aclose()
        self.closers.clear()


def build_executor(
    settings: Settings,
    *,
    pool: ModelPool | None = None,
    on_attempt: AttemptSink | None = None,
    use_cache: bool = True,
    on_stream_cut: StreamCutRule | None = None,
    store: TraceStore | None = None,
) -> tuple[Executor, Resources]:
    """The executor the config describes. ``use_cache=False`` leaves the caches out
    (``turnout bench`` does, so repeated runs measure the models, not the cache);
    ``store`` seeds the speed estimates."""
    cfg: Mapping[str, Any] = settings.executor
    pool = pool or ModelPool(settings)
    resources = Resources()
    redis = _redis(cfg, resources) if cfg.get("state") == "redis" else None
    prefix = redis_of(cfg)[1]
    retry = _fields(RetryPolicy, cfg.get("retries"))
    timeouts = _fields(Timeouts, cfg.get("timeouts"))
    breakers = _breakers(cfg.get("breaker") or {}, redis, prefix, resources)
    caches = _caches(cfg.get("cache"), redis, prefix) if use_cache else ()
    executor = Executor(
        pool, retry=retry, timeouts=timeouts, on_attempt=on_attempt, breakers=breakers,
        caches=caches, on_stream_cut=on_stream_cut or cfg.get("on_stream_cut", "continue"),
    )  # fmt: skip
    executor.speeds = _speeds(cfg.get("speed") or {}, redis, prefix, resources, store)
    return executor, resources


def _fields(cls: type[T], given: Mapping[str, Any] | None) -> T:
    """``cls`` with the fields the config gives; the dataclass holds the defaults."""
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    return cls(**{k: v for k, v in (given or {}).items() if k in names})


def _speeds(
    s: Mapping[str, Any], redis: Any, prefix: str, resources: Resources, store: TraceStore | None
) -> SpeedBoard:
    alpha = float(s.get("alpha", 0.2))
    board: SpeedBoard
    if redis is None:
        board = SpeedBoard(alpha=alpha)
    else:
        from turnout.execution.speed_redis import RedisSpeedBoard

        board = RedisSpeedBoard(
            redis, prefix=f"{prefix}:speed", alpha=alpha, flush_s=float(s.get("flush_s", 0.5))
        )
        resources.closers.insert(0, board)  # flushed before the client closes
    if store is not None:
        seed_from_store(
            board, store, window_s=float(s.get("seed_window_s", 86400.0)),
            limit=int(s.get("seed_limit", 2000)),
        )  # fmt: skip
    return board


def _redis(cfg: Mapping[str, Any], resources: Resources) -> Any:
    client = redis_client(cfg)
    resources.closers.append(client)
    return client


def redis_client(cfg: Mapping[str, Any]) -> Any:
    """A ``redis.asyncio.Redis`` for the ``executor:`` section's shared state: every call
    bounded by ``redis_timeout_s``, no retries of its own (the caller goes local)."""
    from redis.asyncio import Redis
    from redis.asyncio.retry import Retry
    from redis.backoff import NoBackoff

    url, _, timeout = redis_of(cfg)
    return Redis.from_url(
        url, socket_timeout=timeout, socket_connect_timeout=timeout, retry=Retry(NoBackoff(), 0)
    )


def _breakers(
    b: Mapping[str, Any], redis: Any, prefix: str, resources: Resources
) -> BreakerBoard | None:
    if not b.get("enabled", True):
        return None
    config = _fields(BreakerConfig, b)
    if redis is None:
        return BreakerBoard(config)
    from turnout.execution.breaker_redis import RedisBreakerStore

    store = RedisBreakerStore(
        redis, prefix=f"{prefix}:breaker", view_ttl_s=float(b.get("view_ttl_s", 0.25)),
        flush_s=float(b.get("flush_s", 0.01)),
    )  # fmt: skip
    resources.closers.insert(0, store)  # its queued successes sent before the client closes
    return BreakerBoard(config, store)


def _caches(c: Mapping[str, Any] | None, redis: Any, prefix: str) -> tuple[ResponseCache, ...]:
    if not c:
        return ()
    from turnout.execution.cache import ExactCache, MemoryBackend, RedisBackend

    out: list[ResponseCache] = []
    exact = c.get("exact") or {}
    if exact.get("enabled", True):
        backend = (
            RedisBackend(redis, prefix=f"{prefix}:cache")
            if redis is not None
            else MemoryBackend(max_entries=int(exact.get("max_entries", 10_000)))
        )
        out.append(ExactCache(backend, float(exact.get("ttl_s", 3600.0))))
    semantic = c.get("semantic") or {}
    if semantic.get("enabled", False):
        from turnout.execution.cache import MemoryVectorIndex, MiniLMEmbedder, SemanticCache
        from turnout.execution.cache.redis_vectors import RedisVectorIndex

        embedder = MiniLMEmbedder(
            engine=semantic.get("engine", "auto"), threads=int(semantic.get("threads", 1))
        )
        embedder.load()
        index = (
            RedisVectorIndex(redis, 384, prefix=f"{prefix}:semantic")
            if redis is not None
            else MemoryVectorIndex(384)
        )
        out.append(
            SemanticCache(
                embedder,
                index,
                threshold=float(semantic.get("threshold", 0.92)),
                ttl_s=float(semantic.get("ttl_s", 3600.0)),
            )
        )
    return tuple(out)
