"""Shared fixtures for unit tests: a small pool served by in-process function providers."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

from turnout.config import Settings, settings_from_dict

if TYPE_CHECKING:
    from pathlib import Path

    from turnout.learn.train import Trained

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


@pytest.fixture(scope="session")
def planted_router() -> Trained:
    """A router trained once per session on a planted-signal outcome set."""
    from support.planted import planted
    from turnout.execution.cache.embedding import semantic_available
    from turnout.learn.train import train

    if not semantic_available():
        pytest.skip("needs the MiniLM model package (make setup)")
    return train(planted(240, seed=1), models=["cheap", "strong"], cv=4,
                 target={"quality": 0.95}, c_grid=(0.03, 0.3))  # fmt: skip


@pytest.fixture(scope="session")
def planted_router_file(planted_router: Trained, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from turnout.learn.router_file import save_router

    path = tmp_path_factory.mktemp("router") / "planted.json"
    save_router(planted_router.router, path)
    return path
