"""One loaded llama.cpp model (``xllamacpp.Server``) and one streamed generation on it.

``xllamacpp.Server(params)`` loads a GGUF and runs llama.cpp's server loop in a
native thread; ``handle_chat_completions(body, callback)`` takes an OpenAI chat
body, blocks the calling thread, and calls ``callback`` with each parsed SSE chunk
(a dict) as it is produced, or once with ``{"error": {...}}``; returning True from
the callback stops the generation. It also listens on a random loopback port (no
way to turn that off): a random API key, never stored, keeps that port closed.

:class:`Generation` runs that blocking call in a worker thread and hands chunks to
the event loop through an asyncio queue, mapping them to turnout's stream events.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import threading
import time
from collections.abc import AsyncIterator, Mapping
from concurrent.futures import Executor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from turnout.errors import (
    BadRequest,
    ContextLengthExceeded,
    ModelPackageMissing,
    ProviderError,
    ServerError,
)
from turnout.providers.local_models import LocalModel
from turnout.types import ChatRequest, StreamEvent, TextDelta, ToolCallDelta, Usage
from turnout.wire import requests as wire_requests

DEFAULT_SEED = 42
"""Seed sent when a request has none, so sampled runs repeat too."""

DEFAULT_MAX_TOKENS = 1024
"""Cap when a request sets no ``max_tokens`` (small models can loop until the window fills)."""

_RESERVED = frozenset({"messages", "model", "stream", "stream_options"})
_DONE = object()


@dataclass(slots=True, eq=False)
class Engine:
    """A loaded model. ``server`` is the ``xllamacpp.Server``; None once closed."""

    model: LocalModel
    path: Path
    server: Any
    context_size: int
    threads: int
    load_s: float

    def start(
        self, request: ChatRequest, executor: Executor, loop: asyncio.AbstractEventLoop
    ) -> Generation:
        if self.server is None:
            raise ServerError("local model was unloaded", model=request.model)
        generation = Generation(self.server, chat_body(request), request.model, loop)
        generation.launch(executor)
        return generation

    def close(self) -> None:
        """Free the model (joins llama.cpp's loop thread): call from a worker thread."""
        self.server = None


def load_engine(
    model: LocalModel, path: Path, *, context_size: int, threads: int, started: float
) -> Engine:
    """Load ``path`` into llama.cpp. Blocking: call from a worker thread."""
    try:
        import xllamacpp
    except ImportError as exc:
        raise ModelPackageMissing(
            f"the local provider needs llama.cpp bindings: pip install xllamacpp ({exc})"
        ) from exc
    params = xllamacpp.CommonParams()
    params.model.path = str(path)
    params.model_alias = model.id
    params.n_ctx = context_size
    params.n_parallel = 1
    params.cpuparams.n_threads = threads
    params.cpuparams_batch.n_threads = threads
    params.n_threads_http = 1
    params.warmup = False
    params.fit_params = False  # probing free memory costs seconds and is moot on CPU
    params.cache_ram_mib = 0  # no host-RAM prompt cache beyond the one slot's KV cache
    params.ui = False
    params.endpoint_metrics = True  # used once below, to wait for the loop to start
    params.api_keys = [secrets.token_urlsafe(24)]
    params.verbosity = _verbosity()
    try:
        server = xllamacpp.Server(params)
        # The server loop starts in its own thread after the constructor returns; a
        # shutdown sent before it runs is lost and the destructor then hangs. A
        # metrics request is answered by that loop, so it has started afterwards.
        server.handle_metrics()
    except Exception as exc:
        raise ServerError(
            f"llama.cpp could not load {path} (n_ctx={context_size}, threads={threads}): {exc}; "
            "set TURNOUT_LOCAL_VERBOSITY=3 to see llama.cpp's log",
            model=model.id,
        ) from exc
    return Engine(model, path, server, context_size, threads, time.perf_counter() - started)


def _verbosity() -> int:
    try:
        return int(os.environ.get("TURNOUT_LOCAL_VERBOSITY", "0"))
    except ValueError:
        return 0


# -- request ---------------------------------------------------------------------------


def chat_body(request: ChatRequest) -> dict[str, Any]:
    """The OpenAI chat body llama.cpp gets for ``request`` (always streamed): the wire
    body of the ``openai`` provider, without a model (a server holds one), with
    turnout's defaults for ``max_tokens`` and ``seed`` (the cap always under that name,
    the one llama.cpp reads), and no extra field that would replace what the engine
    owns."""
    extra = {k: v for k, v in request.extra.items() if k not in _RESERVED}
    request = replace(request, extra=extra, max_tokens_param="max_tokens")
    body = wire_requests.request_body(request, model="", stream=True)
    del body["model"]
    body.setdefault("max_tokens", DEFAULT_MAX_TOKENS)
    body.setdefault("seed", DEFAULT_SEED)
    return body


# -- response --------------------------------------------------------------------------


def provider_error(error: Mapping[str, Any], model: str) -> ProviderError:
    """Map llama.cpp's ``{"code", "type", "message"}`` error to turnout's tree."""
    message = str(error.get("message") or "llama.cpp error")
    code = error.get("code")
    status = code if isinstance(code, int) else None
    kind = error.get("type")
    if kind == "exceed_context_size_error":
        return ContextLengthExceeded(message, model=model, status=status)
    if kind in ("invalid_request_error", "not_supported_error") or (
        status is not None and 400 <= status < 500
    ):
        return BadRequest(message, model=model, status=status)
    return ServerError(f"llama.cpp: {message}", model=model, status=status)


@dataclass(slots=True, eq=False)
class Generation:
    """One streamed chat completion running in a worker thread."""

    server: Any
    body: dict[str, Any]
    model: str
    loop: asyncio.AbstractEventLoop
    usage: Usage = field(default_factory=Usage)
    finish_reason: str | None = None
    response_id: str | None = None
    _queue: asyncio.Queue[Any] = field(default_factory=asyncio.Queue)
    _cancel: threading.Event = field(default_factory=threading.Event)
    _future: asyncio.Future[None] | None = None

    def launch(self, executor: Executor) -> None:
        self._future = self.loop.run_in_executor(executor, self._run)
        self._future.add_done_callback(lambda _: self._queue.put_nowait(_DONE))

    def _run(self) -> None:  # worker thread
        def on_chunk(chunk: Any) -> bool:
            if self._cancel.is_set():
                return True
            self.loop.call_soon_threadsafe(self._queue.put_nowait, chunk)
            return self._cancel.is_set()

        self.server.handle_chat_completions(self.body, on_chunk)

    def cancel(self) -> None:
        """Ask llama.cpp to stop at the next token (thread-safe)."""
        self._cancel.set()

    async def stop(self) -> None:
        """Cancel if still running and wait until the model is idle again."""
        self.cancel()
        if self._future is not None:
            try:
                await asyncio.shield(self._future)
            except Exception:
                return

    async def chunks(self) -> AsyncIterator[Mapping[str, Any]]:
        """Raw chunks until the call returns; raises the mapped ProviderError."""
        while True:
            item = await self._queue.get()
            if item is _DONE:
                assert self._future is not None
                exc = self._future.exception()
                if exc is not None:
                    raise ServerError(f"llama.cpp call failed: {exc}", model=self.model) from exc
                return
            if not isinstance(item, Mapping):
                continue
            error = item.get("error")
            if error is not None:
                raise provider_error(error if isinstance(error, Mapping) else {}, self.model)
            yield item

    def events(self, chunk: Mapping[str, Any]) -> list[StreamEvent]:
        """The stream events in one chunk; remembers finish reason, usage and id."""
        if self.response_id is None and isinstance(chunk.get("id"), str):
            self.response_id = chunk["id"]
        usage = chunk.get("usage")
        if isinstance(usage, Mapping):
            self.usage = _usage(usage)
        out: list[StreamEvent] = []
        for choice in chunk.get("choices") or ():
            delta = choice.get("delta") or {}
            text = delta.get("content")
            if text:
                out.append(TextDelta(text))
            for call in delta.get("tool_calls") or ():
                fn = call.get("function") or {}
                out.append(
                    ToolCallDelta(
                        int(call.get("index", 0)),
                        call.get("id"),
                        fn.get("name"),
                        fn.get("arguments") or "",
                    )
                )
            if choice.get("finish_reason"):
                self.finish_reason = choice["finish_reason"]
        return out

    def result(self) -> tuple[Usage, str | None, str | None]:
        return self.usage, self.finish_reason, self.response_id


def _usage(raw: Mapping[str, Any]) -> Usage:
    """Tokens in and out. llama.cpp's ``cached_tokens`` counts its reuse of its own KV
    cache (a prefix still in memory from the previous request on that slot): a speed-up
    that depends on what ran before, not a provider's billed prompt cache. It is never
    reported as cached input, so a local stand-in is priced as the hosted model it stands
    in for would bill the same request, and the same request always costs the same."""
    return Usage(int(raw.get("prompt_tokens") or 0), int(raw.get("completion_tokens") or 0))
