"""``kind: rules``: must-stay-frontier, first match, route up, default; choice inside a tier."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from turnout.config import Settings, settings_from_dict
from turnout.policies import PoolHealth, RequestContext, build_policy
from turnout.policies.rules import RulesPolicy
from turnout.types import Annotation, Tier

WRITTEN: dict[str, Any] = {
    "kind": "rules",
    "must_stay_frontier": [{"domain": "security"}, {"domain": "schema"}, {"ambiguity": "high"}],
    "rules": [
        {
            "when": {
                "scope": "single-file",
                "domain": ["docs", "config", "tests"],
                "ambiguity": "low",
            },
            "tier": "efficient",
        },
        {"when": {"scope": "cross-service"}, "tier": "frontier"},
        # would send security docs to efficient: must-stay-frontier wins over it
        {"when": {"domain": ["docs", "security"]}, "tier": "efficient"},
        {"when": {"scope": "multi-file", "ambiguity": ["low", "medium"]}, "tier": "standard"},
        {"when": {"scope": "multi-file"}, "tier": "efficient"},  # never reached for low/medium
    ],
    "default": "standard",
}


def _settings(pool_dict: dict[str, Any], **policy: Any) -> Settings:
    pool_dict["policies"]["written"] = {**copy.deepcopy(WRITTEN), **policy}
    return settings_from_dict(pool_dict)


def _decide(settings: Settings, ann: Annotation | None, health: PoolHealth | None = None) -> Any:
    policy = build_policy("written", settings)
    ctx = RequestContext(step_id="s", annotation=ann)
    return policy.decide(ctx) if health is None else policy.decide(ctx, health)


A = Annotation


@pytest.mark.parametrize(
    ("ann", "model", "reason"),
    [
        (
            A("single-file", "security", "low"),
            "opus",
            "rules: domain=security is must-stay-frontier -> frontier -> opus",
        ),
        (  # rule 3 alone would send security docs to efficient
            A(domain="security"),
            "opus",
            "rules: domain=security is must-stay-frontier -> frontier -> opus",
        ),
        (
            A("multi-file", "feature", "high"),
            "opus",
            "rules: ambiguity=high is must-stay-frontier -> frontier -> opus",
        ),
        (
            A("single-file", "docs", "low"),
            "nano",
            "rules: rule 1 (scope=single-file, domain=docs, ambiguity=low) -> efficient -> nano"
            " (cheapest in efficient)",
        ),
        (  # any-of list
            A("single-file", "tests", "low"),
            "nano",
            "rules: rule 1 (scope=single-file, domain=tests, ambiguity=low) -> efficient -> nano"
            " (cheapest in efficient)",
        ),
        (
            A("cross-service", "docs", "low"),
            "opus",
            "rules: rule 2 (scope=cross-service) -> frontier -> opus",
        ),
        (  # rule 1 fails on ambiguity; rule 3 matches
            A("single-file", "docs", "medium"),
            "nano",
            "rules: rule 3 (domain=docs) -> efficient -> nano (cheapest in efficient)",
        ),
        (  # first match wins: rule 4 before rule 5
            A("multi-file", "feature", "low"),
            "sonnet",
            "rules: rule 4 (scope=multi-file, ambiguity=low) -> standard -> sonnet",
        ),
        (  # a missing field never matches a rule that names it: rule 4 needs ambiguity
            A("multi-file", "feature"),
            "nano",
            "rules: rule 5 (scope=multi-file) -> efficient -> nano (cheapest in efficient)",
        ),
        (
            A("single-file", "feature", "medium"),
            "sonnet",
            "rules: no rule matched (scope=single-file, domain=feature, ambiguity=medium), default"
            " -> standard -> sonnet",
        ),
        (  # partial annotation, known values, no rule: the default (not routed up)
            A(domain="feature"),
            "sonnet",
            "rules: no rule matched (domain=feature), default -> standard -> sonnet",
        ),
        (None, "opus", "rules: no annotation, route up: default standard -> frontier -> opus"),
        (A(), "opus", "rules: no annotation, route up: default standard -> frontier -> opus"),
        (
            A("single-file", "payments", "medium"),
            "opus",
            "rules: unknown domain=payments, route up: default standard -> frontier -> opus",
        ),
        (
            A("galaxy", "feature", "unclear"),
            "opus",
            "rules: unknown scope=galaxy, ambiguity=unclear, route up: default standard"
            " -> frontier -> opus",
        ),
        (  # values compare lower-cased
            A("Single-File", "DOCS", "Low"),
            "nano",
            "rules: rule 1 (scope=single-file, domain=docs, ambiguity=low) -> efficient -> nano"
            " (cheapest in efficient)",
        ),
    ],
)
def test_written_policy(
    pool_dict: dict[str, Any], ann: Annotation | None, model: str, reason: str
) -> None:
    d = _decide(_settings(pool_dict), ann)
    assert d.models == (model,)
    assert d.reason == reason
    assert (d.policy, d.strategy) == ("written", "single")


def test_a_matching_rule_beats_route_up_for_an_unknown_value(pool_dict: dict[str, Any]) -> None:
    # rule 2 names only scope; the unknown domain does not matter once a rule matched
    d = _decide(_settings(pool_dict), A("cross-service", "payments"))
    assert d.reason == "rules: rule 2 (scope=cross-service) -> frontier -> opus"


def test_must_stay_frontier_entries_with_several_keys_and_lists(pool_dict: dict[str, Any]) -> None:
    s = _settings(
        pool_dict,
        must_stay_frontier=[{"scope": "cross-service", "domain": ["feature", "refactor"]}],
        rules=[{"when": {"scope": "cross-service"}, "tier": "efficient"}],
    )
    d = _decide(s, A("cross-service", "refactor", "low"))
    assert d.reason == (
        "rules: scope=cross-service, domain=refactor is must-stay-frontier -> frontier -> opus"
    )
    assert _decide(s, A("cross-service", "docs", "low")).model == "nano"


def test_route_up_from_frontier_stays_frontier(pool_dict: dict[str, Any]) -> None:
    d = _decide(_settings(pool_dict, default="frontier"), None)
    assert d.reason == "rules: no annotation, route up: default frontier -> frontier -> opus"


def test_route_up_from_efficient_is_standard(pool_dict: dict[str, Any]) -> None:
    d = _decide(_settings(pool_dict, default="efficient"), A(ambiguity="somewhat"))
    assert d.model == "sonnet"
    assert d.reason.startswith("rules: unknown ambiguity=somewhat, route up: default efficient")


def test_vocabulary_extends_the_known_values(pool_dict: dict[str, Any]) -> None:
    s = _settings(
        pool_dict,
        must_stay_frontier=[{"domain": ["security", "auth", "payments"]}],
        vocabulary={"domain": ["auth", "payments", "billing"]},
        default="efficient",
    )
    assert _decide(s, A(domain="auth")).reason == (
        "rules: domain=auth is must-stay-frontier -> frontier -> opus"
    )
    # known through vocabulary, no rule: the default, not routed up
    assert _decide(s, A(domain="billing")).model == "nano"
    assert _decide(s, A(domain="crypto")).model == "sonnet"  # unknown: routed up


@pytest.mark.parametrize(
    "prefer",
    [
        {"prefer": ["haiku"]},
        {"within_tier": {"prefer": ["haiku"]}},
        {"within_tier": "prefer", "prefer": ["haiku"]},
    ],
)
def test_prefer_order_inside_the_tier(pool_dict: dict[str, Any], prefer: dict[str, Any]) -> None:
    d = _decide(_settings(pool_dict, **prefer), A("single-file", "docs", "low"))
    assert d.models == ("haiku",)
    assert d.reason.endswith("-> efficient -> haiku (preferred in efficient)")


def test_prefer_falls_back_to_cheapest_when_preferred_is_unhealthy(
    pool_dict: dict[str, Any],
) -> None:
    s = _settings(pool_dict, prefer=["haiku", "opus"])
    d = _decide(s, A("single-file", "docs", "low"), PoolHealth(frozenset({"haiku"})))
    assert d.models == ("nano",)
    assert d.reason.endswith(
        "-> efficient -> nano (cheapest in efficient; skipped unavailable haiku)"
    )
    # a preferred model of another tier does not pull the decision out of the tier
    assert _decide(s, A("single-file", "docs", "low")).model == "haiku"


def test_cheapest_is_the_default_rule(pool_dict: dict[str, Any]) -> None:
    d = _decide(_settings(pool_dict, within_tier="cheapest"), A("single-file", "docs", "low"))
    assert d.models == ("nano",)


def test_unhealthy_model_is_skipped(pool_dict: dict[str, Any]) -> None:
    d = _decide(
        _settings(pool_dict), A("single-file", "docs", "low"), PoolHealth(frozenset({"nano"}))
    )
    assert d.models == ("haiku",)
    assert d.reason.endswith("(cheapest in efficient; skipped unavailable nano)")


def test_every_model_of_the_tier_unavailable_keeps_the_tier(pool_dict: dict[str, Any]) -> None:
    health = PoolHealth(frozenset({"nano", "haiku"}))
    d = _decide(_settings(pool_dict), A("single-file", "docs", "low"), health)
    assert d.models == ("nano",)  # the executor's breakers decide
    assert "every efficient model unavailable" in d.reason


def test_fallback_chain_inside_the_tier(pool_dict: dict[str, Any]) -> None:
    s = _settings(pool_dict, fallback=True)
    d = _decide(s, A("single-file", "docs", "low"))
    assert (d.models, d.strategy) == (("nano", "haiku"), "fallback")
    assert d.reason.endswith("-> efficient -> nano, haiku (fallback, cheapest first)")
    d = _decide(s, A("single-file", "docs", "low"), PoolHealth(frozenset({"nano"})))
    assert (d.models, d.strategy) == (("haiku",), "fallback")
    d = _decide(
        _settings(pool_dict, fallback=True, prefer=["haiku"]), A("single-file", "docs", "low")
    )
    assert d.models == ("haiku", "nano")
    assert d.reason.endswith("(fallback, preferred first)")
    d = _decide(s, A(domain="security"))
    assert (d.models, d.strategy) == (("opus",), "fallback")
    assert d.reason == "rules: domain=security is must-stay-frontier -> frontier -> opus (fallback)"


def test_empty_tier_routes_up(pool_dict: dict[str, Any]) -> None:
    del pool_dict["models"]["sonnet"]
    d = _decide(_settings(pool_dict), A(domain="feature"))
    assert d.models == ("opus",)
    assert d.reason.endswith(
        "-> frontier -> opus (cheapest in frontier; standard has no model, routed to frontier)"
    )


def test_decisions_are_memoised_per_annotation_and_health(pool_dict: dict[str, Any]) -> None:
    policy = build_policy("written", _settings(pool_dict))
    ctx = RequestContext(annotation=A("single-file", "docs", "low"))
    first = policy.decide(ctx)
    assert (
        policy.decide(RequestContext(step_id="other", annotation=A("single-file", "docs", "low")))
        is first
    )
    assert policy.decide(ctx, PoolHealth(frozenset({"nano"}))).model == "haiku"
    assert policy.decide(ctx) is first


def test_policy_can_be_built_in_code(settings: Settings) -> None:
    from turnout.policies.rules import Condition, Rule

    policy = RulesPolicy(
        "p",
        settings,
        rules=[Rule(Condition.parse({"domain": ["docs"]}), Tier.EFFICIENT)],
        must_stay_frontier=[Condition.parse({"domain": "security"})],
        default=Tier.EFFICIENT,
    )
    assert policy.decide(RequestContext(annotation=A(domain="docs"))).model == "nano"
    assert policy.route(A(domain="security")) == (
        Tier.FRONTIER,
        "rules: domain=security is must-stay-frontier",
    )
