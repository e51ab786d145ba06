"""OpenTelemetry spans after the GenAI semantic conventions, one per request and one per
attempt (every call to a provider, failed ones too, and cache hits).

Spans are made from what the request's trace holds, once it is answered: the request
span (kind SERVER, ``chat {requested model}``) spans the whole request, and each attempt
is a child span (kind CLIENT, ``chat {model}``) with its own start and duration. So
the same records feed the trace store, the metrics and the spans, and the request path
pays nothing while the call runs. Attributes:

=================================  ==================================================
``gen_ai.operation.name``          ``chat``
``gen_ai.provider.name``           the API called, by the provider's kind (``openai``
                                   for any OpenAI-compatible server, ``llama.cpp``
                                   for the local pool, a plugin's kind as named); on
                                   the request span, that of the model that answered
``gen_ai.request.model``           what the client asked for (a policy or a pool
                                   model); on an attempt, the provider's model id
``gen_ai.response.model``          the pool model that answered (as the response body
                                   says); on an attempt, the provider's model id
``gen_ai.usage.input_tokens``      prompt tokens (``output_tokens`` likewise)
``gen_ai.request.max_tokens``      when the request set it
``server.address`` / ``.port``     on an attempt, the host and port of the provider's
                                   ``base_url`` (which server an OpenAI-compatible
                                   call went to)
``error.type``                     turnout's error class, when it failed
``turnout.*``                      policy, key (its name), cost_usd, attempt, cache;
                                   on an attempt, ``turnout.model`` (the pool name)
                                   and ``turnout.provider`` (as named in turnout.yaml)
=================================  ==================================================

:func:`tracer_provider_from_env` exports by OTLP over HTTP when
``OTEL_EXPORTER_OTLP_ENDPOINT`` (or ``..._TRACES_ENDPOINT``) is set; tests pass their
own provider with an in-memory exporter.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider

    from turnout.config.settings import Settings
    from turnout.tracing.records import AttemptRecord

INSTALL_HINT = "OpenTelemetry spans need: pip install 'turnout[otel]'"
_NS = 1_000_000_000
OPERATION = "chat"
_PROVIDER_NAMES = {"openai": "openai", "local": "llama.cpp"}
"""``gen_ai.provider.name`` by provider kind (another kind is named as it is)."""


@dataclass(frozen=True, slots=True)
class Upstream:
    """What an attempt on one pool model calls, as the conventions name it."""

    provider: str
    """``gen_ai.provider.name``"""
    model: str
    """the provider's model id"""
    address: str | None = None
    port: int | None = None


def upstreams(settings: Settings) -> dict[str, Upstream]:
    """The :class:`Upstream` of every pool model in ``settings``."""
    out: dict[str, Upstream] = {}
    for name, model in settings.models.items():
        config = settings.providers.get(model.provider)
        kind = config.kind if config is not None else model.provider
        address, port = None, None
        base_url = config.options.get("base_url") if config is not None else None
        if isinstance(base_url, str):
            try:
                parts = urlsplit(base_url)
                address = parts.hostname
                port = parts.port or {"http": 80, "https": 443}.get(parts.scheme)
            except ValueError:  # a malformed URL is the provider's error to report
                address, port = None, None
        out[name] = Upstream(_PROVIDER_NAMES.get(kind, kind), model.id, address, port)
    return out


@dataclass(frozen=True, slots=True)
class RequestSpan:
    """What a request span says; attempts are its children."""

    run_id: str
    policy: str
    request_model: str
    response_model: str | None
    started_at: float
    latency_s: float
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    key: str | None = None
    error_type: str | None = None
    max_tokens: int | None = None
    streamed: bool = False
    parent: Mapping[str, str] | None = None
    """The caller's W3C trace context (``traceparent``, ``tracestate``): the span is a
    child of the caller's."""


def tracer_provider_from_env(service_name: str = "turnout") -> TracerProvider | None:
    """A provider exporting by OTLP/HTTP when an OTLP endpoint is configured, else None.
    Its resource is the SDK's from the environment (``OTEL_SERVICE_NAME``,
    ``OTEL_RESOURCE_ATTRIBUTES``), named ``service_name`` when they name no service."""
    if not (
        os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
        or os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    ):
        return None
    try:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ImportError:
        from turnout.errors import ConfigError

        raise ConfigError(INSTALL_HINT) from None
    resource = Resource.create()
    if str(resource.attributes.get("service.name", "")).startswith("unknown_service"):
        resource = resource.merge(Resource({"service.name": service_name}))
    provider = TracerProvider(resource=resource)
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    return provider


