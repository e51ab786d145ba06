"""The local provider without llama.cpp: request bodies, chunk parsing, error mapping,
options, and queueing / cancellation against a scripted stand-in for xllamacpp.Server."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest

from turnout.config.settings import ModelSpec, ProviderConfig
from turnout.errors import BadRequest, ConfigError, ContextLengthExceeded, ServerError
from turnout.pricing.cost import Price
from turnout.providers import local
from turnout.providers.local import LocalOptions, LocalProvider, from_config
from turnout.providers.local_engine import (
    DEFAULT_MAX_TOKENS,
    DEFAULT_SEED,
    Engine,
    Generation,
    chat_body,
    provider_error,
)
from turnout.providers.local_models import QWEN25_CODER_05B, SMOLLM2, LocalModel
from turnout.types import (
    ChatRequest,
    Message,
    StreamEnd,
    TextDelta,
    Tier,
    ToolCall,
    ToolCallDelta,
    Usage,
)

SMOL = "smollm2-135m-instruct"
QWEN = "qwen2.5-coder-0.5b-instruct"


def request(model: str = SMOL, text: str = "hi", **kw: Any) -> ChatRequest:
    return ChatRequest((Message.user(text),), model=model, **kw)


# -- request body --------------------------------------------------------------------------


def test_chat_body_defaults_are_streamed_capped_and_seeded() -> None:
    body = chat_body(request())
    assert body == {
        "messages": [{"role": "user", "content": "hi"}],
        "stream": True,
        "stream_options": {"include_usage": True},
        "max_tokens": DEFAULT_MAX_TOKENS,
        "seed": DEFAULT_SEED,
    }


def test_chat_body_caps_with_max_tokens_whatever_name_the_client_used() -> None:
    body = chat_body(request(max_tokens=9, max_tokens_param="max_completion_tokens"))
    assert body["max_tokens"] == 9 and "max_completion_tokens" not in body


def test_chat_body_maps_every_field() -> None:
    call = ToolCall("call_1", "lookup", '{"q": 1}')
    req = ChatRequest(
        (
            Message.system("be terse"),
            Message("assistant", None, tool_calls=(call,)),
            Message("tool", "42", tool_call_id="call_1", name="lookup"),
        ),
        model=SMOL,
        max_tokens=7,
        temperature=0.0,
        top_p=0.9,
        stop=("\n\n",),
        seed=3,
        tools=({"type": "function", "function": {"name": "lookup"}},),
        tool_choice="auto",
        response_format={"type": "json_object"},
        extra={"top_k": 5, "stream": False, "messages": []},
    )
    body = chat_body(req)
    assert body["messages"] == [
        {"role": "system", "content": "be terse"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "lookup", "arguments": '{"q": 1}'},
                }
            ],
        },
        {"role": "tool", "content": "42", "tool_call_id": "call_1", "name": "lookup"},
    ]
    assert body["max_tokens"] == 7
    assert body["temperature"] == 0.0
    assert body["top_p"] == 0.9
    assert body["stop"] == ["\n\n"]
    assert body["seed"] == 3
    assert body["tools"] == [{"type": "function", "function": {"name": "lookup"}}]
    assert body["tool_choice"] == "auto"
    assert body["response_format"] == {"type": "json_object"}
    assert body["top_k"] == 5
    assert body["stream"] is True  # extra cannot turn streaming off


# -- errors and chunks ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("error", "cls"),
    [
        (
            {"code": 400, "type": "exceed_context_size_error", "message": "too long"},
            ContextLengthExceeded,
        ),
        ({"code": 400, "type": "invalid_request_error", "message": "bad"}, BadRequest),
        ({"code": 501, "type": "not_supported_error", "message": "no"}, BadRequest),
        ({"code": 500, "type": "server_error", "message": "boom"}, ServerError),
        ({}, ServerError),
    ],
)
def test_provider_error_mapping(error: Mapping[str, Any], cls: type[Exception]) -> None:
    exc = provider_error(error, SMOL)
    assert type(exc) is cls
    assert str(exc).startswith(f"{SMOL}: ")


def test_generation_parses_text_tool_calls_finish_and_usage() -> None:
    gen = Generation(None, {}, SMOL, asyncio.new_event_loop())
    gen.loop.close()
    events = gen.events({"id": "c1", "choices": [{"delta": {"role": "assistant"}}]})
    events += gen.events({"id": "c1", "choices": [{"delta": {"content": "Hel"}}]})
    events += gen.events(
        {
            "choices": [
                {
                    "delta": {
                        "tool_calls": [
                            {"index": 0, "id": "t1", "function": {"name": "f", "arguments": "{"}}
                        ]
                    }
                }
            ]
        }
    )
    events += gen.events({"choices": [{"delta": {}, "finish_reason": "stop"}]})
    events += gen.events(
        {
            "choices": [],
            "usage": {
                "prompt_tokens": 24,
                "completion_tokens": 8,
                "prompt_tokens_details": {"cached_tokens": 23},
            },
        }
    )
    assert events == [TextDelta("Hel"), ToolCallDelta(0, "t1", "f", "{")]
    # llama.cpp's KV-cache reuse (cached_tokens: 23) is not a billed prompt cache
    assert gen.result() == (Usage(24, 8, 0), "stop", "c1")


def test_kv_cache_reuse_does_not_change_the_cost() -> None:
    """The same request costs the same whatever the engine's KV cache held before."""
    price = Price.of(5, 25, 0.5)
    costs = set()
    for reused in (6, 489):
        gen = Generation(None, {}, SMOL, asyncio.new_event_loop())
        gen.loop.close()
        gen.events(
            {
                "choices": [],
                "usage": {
                    "prompt_tokens": 490,
                    "completion_tokens": 100,
                    "prompt_tokens_details": {"cached_tokens": reused},
                },
            }
        )
        costs.add(price.cost(gen.result()[0]))
    assert costs == {price.cost(Usage(490, 100))}


