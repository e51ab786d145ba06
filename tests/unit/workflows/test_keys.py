"""Which pool models a policy may call, and which of them one request may pay for
together (the sets a key's budget hold is priced by)."""

from __future__ import annotations

from typing import Any

from turnout.config.loader import settings_from_dict
from turnout.config.settings import Settings
from turnout.workflows.keys import policy_plans, policy_reach


def pool(policies: dict[str, Any]) -> Settings:
    up = {"kind": "openai", "base_url": "http://127.0.0.1:9/v1"}
    models = {
        name: {"provider": "up", "id": name, "tier": tier, "price": {"input": 1, "output": 2}}
        for name, tier in (("a", "efficient"), ("b", "standard"), ("c", "frontier"))
    }
    return settings_from_dict({"providers": {"up": up}, "models": models, "policies": policies})


def test_an_ensemble_pays_every_member_and_its_judge_together() -> None:
    settings = pool({"vote": {"kind": "ensemble", "models": ["a", "b"], "mode": "judge",
                              "judge": "c"}})  # fmt: skip
    assert policy_plans(settings, "vote") == [(("a", 0), ("b", 0), ("c", 2))]  # c reads both


def test_a_cascade_pays_its_whole_chain_together() -> None:
    settings = pool({"up": {"kind": "cascade", "models": ["a", "c"]}})
    assert policy_plans(settings, "up") == [(("a", 0), ("c", 0))]


def test_a_model_named_twice_is_paid_twice() -> None:
    settings = pool({"thrice": {"kind": "ensemble", "models": ["a", "a", "a"]},
                     "self_judged": {"kind": "ensemble", "models": ["a", "b"], "mode": "judge",
                                     "judge": "b"}})  # fmt: skip
    assert policy_plans(settings, "thrice") == [(("a", 0), ("a", 0), ("a", 0))]
    assert policy_plans(settings, "self_judged") == [(("a", 0), ("b", 0), ("b", 2))]


def test_a_fallback_or_a_router_pays_one_model_at_a_time() -> None:
    settings = pool({
        "chain": {"kind": "fallback", "models": ["b", "c"]},
        "tiers": {"kind": "rules", "default": "frontier"},
        "one": {"kind": "static", "model": "a"},
    })  # fmt: skip
    assert policy_plans(settings, "chain") == [(("b", 0),), (("c", 0),)]
    assert policy_plans(settings, "tiers") == [((m, 0),) for m in "abc"]
    assert policy_plans(settings, "one") == [(("a", 0),)]
    assert policy_reach(settings, "one") == {"a"}


def test_variants_and_cases_that_are_policies_bring_their_sets() -> None:
    settings = pool({
        "vote": {"kind": "ensemble", "models": ["a", "b"]},
        "split": {"kind": "ab", "key": "user", "variants": {"c": 1, "vote": 1}},
        "by_ctx": {"kind": "switch", "on": "context", "cases": {"ci": "split"}, "default": "a"},
        "loop": {"kind": "ab", "key": "user", "variants": {"loop2": 1, "a": 1}},
        "loop2": {"kind": "ab", "key": "user", "variants": {"loop": 1, "b": 1}},
    })  # fmt: skip
    split = policy_plans(settings, "split")
    assert (("a", 0), ("b", 0)) in split and (("c", 0),) in split
    assert (("a", 0), ("b", 0)) in policy_plans(settings, "by_ctx")
    assert all(len(p) == 1 for p in policy_plans(settings, "loop"))  # a cycle ends
