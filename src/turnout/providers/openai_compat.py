"""``kind: openai``: any OpenAI-compatible chat-completions endpoint over HTTP.

OpenAI, OpenRouter, vLLM, Ollama, LiteLLM, llama.cpp's server or a company
gateway: one :class:`OpenAICompatProvider` per ``providers:`` entry, holding one
pool of keep-alive connections (:mod:`turnout.providers.http1`; chosen over aiohttp's
client, httpx and others in ``benchmarks/http_clients.py``). The pool is made on the
first call, inside the running event loop, and closed by
:meth:`~OpenAICompatProvider.aclose`: call it before that loop ends (a provider serves
one event loop at a time).

The API key is read only from the environment variable named by ``api_key_env``,
on the first call; if it is unset the call fails with AuthenticationError naming
the variable. The key never appears in an error message or a ``repr()``.

Every failure becomes one :mod:`turnout.errors` class (see
:mod:`turnout.providers.openai_errors`); a stream that ends before ``[DONE]`` is a
ProviderConnectionError, so fallbacks fire when a stream breaks.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any, NoReturn

from yarl import URL

from turnout import __version__
from turnout.config.settings import ModelSpec, ProviderConfig, Timeouts
from turnout.errors import (
    AuthenticationError,
    BadRequest,
    ConfigError,
    ContentFiltered,
    MalformedResponse,
    ProviderConnectionError,
    ProviderError,
    ProviderTimeout,
)
from turnout.execution.watchdog import Expired, Watchdog
from turnout.pricing.tokens import request_prompt_tokens
from turnout.providers import http1, openai_errors
from turnout.providers.base import Provider
from turnout.providers.redact import Secret, redact, truncate
from turnout.providers.sse import SSEDecoder, SSEError
from turnout.types import ChatRequest, ChatResponse, StreamEnd, StreamEvent
from turnout.wire import jsonio
from turnout.wire import requests as wire_requests
from turnout.wire import responses as wire


class OpenAICompatProvider(Provider):
    """Answers chat requests through ``POST {base_url}/chat/completions``."""

    def __init__(
        self,
        *,
        name: str,
        base_url: str,
        api_key_env: str | None = None,
        headers: Mapping[str, str] | None = None,
        timeouts: Timeouts | None = None,
        max_connections: int = 100,
        models: Sequence[ModelSpec] = (),
    ) -> None:
        url = URL(base_url.rstrip("/"))
        if url.scheme not in ("http", "https") or not url.host:
            raise ValueError(f"base_url must be an http(s) URL, got {_safe_url(url)!r}")
        self.name = name
        self.base_url = str(url)
        self.endpoint = _safe_url(url)
        self.api_key_env = api_key_env
        self.timeouts = timeouts or Timeouts()
        self.max_connections = max_connections
        self.models = tuple(models)
        self._headers = dict(headers or {})
        # the endpoint's path under base_url's, its query (Azure's ?api-version=) kept
        path = url.path.rstrip("/") + "/chat/completions"
        self._url = url.with_path(path).with_query(url.query)
        for header, value in self._headers.items():  # they go into the request verbatim
            if any(c in header + value for c in "\r\n"):
                field = f"providers.{name}.headers.{header.strip()}"
                raise ConfigError("holds a line break", field=field)
        self._key: Secret | None = None
        self._pool: http1.Pool | None = None
        self._head = b""  # the request line and headers, made with the pool
        self._loop: asyncio.AbstractEventLoop | None = None

    def __repr__(self) -> str:
        return (
            f"OpenAICompatProvider(name={self.name!r}, base_url={self.endpoint!r}, "
            f"api_key_env={self.api_key_env!r})"
        )

    # -- plumbing ----------------------------------------------------------------------

    def _model_id(self, request: ChatRequest) -> str:
        if request.model:
            return request.model
        if len(self.models) == 1:
            return self.models[0].id
        raise BadRequest(f"no model id in the request to provider {self.name!r}")

    def _read_key(self, model: str) -> Secret | None:
        if self.api_key_env is None:
            return None
        value = os.environ.get(self.api_key_env)
        if not value:
            raise AuthenticationError(
                f"environment variable {self.api_key_env} is not set "
                f"(provider {self.name!r} reads its API key from it)",
                model=model,
            )
        return Secret(value)

    async def _pool_for(self, model: str) -> http1.Pool:
        pool, loop = self._pool, asyncio.get_running_loop()
        if pool is not None and self._loop is loop:
            return pool
        return await self._open_pool(model, loop)

    async def _open_pool(self, model: str, loop: asyncio.AbstractEventLoop) -> http1.Pool:
        key = self._read_key(model)
        old, old_loop = self._pool, self._loop
        if old is not None:
            if old_loop is not None and not old_loop.is_closed():
                raise RuntimeError(
                    f"provider {self.name!r} is already in use by another event loop "
                    "(use one provider per loop, and aclose() it before the loop ends)"
                )
            await old.aclose()  # its loop is closed: this only forgets its connections
        headers = {
            "Content-Type": "application/json",
            "Accept": "application/json, text/event-stream",
            "User-Agent": f"turnout/{__version__}",
        }
        reserved = {"host", "content-length", "transfer-encoding", "connection"}
        headers |= {k: v for k, v in self._headers.items() if k.lower() not in reserved}
        if key is not None:
            token = key.reveal()
            if "\r" in token or "\n" in token:
                raise AuthenticationError(
                    f"the API key in {self.api_key_env} holds a line break", model=model
                )
            headers["Authorization"] = f"Bearer {token}"
        url = self._url
        host, port = url.raw_host or "", url.port or 0  # yarl fills in 80 / 443
        default_port = 443 if url.scheme == "https" else 80
        self._head = http1.request_head(url.raw_path_qs, host, port, default_port, headers)
        self._key, self._loop = key, loop
        self._pool = http1.Pool(
            url.scheme, host, port, limit=self.max_connections,
            connect_timeout=self.timeouts.connect,
        )  # fmt: skip
        return self._pool

    async def aclose(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            await pool.aclose()

    def _where(self) -> str:
        return f"{self.name} ({self.endpoint})"

    def _secrets(self) -> tuple[Secret | None]:
        return (self._key,)

    def _malformed(self, problem: str, model: str) -> MalformedResponse:
        said = truncate(redact(problem, self._secrets()), openai_errors.MESSAGE_LIMIT)
        return MalformedResponse(f"malformed answer from {self._where()}: {said}", model=model)

    async def _http_error(self, response: http1.Response, model: str) -> NoReturn:
        body = await response.read()
        raise openai_errors.classify_http(
            response.status,
            body,
            response.headers,
            provider=self._where(),
            model=model,
            secrets=self._secrets(),
        )

    def _watchdog(self) -> Watchdog:
        """``read``: each wait on the provider (the answer's head, each chunk, a whole
        unstreamed body); ``total``: the whole call."""
        t = self.timeouts
        return Watchdog(t.read, asyncio.get_running_loop().time() + t.total)

    def _timed_out(self, exc: Expired, model: str) -> ProviderTimeout:
        t, where = self.timeouts, self._where()
        if exc.total:
            return ProviderTimeout(f"total timeout ({t.total}s) calling {where}", model=model)
        return ProviderTimeout(f"read timeout (no data for {t.read}s) from {where}", model=model)

    def _transport_error(self, exc: http1.HttpFailure, model: str) -> ProviderError:
        t, where = self.timeouts, self._where()
        if isinstance(exc, http1.ConnectTimeout):
            unsent = ProviderTimeout(f"connect timeout ({t.connect}s) to {where}", model=model)
            unsent.sent = False
            return unsent
        if isinstance(exc, http1.ConnectFailed):
            reason = exc.os_error.strerror or str(exc.os_error) or type(exc.os_error).__name__
            what = f"cannot connect to {where}: {reason}"
        elif isinstance(exc, http1.BodyIncomplete):
            what = f"connection to {where} closed before the answer was complete ({exc})"
        elif isinstance(exc, http1.Disconnected):
            what = f"{where} disconnected before answering"
        else:
            what = f"connection to {where} failed: {type(exc).__name__}: {exc}"
        return ProviderConnectionError(redact(what, self._secrets()), model=model)

    # -- calls -------------------------------------------------------------------------

    async def complete(self, request: ChatRequest) -> ChatResponse:
        model = self._model_id(request)
        pool = await self._pool_for(model)
        body = jsonio.encode(wire_requests.request_body(request, model=model, stream=False))
        start = time.perf_counter()
        watch = self._watchdog()
        try:
            response = await watch.wait(pool.request(self._head, body))
            async with response:
                if response.status >= 300:
                    await watch.wait(self._http_error(response, model))
                raw = await watch.wait(response.read())
        except Expired as exc:
            raise self._timed_out(exc, model) from None
        except http1.HttpFailure as exc:
            raise self._transport_error(exc, model) from None
        finally:
            watch.close()
        latency = time.perf_counter() - start
        try:
            data = jsonio.load_json(raw)
            if isinstance(data, dict) and "error" in data and not data.get("choices"):
                info = openai_errors.error_info_from(data)
                raise self._classify_event(info, model, "body")
            answer = wire.parse_completion(
                data,
                model=model,
                latency_s=latency,
                prompt_tokens=lambda: request_prompt_tokens(request),
            )
        except ValueError as exc:
            raise self._malformed(str(exc), model) from None
        if answer.finish_reason == "content_filter":
            filtered = ContentFiltered(
                f"the answer from {self._where()} was stopped by its content filter", model=model
            )
            filtered.usage = answer.usage
            raise filtered
        return answer

    def _classify_event(
        self, info: openai_errors.ErrorInfo, model: str, origin: str = "stream"
    ) -> ProviderError:
        return openai_errors.classify_embedded(
            info, origin, provider=self._where(), model=model, secrets=self._secrets()
        )

    async def stream(self, request: ChatRequest) -> AsyncIterator[StreamEvent]:
        model = self._model_id(request)
        pool = await self._pool_for(model)
        body = jsonio.encode(wire_requests.request_body(request, model=model, stream=True))
        state = wire.StreamState(model)
        decoder = SSEDecoder()
        done = False
        ttft: float | None = None
        start = time.perf_counter()
        watch = self._watchdog()
        try:
            response = await watch.wait(pool.request(self._head, body))
            async with response:
                if response.status >= 300:
                    await watch.wait(self._http_error(response, model))
                chunks = aiter(response)
                while True:
                    try:
                        chunk = await watch.wait(anext(chunks))
                    except StopAsyncIteration:
                        break
                    for data in decoder.feed(chunk):
                        if done:
                            continue
                        if data == "[DONE]":
                            done = True
                            continue
                        for delta in self._deltas(state, data, model):
                            if ttft is None:
                                ttft = time.perf_counter() - start
                            yield delta
                for data in decoder.close():
                    if data == "[DONE]":
                        done = True
                    elif not done:
                        for delta in self._deltas(state, data, model):
                            if ttft is None:
                                ttft = time.perf_counter() - start
                            yield delta
        except Expired as exc:
            raise self._timed_out(exc, model) from None
        except http1.HttpFailure as exc:
            if not (done and isinstance(exc, http1.BodyIncomplete)):
                raise self._transport_error(exc, model) from None
            # cut after [DONE]: the answer is whole, only the body's end is missing
        except SSEError as exc:
            raise self._malformed(str(exc), model) from None
        finally:
            watch.close()
        if not done and state.finish_reason is None:
            raise ProviderConnectionError(
                f"the stream from {self._where()} ended before [DONE]", model=model
            )
        if state.finish_reason == "content_filter":
            filtered = ContentFiltered(
                f"the answer from {self._where()} was stopped by its content filter", model=model
            )
            filtered.usage = state.final_usage(lambda: request_prompt_tokens(request))
            raise filtered
        yield StreamEnd(
            state.finish_reason,
            state.final_usage(lambda: request_prompt_tokens(request)),
            state.model,
            state.response_id,
            ttft,
            state.extra(),
        )

    def _deltas(self, state: wire.StreamState, data: str, model: str) -> list[wire.Delta]:
        try:
            chunk: Any = jsonio.load_json(data, what="stream chunk")
            if isinstance(chunk, dict) and "error" in chunk and not chunk.get("choices"):
                raise self._classify_event(openai_errors.error_info_from(chunk), model)
            return state.feed(chunk)
        except ValueError as exc:
            raise self._malformed(str(exc), model) from None


def _safe_url(url: URL) -> str:
    """``url`` without user, password or query (they may hold credentials)."""
    return str(url.with_user(None).with_query(None)) if url.host else str(url)


def from_config(config: ProviderConfig, models: Sequence[ModelSpec]) -> Provider:
    """Build the provider for a ``kind: openai`` entry of turnout.yaml."""
    options = config.options
    field = f"providers.{config.name}"
    base_url = options.get("base_url")
    if not isinstance(base_url, str) or not base_url:
        raise ConfigError("needs a base_url (http or https)", field=f"{field}.base_url")
    api_key_env = options.get("api_key_env")
    if api_key_env is not None and (not isinstance(api_key_env, str) or not api_key_env):
        raise ConfigError("must name an environment variable", field=f"{field}.api_key_env")
    headers = {str(k): str(v) for k, v in (options.get("headers") or {}).items()}
    try:
        return OpenAICompatProvider(
            name=config.name,
            base_url=base_url,
            api_key_env=api_key_env,
            headers=headers,
            timeouts=config.timeouts,
            max_connections=int(options.get("max_connections") or 100),
            models=models,
        )
    except ValueError as exc:
        raise ConfigError(str(exc), field=f"{field}.base_url") from None