# -- options and config ----------------------------------------------------------------------


def test_options_defaults_and_validation() -> None:
    opts = LocalOptions.from_mapping({"cache_dir": None, "context_size": 4096, "threads": None})
    assert opts == LocalOptions()
    assert opts.thread_count >= 1
    assert LocalOptions.from_mapping({"cache_dir": "~/m", "threads": 3}).cache_dir == (
        Path.home() / "m"
    )
    with pytest.raises(ConfigError, match=r"providers\.llm\.threads: must be a positive integer"):
        LocalOptions.from_mapping({"threads": 0}, provider="llm")
    with pytest.raises(ConfigError, match=r"providers\.local\.context_size"):
        LocalOptions.from_mapping({"context_size": "big"})


def spec(name: str, model_id: str, window: int | None = None) -> ModelSpec:
    return ModelSpec(name, "llm", model_id, Tier.EFFICIENT, Price(0, 0), context_window=window)


def test_from_config_rejects_unknown_model_ids() -> None:
    config = ProviderConfig("llm", "local")
    with pytest.raises(ConfigError, match=r"models\.cheap\.id: unknown local model 'gpt-4o'"):
        from_config(config, [spec("cheap", "gpt-4o")])


def test_from_config_builds_without_loading(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(local, "load_engine", _fail_load)
    config = ProviderConfig("llm", "local", options={"context_size": 2048, "threads": 1})
    provider = from_config(config, [spec("cheap", SMOL), spec("coder", QWEN, window=1024)])
    assert isinstance(provider, LocalProvider)
    assert provider.name == "llm"
    assert provider.load_times == {}
    assert "llm" in repr(provider)


def _fail_load(*args: Any, **kwargs: Any) -> Engine:
    raise AssertionError("loaded at construction")


def test_importing_the_provider_does_not_import_llama_cpp() -> None:
    code = (
        "import sys, turnout.providers.local, turnout.providers.registry; "
        "assert 'xllamacpp' not in sys.modules, 'imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


# -- a scripted xllamacpp.Server -------------------------------------------------------------


class FakeServer:
    """Streams ``tokens`` chunks, one every ``delay`` s, and tracks concurrency."""

    active = 0
    max_active = 0
    guard = threading.Lock()

    def __init__(self, tokens: int = 3, delay: float = 0.02) -> None:
        self.tokens = tokens
        self.delay = delay
        self.stopped_early = threading.Event()
        self.error: dict[str, Any] | None = None
        self.raises: Exception | None = None
        self.bodies: list[dict[str, Any]] = []

    def handle_chat_completions(self, body: dict[str, Any], cb: Callable[[Any], bool]) -> None:
        self.bodies.append(body)
        with FakeServer.guard:
            FakeServer.active += 1
            FakeServer.max_active = max(FakeServer.max_active, FakeServer.active)
        try:
            if self.raises is not None:
                raise self.raises
            if self.error is not None:
                cb({"error": self.error})
                return
            for i in range(self.tokens):
                time.sleep(self.delay)
                if cb({"id": "chatcmpl-1", "choices": [{"delta": {"content": f"t{i} "}}]}):
                    self.stopped_early.set()
                    return
            cb({"id": "chatcmpl-1", "choices": [{"delta": {}, "finish_reason": "length"}]})
            usage = {"prompt_tokens": 5, "completion_tokens": self.tokens}
            cb({"id": "chatcmpl-1", "choices": [], "usage": usage})
        finally:
            with FakeServer.guard:
                FakeServer.active -= 1


class Fakes(dict[str, FakeServer]):
    """The stand-in server of each loaded model, by catalogue id; ``loads`` in order."""

    def __init__(self) -> None:
        super().__init__()
        self.loads: list[str] = []


@pytest.fixture
def servers(monkeypatch: pytest.MonkeyPatch) -> Fakes:
    fakes = Fakes()
    FakeServer.active = FakeServer.max_active = 0

    def fake_ensure(model: LocalModel, cache_dir: Path | None) -> Path:
        return Path(f"/models/{model.filename}")

    def fake_load(
        model: LocalModel, path: Path, *, context_size: int, threads: int, started: float
    ) -> Engine:
        fakes.loads.append(model.id)
        server = fakes.setdefault(model.id, FakeServer())
        return Engine(model, path, server, context_size, threads, time.perf_counter() - started)

    monkeypatch.setattr(local, "ensure_model", fake_ensure)
    monkeypatch.setattr(local, "load_engine", fake_load)
    monkeypatch.setattr(local, "available_cores", lambda: 2)
    return fakes


def provider(threads: int = 2) -> LocalProvider:
    models = {SMOL: (SMOLLM2, 4096), QWEN: (QWEN25_CODER_05B, 4096)}
    return LocalProvider(models, options=LocalOptions(threads=threads))


async def test_complete_collects_text_usage_and_timing(servers: Fakes) -> None:
    prov = provider()
    response = await prov.complete(request(max_tokens=3, temperature=0))
    assert response.content == "t0 t1 t2 "
    assert response.usage == Usage(5, 3)
    assert response.finish_reason == "length"
    assert response.model == SMOL
    assert response.response_id == "chatcmpl-1"
    assert response.ttft_s is not None
    assert 0 < response.ttft_s <= response.latency_s
    assert servers[SMOL].bodies[0]["temperature"] == 0
    assert set(prov.load_times) == {SMOL}
    await prov.aclose()


async def test_stream_ends_with_usage_and_ttft(servers: Fakes) -> None:
    prov = provider()
    events = [e async for e in prov.stream(request())]
    assert events[:3] == [TextDelta("t0 "), TextDelta("t1 "), TextDelta("t2 ")]
    end = events[-1]
    assert isinstance(end, StreamEnd)
    assert end.usage == Usage(5, 3)
    assert end.ttft_s is not None
    await prov.aclose()


async def test_one_generation_at_a_time_per_model_and_one_load(
    servers: Fakes,
) -> None:
    prov = provider(threads=1)
    results = await asyncio.gather(*(prov.complete(request()) for _ in range(4)))
    assert [r.text for r in results] == ["t0 t1 t2 "] * 4
    assert FakeServer.max_active == 1
    assert servers.loads == [SMOL]
    await prov.aclose()


async def test_two_models_run_in_parallel_only_when_cores_allow(
    servers: Fakes,
) -> None:
    both = [request(SMOL), request(QWEN), request(SMOL), request(QWEN)]
    prov = provider(threads=1)  # 2 cores / 1 thread each: two models at once
    await asyncio.gather(*(prov.complete(r) for r in both))
    assert FakeServer.max_active == 2
    await prov.aclose()

    FakeServer.max_active = 0
    prov = provider(threads=2)  # each model wants both cores: one at a time
    await asyncio.gather(*(prov.complete(r) for r in both))
    assert FakeServer.max_active == 1
    await prov.aclose()


async def test_cancel_stops_the_generation_and_frees_the_model(
    servers: Fakes,
) -> None:
    prov = provider()
    await prov.warm_up([SMOL])
    slow = servers[SMOL]
    slow.tokens, slow.delay = 1000, 0.01
    task = asyncio.create_task(prov.complete(request()))
    await asyncio.sleep(0.1)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert slow.stopped_early.wait(1)
    slow.tokens = 2
    response = await asyncio.wait_for(prov.complete(request()), 2)
    assert response.text == "t0 t1 "
    await prov.aclose()


async def test_abandoned_stream_stops_the_generation(servers: Fakes) -> None:
    prov = provider()
    await prov.warm_up([SMOL])
    servers[SMOL].tokens = 1000
    stream = prov.stream(request())
    async for _ in stream:
        break
    await stream.aclose()
    assert servers[SMOL].stopped_early.is_set()
    assert FakeServer.active == 0
    await prov.aclose()


async def test_error_chunks_and_exceptions_are_provider_errors(
    servers: Fakes,
) -> None:
    prov = provider()
    await prov.warm_up([SMOL])
    servers[SMOL].error = {
        "code": 400,
        "type": "exceed_context_size_error",
        "message": "request (5031 tokens) exceeds the available context size (4096 tokens)",
    }
    with pytest.raises(ContextLengthExceeded, match="5031 tokens"):
        await prov.complete(request())
    servers[SMOL].error = None
    servers[SMOL].raises = RuntimeError("native crash")
    with pytest.raises(ServerError, match=r"llama\.cpp call failed: native crash"):
        await prov.complete(request())
    servers[SMOL].raises = None
    assert (await prov.complete(request())).text == "t0 t1 t2 "
    await prov.aclose()


async def test_unknown_model_and_closed_provider(servers: Fakes) -> None:
    prov = provider()
    with pytest.raises(BadRequest, match="not a model of local provider 'local'"):
        await prov.complete(request("gpt-4o"))
    assert (await prov.complete(request("smollm2"))).text  # an alias is served too
    await prov.aclose()
    assert prov.load_times == {}
    with pytest.raises(ServerError, match="closed"):
        await prov.complete(request())


def test_works_across_event_loops(servers: Fakes) -> None:
    prov = provider()
    assert asyncio.run(prov.complete(request())).text == "t0 t1 t2 "
    assert asyncio.run(prov.complete(request())).text == "t0 t1 t2 "
    asyncio.run(prov.aclose())
    assert servers.loads == [SMOL]
