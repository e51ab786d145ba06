"""``kind: learned``: the router's probabilities, a threshold or a target, the reason."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from support.planted import PLANTED_POOL, needs_minilm
from turnout.config import load_settings
from turnout.errors import ConfigError
from turnout.learn.train import Trained
from turnout.policies import PoolHealth, RequestContext, build_policy
from turnout.policies.learned import LearnedPolicy
from turnout.types import Message

pytestmark = needs_minilm

ANIMAL = "Tell me three facts about the otter."
CITY = "Tell me three facts about the city of Osaka."


def _ctx(text: str) -> RequestContext:
    return RequestContext(messages=(Message("user", text),))


def _config(tmp_path: Path, router_path: Path, **policy: Any) -> Path:
    raw = copy.deepcopy(PLANTED_POOL)
    raw["policies"]["smart"] = {"kind": "learned", "router": str(router_path), **policy}
    path = tmp_path / "turnout.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def test_cheap_where_the_cheap_model_passes_strong_elsewhere(
    tmp_path: Path, planted_router_file: Path
) -> None:
    settings = load_settings(_config(tmp_path, planted_router_file, threshold=0.2))
    policy = build_policy("smart", settings)
    animal, city = policy.decide(_ctx(ANIMAL)), policy.decide(_ctx(CITY))
    assert animal.model == "cheap" and city.model == "strong"
    assert animal.reason.startswith("learned: p_pass cheap ")
    assert "strong ahead by" in animal.reason and "<= 0.20 -> cheap" in animal.reason
    assert "-0.00" not in animal.reason
    assert "> 0.20 -> strong" in city.reason
    assert animal.strategy == "single"


def test_a_relative_router_path_is_read_next_to_the_config(
    tmp_path: Path, planted_router_file: Path
) -> None:
    (tmp_path / "routers").mkdir()
    (tmp_path / "routers" / "r.json").write_bytes(planted_router_file.read_bytes())
    settings = load_settings(_config(tmp_path, Path("routers/r.json"), threshold=0.2))
    assert build_policy("smart", settings).decide(_ctx(CITY)).model == "strong"


def test_targets_choose_the_threshold_without_retraining(planted_router: Trained) -> None:
    router = planted_router.router
    share = LearnedPolicy("s", router, target={"strong_share": 0.0})
    assert share.threshold >= 0.9  # nothing may go to the strong model
    assert share.decide(_ctx(CITY)).model == "cheap"
    # cheap alone keeps about 90% of the strong model's pass rate: 95% sends only some
    # prompts about cities up, 99.9% all of them
    assert LearnedPolicy("q", router, target={"quality": 0.95}).threshold > 0.5
    quality = LearnedPolicy("q", router, target={"quality": 0.999})
    assert quality.decide(_ctx(CITY)).model == "strong"
    assert quality.decide(_ctx(ANIMAL)).model == "cheap"
    assert LearnedPolicy("d", router).threshold == router.threshold  # the trained default


def test_fallback_chain_and_health(planted_router: Trained) -> None:
    policy = LearnedPolicy("f", planted_router.router, threshold=0.2, fallback=True)
    d = policy.decide(_ctx(ANIMAL))
    assert d.models == ("cheap", "strong") and d.strategy == "fallback"
    down = policy.decide(_ctx(ANIMAL), PoolHealth(frozenset({"cheap"})))
    assert down.models == ("strong",) and "(cheap unavailable)" in down.reason


def test_a_repeated_prompt_is_not_embedded_again(planted_router: Trained) -> None:
    policy = LearnedPolicy("c", planted_router.router)
    first = policy.p_pass(_ctx(CITY))
    policy.featurizer._embedder = None  # would have to load again if it were needed
    assert policy.p_pass(_ctx(CITY)) == first
    assert policy.featurizer._embedder is None


@pytest.mark.parametrize(
    ("policy", "message"),
    [
        ({"models": ["cheap", "ghost"]}, "unknown model 'ghost'"),
        ({"threshold": 0.1, "target": {"quality": 0.9}}, "give threshold or target, not both"),
        ({"target": {"speed": 1}}, "policies.smart.target"),
        ({"router": "missing.json"}, "cannot read router file"),
    ],
)
def test_bad_learned_config(
    tmp_path: Path, planted_router_file: Path, policy: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigError) as info:
        build_policy("smart", load_settings(_config(tmp_path, planted_router_file, **policy)))
    assert message in str(info.value) and "\n" not in str(info.value)
