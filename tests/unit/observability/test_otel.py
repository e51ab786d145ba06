"""GenAI spans, one per request and one per attempt, checked with the in-memory exporter."""

from __future__ import annotations

from decimal import Decimal

import pytest

from turnout.config.loader import settings_from_dict
from turnout.observability.otel import GenAISpans, RequestSpan, Upstream, upstreams
from turnout.tracing.records import AttemptRecord

sdk_trace = pytest.importorskip("opentelemetry.sdk.trace")
from opentelemetry.sdk.trace.export import SimpleSpanProcessor  # noqa: E402
from opentelemetry.sdk.trace.export.in_memory_span_exporter import (  # noqa: E402
    InMemorySpanExporter,
)
from opentelemetry.trace import SpanKind, StatusCode  # noqa: E402


def test_request_and_attempt_spans() -> None:
    exporter = InMemorySpanExporter()
    provider = sdk_trace.TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    spans = GenAISpans(provider)
    t0 = 1_800_000_000.0
    failed = AttemptRecord("r1", "chat", 1, "opus", "hosted", "frontier", "rules", "why", t0,
                           0.1, "error", error_class="server_error")  # fmt: skip
    ok = AttemptRecord("r1", "chat", 2, "haiku", "hosted", "efficient", "rules", "fallback",
                       t0 + 0.1, 0.3, "ok", input_tokens=50, output_tokens=7,
                       cached_input_tokens=32, cost_usd=Decimal("0.0001"))  # fmt: skip
    spans.record(
        RequestSpan(run_id="r1", policy="rules", request_model="rules", response_model="haiku",
                    started_at=t0, latency_s=0.45, input_tokens=50, output_tokens=7,
                    cost_usd=0.0001, key="team-a", max_tokens=64),
        [failed, ok],
    )  # fmt: skip
    finished = {s.name: s for s in exporter.get_finished_spans()}
    assert set(finished) == {"chat rules", "chat opus", "chat haiku"}
    request = finished["chat rules"]
    assert request.kind is SpanKind.SERVER
    assert request.attributes is not None
    assert request.attributes["gen_ai.operation.name"] == "chat"
    assert request.attributes["gen_ai.response.model"] == "haiku"
    assert request.attributes["gen_ai.usage.input_tokens"] == 50
    assert request.attributes["gen_ai.request.max_tokens"] == 64
    assert request.attributes["turnout.key"] == "team-a"
    assert request.end_time - request.start_time == 450_000_000  # type: ignore[operator]
    bad, good = finished["chat opus"], finished["chat haiku"]
    for child in (bad, good):
        assert child.parent is not None and child.parent.span_id == request.context.span_id  # type: ignore[union-attr]
        assert child.kind is SpanKind.CLIENT
        assert child.attributes is not None
        assert child.attributes["gen_ai.provider.name"] == "hosted"
    assert bad.attributes is not None and bad.attributes["error.type"] == "server_error"
    assert bad.status.status_code is StatusCode.ERROR
    assert good.attributes is not None and good.attributes["gen_ai.usage.output_tokens"] == 7
    assert good.attributes["gen_ai.usage.cache_read.input_tokens"] == 32
    assert "gen_ai.usage.cache_read.input_tokens" not in bad.attributes
    assert good.attributes["gen_ai.request.max_tokens"] == 64
    assert "error.type" not in good.attributes


def test_attempts_are_named_by_what_they_call() -> None:
    exporter = InMemorySpanExporter()
    provider = sdk_trace.TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    called = {"haiku": Upstream("openai", "claude-haiku-4", "llm.internal", 8443)}
    spans = GenAISpans(provider, called)
    ok = AttemptRecord("r1", "chat", 1, "haiku", "hosted", "efficient", "rules", "why",
                       1_800_000_000.0, 0.3, "ok", input_tokens=5, output_tokens=2)  # fmt: skip
    spans.record(
        RequestSpan(run_id="r1", policy="rules", request_model="rules", response_model="haiku",
                    started_at=1_800_000_000.0, latency_s=0.4),
        [ok],
    )  # fmt: skip
    finished = {s.name: s.attributes for s in exporter.get_finished_spans()}
    assert set(finished) == {"chat rules", "chat claude-haiku-4"}
    attempt = finished["chat claude-haiku-4"]
    assert attempt is not None
    assert attempt["gen_ai.provider.name"] == "openai"
    assert attempt["gen_ai.request.model"] == attempt["gen_ai.response.model"] == "claude-haiku-4"
    assert (attempt["server.address"], attempt["server.port"]) == ("llm.internal", 8443)
    assert (attempt["turnout.model"], attempt["turnout.provider"]) == ("haiku", "hosted")
    request = finished["chat rules"]
    assert request is not None and request["gen_ai.provider.name"] == "openai"


def test_a_cache_hit_is_an_internal_span_without_an_upstream() -> None:
    exporter = InMemorySpanExporter()
    provider = sdk_trace.TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    called = {"haiku": Upstream("openai", "claude-haiku-4", "llm.internal", 8443)}
    hit = AttemptRecord("r1", "chat", 1, "haiku", "hosted", "efficient", "rules", "why",
                        1_800_000_000.0, 0.001, "ok", input_tokens=5, output_tokens=2,
                        cache="exact")  # fmt: skip
    GenAISpans(provider, called).record(
        RequestSpan(run_id="r1", policy="rules", request_model="rules", response_model="haiku",
                    started_at=1_800_000_000.0, latency_s=0.002),
        [hit],
    )  # fmt: skip
    (span,) = [s for s in exporter.get_finished_spans() if s.name == "chat claude-haiku-4"]
    attributes = dict(span.attributes or {})
    assert span.kind is SpanKind.INTERNAL and attributes["turnout.cache"] == "exact"
    assert not {"server.address", "server.port", "gen_ai.usage.input_tokens"} & set(attributes)


def test_upstreams_from_settings() -> None:
    settings = settings_from_dict(
        {
            "providers": {
                "hosted": {"kind": "openai", "base_url": "https://api.example.com/v1",
                           "api_key_env": "EXAMPLE_KEY"},
                "lan": {"kind": "openai", "base_url": "http://10.0.0.5:8080/v1",
                        "api_key_env": "EXAMPLE_KEY"},
            },
            "models": {
                "big": {"provider": "hosted", "id": "gpt-x", "tier": "frontier",
                        "price": {"input": 1, "output": 2}},
                "near": {"provider": "lan", "id": "qwen", "tier": "efficient",
                         "price": {"input": 0, "output": 0}},
            },
            "policies": {"p": {"kind": "static", "model": "big"}},
        }
    )  # fmt: skip
    assert upstreams(settings) == {
        "big": Upstream("openai", "gpt-x", "api.example.com", 443),
        "near": Upstream("openai", "qwen", "10.0.0.5", 8080),
    }
