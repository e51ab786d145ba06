"""A router trained once per session on a planted-signal outcome set."""

from __future__ import annotations

from pathlib import Path

import pytest
from support.planted import planted

from turnout.execution.cache.embedding import semantic_available
from turnout.learn.train import Trained, train


@pytest.fixture(scope="session")
def planted_router() -> Trained:
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
