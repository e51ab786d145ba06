"""GenAI spans, one per request and one per attempt, checked with the in-memory exporter."""

from __future__ import annotations

from decimal import Decimal

import pytest

from turnout.observability.otel import GenAISpans, RequestSpan
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
                       cost_usd=Decimal("0.0001"))  # fmt: skip
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
    assert "error.type" not in good.attributes
