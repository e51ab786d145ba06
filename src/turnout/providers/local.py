"""The embedded local provider: llama.cpp (through ``xllamacpp``) in this process.

``kind: local`` serves the models of :mod:`turnout.providers.local_models`. Nothing
happens at construction: each model is located, verified and loaded on its first
request (or by :meth:`LocalProvider.warm_up`), one llama.cpp instance per model.

Every call streams from llama.cpp in a worker thread, so the event loop stays free,
the time to first token is measured, and a cancelled or abandoned call stops the
generation at the next token. One generation runs at a time per model (others
queue); and since each instance uses ``threads`` cores, at most
``cores // threads`` generations run at once across models, because llama.cpp
thread pools that share cores slow each other down far more than they gain.

Options (``providers.<name>``): ``cache_dir`` (assembled GGUFs and verification
records), ``context_size`` (default 4096, capped at the model's window), ``threads``
(default: the cores this process may use). ``TURNOUT_LOCAL_VERBOSITY`` (0-4) shows
llama.cpp's own log on stderr. A request without ``seed`` gets a fixed seed, so
runs are reproducible (greedy at ``temperature: 0``).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import AsyncGenerator, AsyncIterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from turnout.config.settings import ModelSpec, ProviderConfig
from turnout.errors import BadRequest, ConfigError, ServerError
from turnout.providers.base import Provider
from turnout.providers.local_engine import (
    DEFAULT_MAX_TOKENS,
    DEFAULT_SEED,
    Engine,
    Generation,
    load_engine,
)
from turnout.providers.local_models import LocalModel, ensure_model, resolve
from turnout.types import (
    ChatRequest,
    ChatResponse,
    StreamEnd,
    StreamEvent,
    TextDelta,
    ToolCall,
    ToolCallDelta,
)

_CLOSE_S = 30.0
"""How long aclose() waits for llama.cpp to free one model."""

__all__ = ["DEFAULT_MAX_TOKENS", "DEFAULT_SEED", "LocalOptions", "LocalProvider", "from_config"]


def available_cores() -> int:
    """The cores this process may run on (its CPU affinity), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


@dataclass(frozen=True, slots=True)
class LocalOptions:
    """The ``kind: local`` options, validated."""

    cache_dir: Path | None = None
    context_size: int = 4096
    threads: int | None = None

    @property
    def thread_count(self) -> int:
        return self.threads or available_cores()

    @classmethod
    def from_mapping(cls, options: Mapping[str, Any], *, provider: str = "local") -> LocalOptions:
        def field(name: str) -> str:
            return f"providers.{provider}.{name}"

        cache_dir = options.get("cache_dir")
        if cache_dir is not None and not isinstance(cache_dir, str | os.PathLike):
            raise ConfigError("must be a path", field=field("cache_dir"))
        context_size = options.get("context_size", 4096)
        if not isinstance(context_size, int) or context_size < 256:
            raise ConfigError("must be an integer >= 256", field=field("context_size"))
        threads = options.get("threads")
        if threads is not None and (not isinstance(threads, int) or threads < 1):
            raise ConfigError("must be a positive integer", field=field("threads"))
        return cls(
            Path(cache_dir).expanduser() if cache_dir is not None else None,
            context_size,
            threads,
        )