class GenAISpans:
    """Makes the spans of answered requests on ``provider``."""

    def __init__(
        self, provider: TracerProvider, models: Mapping[str, Upstream] | None = None
    ) -> None:
        self.provider = provider
        self.models = dict(models or {})
        """What each pool model calls (:func:`upstreams`); a model not in it is named by
        its pool name and its trace's provider."""
        self._tracer = provider.get_tracer("turnout")

    def record(self, request: RequestSpan, attempts: Sequence[AttemptRecord] = ()) -> None:
        from opentelemetry import trace
        from opentelemetry.trace import SpanKind, Status, StatusCode

        start = int(request.started_at * _NS)
        end = start + int(max(0.0, request.latency_s) * _NS)
        attributes: dict[str, Any] = {
            "gen_ai.operation.name": OPERATION,
            "gen_ai.request.model": request.request_model,
            "gen_ai.usage.input_tokens": request.input_tokens,
            "gen_ai.usage.output_tokens": request.output_tokens,
            "turnout.policy": request.policy,
            "turnout.run_id": request.run_id,
            "turnout.cost_usd": request.cost_usd,
            "turnout.stream": request.streamed,
        }
        if request.response_model:
            attributes["gen_ai.response.model"] = request.response_model
        answered = request.response_model or (attempts[-1].model if attempts else None)
        if answered is not None:
            upstream = self.models.get(answered)
            if upstream is not None:
                attributes["gen_ai.provider.name"] = upstream.provider
            else:
                called = [a.provider for a in attempts if a.model == answered]
                if called:
                    attributes["gen_ai.provider.name"] = called[-1]
        if request.key:
            attributes["turnout.key"] = request.key
        if request.max_tokens is not None:
            attributes["gen_ai.request.max_tokens"] = request.max_tokens
        if request.error_type:
            attributes["error.type"] = request.error_type
        span = self._tracer.start_span(
            f"{OPERATION} {request.request_model}",
            context=_extracted(request.parent) if request.parent else None,
            kind=SpanKind.SERVER,
            start_time=start,
            attributes=attributes,
        )
        if request.error_type:
            span.set_status(Status(StatusCode.ERROR, request.error_type))
        context = trace.set_span_in_context(span)
        for attempt in attempts:
            self._attempt(attempt, request, context)
        span.end(end_time=end)

    def _attempt(self, attempt: AttemptRecord, request: RequestSpan, context: Any) -> None:
        from opentelemetry.trace import SpanKind, Status, StatusCode

        start = int(attempt.started_at * _NS)
        upstream = self.models.get(attempt.model) or Upstream(attempt.provider, attempt.model)
        attributes: dict[str, Any] = {
            "gen_ai.operation.name": OPERATION,
            "gen_ai.provider.name": upstream.provider,
            "gen_ai.request.model": upstream.model,
            "gen_ai.usage.input_tokens": attempt.input_tokens,
            "gen_ai.usage.output_tokens": attempt.output_tokens,
            "turnout.attempt": attempt.attempt,
            "turnout.model": attempt.model,
            "turnout.provider": attempt.provider,
            "turnout.policy": attempt.policy,
            "turnout.cost_usd": float(attempt.cost_usd),
            "turnout.status": attempt.status,
        }
        hit = bool(attempt.cache)  # answered from turnout's cache: no provider was called
        if hit:
            del attributes["gen_ai.usage.input_tokens"], attributes["gen_ai.usage.output_tokens"]
        if upstream.address is not None and not hit:
            attributes["server.address"] = upstream.address
        if upstream.port is not None and not hit:
            attributes["server.port"] = upstream.port
        if attempt.status != "error":
            attributes["gen_ai.response.model"] = upstream.model
        if attempt.error_class:
            attributes["error.type"] = attempt.error_class
        if attempt.cached_input_tokens and not hit:
            attributes["gen_ai.usage.cache_read.input_tokens"] = attempt.cached_input_tokens
        if request.max_tokens is not None:
            attributes["gen_ai.request.max_tokens"] = request.max_tokens
        if attempt.cache:
            attributes["turnout.cache"] = attempt.cache
        if request.key:
            attributes["turnout.key"] = request.key
        span = self._tracer.start_span(
            f"{OPERATION} {upstream.model}",
            context=context,
            kind=SpanKind.INTERNAL if hit else SpanKind.CLIENT,
            start_time=start,
            attributes=attributes,
        )
        if attempt.error_class:
            span.set_status(Status(StatusCode.ERROR, attempt.error_class))
        span.end(end_time=start + int(max(0.0, attempt.latency_s) * _NS))

    def shutdown(self) -> None:
        self.provider.shutdown()


def _extracted(carrier: Mapping[str, str]) -> Any:
    """The context of a caller's W3C trace headers (an empty one when they do not parse)."""
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    return TraceContextTextMapPropagator().extract(carrier=dict(carrier))
