"""Prometheus metrics of the gateway, with ``prometheus-client``.

One :class:`Metrics` owns its collectors in its own registry (nothing global, nothing
at import time). With several worker processes (``turnout serve --workers N``) set
``PROMETHEUS_MULTIPROC_DIR`` to an empty directory before the workers start: each
process then writes its values to files there, and :meth:`Metrics.render` in any
worker aggregates every process's files (counters and histograms summed; gauges as
their ``multiprocess_mode`` says). Call :func:`mark_process_dead` when a worker exits.

=====================================  ==============================================
``turnout_requests_total``             policy, model, key, status (``ok`` or error)
``turnout_errors_total``               policy, model, key, error_class
``turnout_request_seconds``            policy: total latency (histogram)
``turnout_added_seconds``              policy: turnout's own time, total minus the
                                       provider calls (histogram)
``turnout_ttft_seconds``               model: time to first token (histogram)
``turnout_attempts_total``             model, status (``ok`` or the attempt's error
                                       class): provider calls, those a fallback
                                       recovered from too
``turnout_tokens_total``               model, key, type (input, output, cached_input)
``turnout_cost_usd_total``             model, key
``turnout_cache_hits_total``           kind (exact, semantic)
``turnout_cache_saved_usd_total``      kind
``turnout_breaker_state``              model: 0 closed, 1 half open, 2 open
``turnout_budget_remaining_usd``       key (the budget less what the key spent, once settled)
``turnout_rate_limited_total``         key, limit (requests, tokens)
``turnout_redis_degraded_total``       what: calls served per process (Redis away)
``turnout_traces_spilled_total``       records spilled to the local file
``turnout_traces_dropped_total``       records lost (queue or spill file full)
=====================================  ==============================================

Keys appear by name only, never the key itself.
"""

from __future__ import annotations

import os
from decimal import Decimal
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

    from turnout.tracing.records import AttemptRecord

INSTALL_HINT = "metrics need prometheus-client: pip install 'turnout[metrics]'"
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
ADDED_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5)
BREAKER_VALUES = {"closed": 0, "half_open": 1, "open": 2}
NO_KEY = "-"


def multiprocess() -> bool:
    return bool(os.environ.get(MULTIPROC_ENV))


def start_afresh(directory: str) -> None:
    """Remove an earlier run's values from the multiprocess ``directory`` (they would be
    summed into this run's): the files of processes that are gone (``<kind>_<pid>.db``);
    a live process's, one sharing the directory, stay."""
    for name in os.listdir(directory):
        if not name.endswith(".db"):
            continue
        pid = name.removesuffix(".db").rpartition("_")[2]
        if pid.isdigit() and int(pid) != os.getpid() and _alive(int(pid)):
            continue
        os.unlink(os.path.join(directory, name))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's: alive
        return True
    return True


def mark_process_dead(pid: int) -> None:
    """Tell the multiprocess files that worker ``pid`` has exited (its live gauges go)."""
    if multiprocess():
        from prometheus_client import multiprocess as mp

        mp.mark_process_dead(pid)  # type: ignore[no-untyped-call]


