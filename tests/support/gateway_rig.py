"""The gateway for integration tests: a real Turnout over a fake OpenAI server, on real
sockets, in the test's loop (async) or in a background thread (sync SDK)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from turnout.config import Settings, settings_from_dict
from turnout.gateway.server import Gateway

KEY_ENV = "GATEWAY_TEST_KEY"
KEY = "sk-gateway-test-0123456789"
FULL = "alpha beta gamma delta epsilon zeta"


def reply(body: Mapping[str, Any]) -> str:
    """The fake's answer: FULL, or the rest of it when asked to continue a cut answer."""
    messages = body.get("messages") or []
    partial = next((m.get("content") or "" for m in messages if m.get("role") == "assistant"), None)
    if partial is not None and FULL.startswith(partial):
        return FULL[len(partial) :]
    if body.get("model") == "small-1" and "escalate" in str(messages[-1].get("content")):
        return "short"  # too short for the cascade's quality bar: escalated
    return FULL


def gateway_settings(
    base_url: str,
    *,
    more_models: Mapping[str, Any] | None = None,
    more_policies: Mapping[str, Any] | None = None,
    more_executor: Mapping[str, Any] | None = None,
    **gateway: Any,
) -> Settings:
    """A pool on the fake server: model ids ``fault:<spec>`` fail as the spec says;
    ``more_models`` (by fake model id), ``more_policies`` and ``more_executor`` add to
    it."""
    up = {"kind": "openai", "base_url": base_url, "api_key_env": KEY_ENV}
    price = {"input": 1.0, "output": 2.0}
    models = {
        "small": {"provider": "up", "id": "small-1", "tier": "efficient", "price": price},
        "large": {"provider": "up", "id": "large-1", "tier": "frontier", "price": price},
        "down": {"provider": "up", "id": "fault:503", "tier": "standard", "price": price},
        "cut": {"provider": "up", "id": "fault:cut:after=3", "tier": "standard", "price": price},
        "limited": {
            "provider": "up",
            "id": "fault:429:retry-after=7",
            "tier": "standard",
            "price": price,
        },
        "broken": {"provider": "up", "id": "fault:500", "tier": "standard", "price": price},
        "tiny": {
            "provider": "up",
            "id": "fault:context_length",
            "tier": "efficient",
            "price": price,
        },
    }
    policies = {
        "rules": {
            "kind": "rules",
            "must_stay_frontier": [{"domain": "security"}],
            "rules": [{"when": {"domain": "docs"}, "tier": "efficient"}],
            "default": "frontier",
        },
        "resilient": {"kind": "fallback", "models": ["down", "small"]},
        "continued": {"kind": "fallback", "models": ["cut", "large"]},
        "throttled": {"kind": "static", "model": "limited"},
        "doomed": {"kind": "static", "model": "broken"},
        "cheap": {"kind": "static", "model": "small"},
        "narrow": {"kind": "static", "model": "tiny"},
        "split": {"kind": "ab", "key": "user", "variants": {"small": 1, "large": 1}},
        "escalate": {"kind": "cascade", "models": ["small", "large"], "quality": {"min_chars": 30}},
    }
    for name, model_id in (more_models or {}).items():
        models[name] = {"provider": "up", "id": model_id, "tier": "frontier", "price": price}
    policies.update(more_policies or {})
    executor = {
        "retries": {"max_attempts": 1, "base_delay_s": 0.01, "max_delay_s": 0.02},
        "breaker": {"enabled": True, "min_requests": 1, "failure_rate": 1.0, "cooldown_s": 60},
    }
    return settings_from_dict(
        {
            "providers": {"up": up},
            "models": models,
            "policies": policies,
            "executor": {**executor, **(more_executor or {})},
            "gateway": {"default_policy": "cheap", **gateway},
        }
    )


class GatewayThread:
    """A :class:`Gateway` on its own event loop in a daemon thread."""

    def __init__(self, settings: Settings, store: Path) -> None:
        self._loop = asyncio.new_event_loop()
        self.gateway = Gateway(settings, port=0, store=str(store))
        self._started = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="gateway", daemon=True)

    @property
    def base_url(self) -> str:
        return self.gateway.base_url

    def __enter__(self) -> GatewayThread:
        self._thread.start()
        self._started.wait(10)
        if self._error is not None:
            raise self._error
        return self

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self.gateway.stop(), self._loop).result(30)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_until_complete(self.gateway.start())
        except BaseException as exc:
            self._error = exc
            self._started.set()
            return
        self._started.set()
        self._loop.run_forever()
