"""Shared fixtures for unit tests: a small pool served by in-process function providers."""

from __future__ import annotations

from typing import Any

import pytest

from turnout.config import Settings, settings_from_dict

POOL: dict[str, Any] = {
    "providers": {
        "hosted": {"kind": "openai", "base_url": "http://127.0.0.1:9/v1", "api_key_env": "NOPE"},
        "backup": {"kind": "openai", "base_url": "http://127.0.0.1:9/v1"},
    },
    "models": {
        "opus": {
            "provider": "hosted",
            "id": "claude-opus-4-8",
            "tier": "frontier",
            "price": {"input": 5.0, "output": 25.0, "cached_input": 0.5},
        },
        "sonnet": {
            "provider": "hosted",
            "id": "sonnet",
            "tier": "standard",
            "price_sheet": "claude-sonnet-4-5",
        },
        "haiku": {
            "provider": "hosted",
            "id": "claude-haiku-4-5",
            "tier": "efficient",
            "price_sheet": "claude-haiku-4-5",
        },
        "nano": {
            "provider": "backup",
            "id": "gpt-4.1-nano",
            "tier": "efficient",
            "price_sheet": "gpt-4.1-nano",
        },
    },
    "policies": {
        "all_frontier": {"kind": "static", "model": "opus"},
        "mixed": {"kind": "per_step", "default": "opus", "steps": {"implementer": "haiku"}},
    },
}


@pytest.fixture
def pool_dict() -> dict[str, Any]:
    import copy

    return copy.deepcopy(POOL)


@pytest.fixture
def settings() -> Settings:
    return settings_from_dict(POOL)