class LocalProvider(Provider):
    """Answers chat requests with catalogue models run by llama.cpp in-process.

    ``models`` maps each model id that requests may name to its catalogue entry
    and the context size to load it with.
    """

    def __init__(
        self,
        models: Mapping[str, tuple[LocalModel, int]] | None = None,
        *,
        options: LocalOptions | None = None,
        name: str = "local",
    ) -> None:
        self.name = name
        self.options = options or LocalOptions()
        self._models: dict[str, tuple[LocalModel, int]] = dict(models or {})
        self._engines: dict[str, Engine] = {}
        self._executor: ThreadPoolExecutor | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._load_locks: dict[str, asyncio.Lock] = {}
        self._busy: dict[str, asyncio.Lock] = {}
        self._cpu: asyncio.Semaphore | None = None
        self._running: set[Generation] = set()
        self._closed = False

    # -- public ----------------------------------------------------------------------------

    @property
    def load_times(self) -> Mapping[str, float]:
        """Seconds each loaded model took to verify and load, by catalogue id."""
        return {key: engine.load_s for key, engine in self._engines.items()}

    async def warm_up(self, model_ids: Sequence[str] | None = None) -> Mapping[str, float]:
        """Load models now (default: all configured) instead of on first request."""
        ids = list(model_ids) if model_ids is not None else list(self._models)
        for model_id in ids:
            await self._engine(model_id)
        return self.load_times

    async def complete(self, request: ChatRequest) -> ChatResponse:
        began: list[float] = []
        text: list[str] = []
        calls: dict[int, list[str]] = {}
        end: StreamEnd | None = None
        async for event in self._generate(request, began):
            if isinstance(event, TextDelta):
                text.append(event.text)
            elif isinstance(event, ToolCallDelta):
                slot = calls.setdefault(event.index, ["", "", ""])
                slot[0] = slot[0] or (event.id or "")
                slot[1] = slot[1] or (event.name or "")
                slot[2] += event.arguments
            else:
                end = event
        assert end is not None  # stream() always ends with a StreamEnd
        return ChatResponse(
            content="".join(text) if text or not calls else None,
            usage=end.usage,
            model=end.model,
            finish_reason=end.finish_reason,
            tool_calls=tuple(ToolCall(c[0], c[1], c[2]) for _, c in sorted(calls.items())),
            latency_s=time.perf_counter() - began[0],
            ttft_s=end.ttft_s,
            response_id=end.response_id,
        )

    async def stream(self, request: ChatRequest) -> AsyncIterator[StreamEvent]:
        async with contextlib.aclosing(self._generate(request, [])) as events:
            async for event in events:
                yield event

    async def _generate(
        self, request: ChatRequest, began: list[float]
    ) -> AsyncGenerator[StreamEvent, None]:
        """Stream one generation. Latency and time to first token are measured from when
        the model starts on this request: loading the model and waiting for the model
        (one generation at a time) are not the request's latency."""
        ttft: float | None = None
        key = self._key(request.model)
        engine = await self._engine(request.model)
        busy, cpu = self._busy[key], self._cpu
        assert cpu is not None
        async with busy, cpu:
            start = time.perf_counter()
            began.append(start)
            generation = engine.start(request, self._pool(), asyncio.get_running_loop())
            self._running.add(generation)
            try:
                async for chunk in generation.chunks():
                    for event in generation.events(chunk):
                        if ttft is None:
                            ttft = time.perf_counter() - start
                        yield event
                usage, finish, response_id = generation.result()
            finally:
                await generation.stop()
                self._running.discard(generation)
        yield StreamEnd(finish, usage, request.model, response_id, ttft)

    async def aclose(self) -> None:
        """Stop running generations and free every loaded model."""
        self._closed = True
        for generation in list(self._running):
            generation.cancel()
        engines, self._engines = list(self._engines.values()), {}
        executor, self._executor = self._executor, None
        if executor is None:
            return
        loop = asyncio.get_running_loop()
        try:
            for engine in engines:
                await asyncio.wait_for(loop.run_in_executor(executor, engine.close), _CLOSE_S)
        finally:
            executor.shutdown(wait=False, cancel_futures=True)

    def __repr__(self) -> str:
        return f"LocalProvider(name={self.name!r}, models={sorted(self._models)!r})"

    # -- internals -------------------------------------------------------------------------

    def _pool(self) -> ThreadPoolExecutor:
        if self._executor is None:
            self._executor = ThreadPoolExecutor(
                max_workers=len(self._models) + 2, thread_name_prefix=f"turnout-{self.name}"
            )
        return self._executor

    def _key(self, model_id: str) -> str:
        entry = self._models.get(model_id)
        if entry is None:
            try:
                entry = (resolve(model_id), self.options.context_size)
            except ConfigError:
                known = ", ".join(sorted(self._models)) or "none"
                raise BadRequest(
                    f"not a model of local provider {self.name!r} (known: {known})",
                    model=model_id,
                ) from None
            self._models[model_id] = entry
        self._bind_loop()
        key = entry[0].id
        self._load_locks.setdefault(key, asyncio.Lock())
        self._busy.setdefault(key, asyncio.Lock())
        return key

    def _bind_loop(self) -> None:
        """asyncio primitives belong to one loop; a new loop (asyncio.run) gets new ones."""
        loop = asyncio.get_running_loop()
        if self._loop is not loop:
            self._loop = loop
            self._load_locks, self._busy = {}, {}
            parallel = max(1, available_cores() // self.options.thread_count)
            self._cpu = asyncio.Semaphore(parallel)

    async def _engine(self, model_id: str) -> Engine:
        if self._closed:
            raise ServerError(f"local provider {self.name!r} is closed", model=model_id)
        key = self._key(model_id)
        engine = self._engines.get(key)
        if engine is not None:
            return engine
        async with self._load_locks[key]:
            engine = self._engines.get(key)
            if engine is None:
                model, context = self._models[model_id]
                loop = asyncio.get_running_loop()
                engine = await loop.run_in_executor(self._pool(), self._load, model, context)
                self._engines[key] = engine
        return engine

    def _load(self, model: LocalModel, context: int) -> Engine:
        start = time.perf_counter()
        path = ensure_model(model, self.options.cache_dir)
        return load_engine(
            model,
            path,
            context_size=min(context, model.context_window),
            threads=self.options.thread_count,
            started=start,
        )


def from_config(config: ProviderConfig, models: Sequence[ModelSpec]) -> Provider:
    """Build the local provider of one ``providers:`` entry for its pool models."""
    options = LocalOptions.from_mapping(config.options, provider=config.name)
    served: dict[str, tuple[LocalModel, int]] = {}
    for spec in models:
        try:
            entry = resolve(spec.id)
        except ConfigError as exc:
            raise ConfigError(str(exc), field=f"models.{spec.name}.id") from None
        context = options.context_size
        if spec.context_window is not None:
            context = min(context, spec.context_window)
        served[spec.id] = (entry, context)
    return LocalProvider(served, options=options, name=config.name)