class Metrics:
    """The gateway's collectors. Methods are cheap and never raise on odd input."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        try:
            from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
        except ImportError:
            from turnout.errors import ConfigError

            raise ConfigError(INSTALL_HINT) from None
        self.registry = registry if registry is not None else CollectorRegistry()
        self._children: dict[tuple[int, tuple[str, ...]], Any] = {}
        r = self.registry
        self.requests = Counter(
            "turnout_requests", "Requests served.", ["policy", "model", "key", "status"],
            registry=r,
        )  # fmt: skip
        self.errors = Counter(
            "turnout_errors", "Requests that failed, by error class.",
            ["policy", "model", "key", "error_class"], registry=r,
        )  # fmt: skip
        self.latency = Histogram(
            "turnout_request_seconds", "Total request latency.", ["policy"],
            buckets=LATENCY_BUCKETS, registry=r,
        )  # fmt: skip
        self.added = Histogram(
            "turnout_added_seconds", "Latency turnout adds over its provider calls.",
            ["policy"], buckets=ADDED_BUCKETS, registry=r,
        )  # fmt: skip
        self.ttft = Histogram(
            "turnout_ttft_seconds", "Time to first token.", ["model"],
            buckets=LATENCY_BUCKETS, registry=r,
        )  # fmt: skip
        self.attempts = Counter(
            "turnout_attempts", "Provider calls, by model and outcome.", ["model", "status"],
            registry=r,
        )  # fmt: skip
        self.tokens = Counter(
            "turnout_tokens",
            "Tokens, by type (cached_input is a part of input).",
            ["model", "key", "type"],
            registry=r,
        )
        self.cost = Counter("turnout_cost_usd", "Spend in USD.", ["model", "key"], registry=r)
        self.cache_hits = Counter("turnout_cache_hits", "Cache hits.", ["kind"], registry=r)
        self.cache_saved = Counter(
            "turnout_cache_saved_usd", "What cache hits saved, USD.", ["kind"], registry=r
        )
        self.breaker = Gauge(
            "turnout_breaker_state", "Breaker state: 0 closed, 1 half open, 2 open.",
            ["model"], multiprocess_mode="mostrecent", registry=r,
        )  # fmt: skip
        self.budget_remaining = Gauge(
            "turnout_budget_remaining_usd", "A key's budget left in its period, USD.",
            ["key"], multiprocess_mode="mostrecent", registry=r,
        )  # fmt: skip
        self.rate_limited = Counter(
            "turnout_rate_limited", "Requests refused by a key's rate limit.",
            ["key", "limit"], registry=r,
        )  # fmt: skip
        self.redis_degraded = Counter(
            "turnout_redis_degraded", "Calls decided per process because Redis was away.",
            ["what"], registry=r,
        )  # fmt: skip
        self.spilled = Counter(
            "turnout_traces_spilled", "Trace records spilled to the local file.", registry=r
        )
        self.dropped = Counter(
            "turnout_traces_dropped", "Trace records lost (queue or spill file full).",
            registry=r,
        )  # fmt: skip

    # -- observing ---------------------------------------------------------------------

    def _child(self, family: Any, *values: str) -> Any:
        """``family.labels(*values)``, looked up once per label set (``labels`` checks
        and locks on every call: a microsecond, several times a request)."""
        key = (id(family), values)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = family.labels(*values)
        return child

    def observe_request(
        self,
        *,
        policy: str,
        model: str | None,
        key: str | None,
        error_class: str | None,
        latency_s: float,
        upstream_s: float = 0.0,
    ) -> None:
        """One request, once it is answered (or refused)."""
        model_label, key_label = model or NO_KEY, key or NO_KEY
        self._child(self.requests, policy, model_label, key_label, error_class or "ok").inc()
        if error_class is not None:
            self._child(self.errors, policy, model_label, key_label, error_class).inc()
        self._child(self.latency, policy).observe(max(0.0, latency_s))
        self._child(self.added, policy).observe(max(0.0, latency_s - upstream_s))

    def observe_attempt(self, attempt: AttemptRecord, key: str | None) -> None:
        """One call to a provider (or a cache hit): tokens, cost, TTFT, cache. A cache
        hit counts as a hit and its savings, not as the provider's tokens or speed."""
        key_label = key or NO_KEY
        if attempt.cache is not None:
            self._child(self.cache_hits, attempt.cache).inc()
            if attempt.saved_usd:
                self._child(self.cache_saved, attempt.cache).inc(float(attempt.saved_usd))
            if attempt.cost_usd:
                self._child(self.cost, attempt.model, key_label).inc(float(attempt.cost_usd))
            return
        status = "ok" if attempt.status == "ok" else attempt.error_class or attempt.status
        self._child(self.attempts, attempt.model, status).inc()
        for kind, count in (
            ("input", attempt.input_tokens),
            ("output", attempt.output_tokens),
            ("cached_input", attempt.cached_input_tokens),
        ):
            if count:
                self._child(self.tokens, attempt.model, key_label, kind).inc(count)
        if attempt.cost_usd:
            self._child(self.cost, attempt.model, key_label).inc(float(attempt.cost_usd))
        if attempt.ttft_s is not None:
            self._child(self.ttft, attempt.model).observe(attempt.ttft_s)

    def set_breaker(self, model: str, state: str) -> None:
        self._child(self.breaker, model).set(BREAKER_VALUES.get(state, 0))

    def set_budget_remaining(self, key: str, remaining_usd: Decimal | float) -> None:
        self._child(self.budget_remaining, key).set(float(remaining_usd))

    def count_rate_limited(self, key: str, limit: str) -> None:
        self._child(self.rate_limited, key, limit).inc()

    def count_degraded(self, what: str) -> None:
        self._child(self.redis_degraded, what).inc()

    def count_spill(self, spilled: int, dropped: int) -> None:
        if spilled > 0:
            self.spilled.inc(spilled)
        if dropped > 0:
            self.dropped.inc(dropped)

    # -- exposition --------------------------------------------------------------------

    def render(self) -> tuple[bytes, str]:
        """The text exposition and its content type; every worker's values in
        multiprocess mode."""
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        if multiprocess():
            from prometheus_client import CollectorRegistry
            from prometheus_client.multiprocess import MultiProcessCollector

            registry = CollectorRegistry()
            MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
            return generate_latest(registry), CONTENT_TYPE_LATEST
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
