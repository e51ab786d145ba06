"""The local provider on the real models shipped as PyPI packages (llama.cpp in-process).

SmolLM2-135M answers a few short prompts; Qwen2.5-Coder-0.5B is assembled from its
six packages into the model cache (slow only on the first run) and says a few words.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator

import pytest

from turnout.config.settings import ModelSpec, ProviderConfig
from turnout.errors import ContextLengthExceeded
from turnout.pricing.cost import Price
from turnout.providers.local import LocalProvider, from_config
from turnout.providers.local_models import (
    QWEN25_CODER_05B,
    SMOLLM2,
    default_cache_dir,
    ensure_model,
    sha256_of,
)
from turnout.types import ChatRequest, Message, StreamEnd, TextDelta, Tier

pytestmark = pytest.mark.local_model

SMOL = "smollm2-135m-instruct"
QWEN = "qwen2.5-coder-0.5b-instruct"


@pytest.fixture(scope="module")
def provider() -> Iterator[LocalProvider]:
    """One provider for the module, so each model is loaded once."""
    config = ProviderConfig("local", "local", options={"context_size": 2048})
    specs = [
        ModelSpec("cheap", "local", SMOL, Tier.EFFICIENT, Price(0, 0)),
        ModelSpec("coder", "local", QWEN, Tier.STANDARD, Price(0, 0)),
    ]
    built = from_config(config, specs)
    assert isinstance(built, LocalProvider)
    yield built
    asyncio.run(built.aclose())


def ask(text: str, model: str = SMOL, **kw: object) -> ChatRequest:
    return ChatRequest(
        (Message.system("You are a terse assistant."), Message.user(text)),
        model=model,
        **kw,  # type: ignore[arg-type]
    )


async def test_smollm2_answers_with_real_usage(provider: LocalProvider) -> None:
    response = await provider.complete(ask("Say hello in French.", max_tokens=16, temperature=0))

    assert response.text.strip()
    assert response.model == SMOL
    assert response.finish_reason in ("stop", "length")
    assert 10 < response.usage.input_tokens < 100
    assert 1 <= response.usage.output_tokens <= 16
    assert response.ttft_s is not None
    assert 0 < response.ttft_s <= response.latency_s
    assert provider.load_times[SMOL] < 30


async def test_temperature_zero_is_reproducible(provider: LocalProvider) -> None:
    request = ask("Name three colours.", max_tokens=16, temperature=0)
    first = await provider.complete(request)
    second = await provider.complete(request)
    assert first.text == second.text


async def test_two_concurrent_requests_queue_on_one_model(provider: LocalProvider) -> None:
    spans: dict[str, list[float]] = {}

    async def run(tag: str, text: str) -> str:
        parts: list[str] = []
        async for event in provider.stream(ask(text, max_tokens=12, temperature=0)):
            now = time.perf_counter()
            if isinstance(event, TextDelta):
                spans.setdefault(tag, [now, now])[1] = now
                parts.append(event.text)
            elif isinstance(event, StreamEnd):
                assert event.usage.output_tokens >= 1
                assert event.ttft_s is not None
                spans.setdefault(tag, [now, now])[1] = now
        return "".join(parts)

    a, b = await asyncio.gather(run("a", "Count to five."), run("b", "Name a fruit."))

    assert a.strip()
    assert b.strip()
    (first, second) = sorted(spans.values())
    assert first[1] <= second[0]  # the second generation began after the first ended


async def test_stop_sequences_and_json_response_format(provider: LocalProvider) -> None:
    stopped = await provider.complete(
        ask("Count from 1 to 10, separated by commas.", max_tokens=32, temperature=0, stop=("4",))
    )
    assert "4" not in stopped.text
    assert stopped.finish_reason == "stop"

    shaped = await provider.complete(
        ask(
            'Reply with a JSON object with key "ok" set to true.',
            max_tokens=16,
            temperature=0,
            response_format={"type": "json_object"},
        )
    )
    assert isinstance(json.loads(shaped.text), dict)


async def test_prompt_over_the_window_is_context_length_exceeded(provider: LocalProvider) -> None:
    with pytest.raises(ContextLengthExceeded, match="context size"):
        await provider.complete(ask("word " * 3000, max_tokens=4))


def test_qwen_gguf_is_assembled_and_verified() -> None:
    path = ensure_model(QWEN, default_cache_dir())

    assert path.parent == default_cache_dir()
    assert path.stat().st_size == QWEN25_CODER_05B.size
    sidecar = json.loads(path.with_name(path.name + ".verified.json").read_text())
    assert sidecar["sha256"] == QWEN25_CODER_05B.sha256
    assert sidecar["size"] == QWEN25_CODER_05B.size
    assert sidecar["mtime_ns"] == path.stat().st_mtime_ns
    with path.open("rb") as fh:
        assert fh.read(4) == b"GGUF"
    assert ensure_model("qwen2.5-coder-0.5b", default_cache_dir()) == path


def test_smollm2_file_matches_its_pin() -> None:
    path = ensure_model(SMOL)
    assert path.name == SMOLLM2.filename
    assert sha256_of(path) == SMOLLM2.sha256


async def test_qwen_generates_a_few_tokens(provider: LocalProvider) -> None:
    response = await provider.complete(
        ask("Write a Python expression that adds 2 and 3.", QWEN, max_tokens=8, temperature=0)
    )
    assert response.text.strip()
    assert response.model == QWEN
    assert 1 <= response.usage.output_tokens <= 8
    assert response.usage.input_tokens > 10
    assert provider.load_times[QWEN] < 60
