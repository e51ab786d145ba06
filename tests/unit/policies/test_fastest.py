"""``kind: fastest`` and ``within_tier: fastest``, table-driven over speed snapshots."""

from __future__ import annotations

from typing import Any

import pytest

from turnout.config import Settings, settings_from_dict
from turnout.errors import ConfigError
from turnout.policies import PoolHealth, RequestContext, build_policy
from turnout.policies.fastest import FastestPolicy
from turnout.policies.speed import FastestRule, SpeedEstimate, SpeedSnapshot, rank_fastest
from turnout.types import Annotation, Message, Tier

NOW = 1_800_000_000.0


def snap(**models: tuple[float, float | None, int, float]) -> SpeedSnapshot:
    """model=(ttft_s, per_token_s, samples, age_s)."""
    return SpeedSnapshot(
        {m: SpeedEstimate(t, p, n, NOW - age) for m, (t, p, n, age) in models.items()}, NOW
    )


NO_EXPLORE = FastestRule(explore=0.0)

CASES: list[tuple[str, SpeedSnapshot, FastestRule, int | None, str, str]] = [
    ("cold: list order", snap(), NO_EXPLORE, None, "haiku",
     "fastest by ttft: haiku no estimate, nano no estimate, sonnet no estimate -> haiku "
     "(cold start, list order)"),
    ("quickest wins",
     snap(haiku=(0.3, None, 10, 1), nano=(0.1, None, 10, 1), sonnet=(0.2, None, 10, 1)),
     NO_EXPLORE, None, "nano",
     "fastest by ttft: haiku 0.300s n=10, nano 0.100s n=10, sonnet 0.200s n=10 -> nano"),
    ("tied: list order",
     snap(haiku=(0.2, None, 10, 1), nano=(0.2, None, 10, 1), sonnet=(0.2, None, 10, 1)),
     NO_EXPLORE, None, "haiku",
     "fastest by ttft: haiku 0.200s n=10, nano 0.200s n=10, sonnet 0.200s n=10 -> haiku"),
    ("measured beats unmeasured",
     snap(sonnet=(0.9, None, 10, 1)), NO_EXPLORE, None, "sonnet",
     "fastest by ttft: haiku no estimate, nano no estimate, sonnet 0.900s n=10 -> sonnet"),
    ("stale is marked, still ranked",
     snap(haiku=(0.1, None, 10, 1000), nano=(0.2, None, 10, 1)), NO_EXPLORE, None, "haiku",
     "fastest by ttft: haiku 0.100s n=10, stale, nano 0.200s n=10, sonnet no estimate -> haiku"),
    ("per_token",
     snap(haiku=(0.1, 0.02, 10, 1), nano=(0.5, 0.01, 10, 1)), FastestRule("per_token", 0.0),
     None, "nano",
     "fastest by per_token: haiku 20.00ms/token n=10, nano 10.00ms/token n=10, "
     "sonnet no estimate -> nano"),
    ("total, short answer: ttft dominates",
     snap(haiku=(0.1, 0.02, 10, 1), nano=(0.5, 0.01, 10, 1)), FastestRule("total", 0.0),
     10, "haiku",
     "fastest by total: haiku 0.300s n=10, nano 0.600s n=10, sonnet no estimate -> haiku"),
    ("total, long answer: per-token dominates",
     snap(haiku=(0.1, 0.02, 10, 1), nano=(0.5, 0.01, 10, 1)), FastestRule("total", 0.0),
     1000, "nano",
     "fastest by total: haiku 20.100s n=10, nano 10.500s n=10, sonnet no estimate -> nano"),
    ("always explore: the thinnest",
     snap(haiku=(0.1, None, 10, 1), nano=(0.5, None, 1, 1), sonnet=(0.4, None, 2, 1)),
     FastestRule(explore=1.0), None, "nano",
     "fastest by ttft: haiku 0.100s n=10, nano 0.500s n=1, sonnet 0.400s n=2 -> explore nano"),
    ("always explore: the stalest among equally thin",
     snap(haiku=(0.1, None, 10, 1), nano=(0.5, None, 10, 900), sonnet=(0.4, None, 10, 600)),
     FastestRule(explore=1.0), None, "nano",
     "fastest by ttft: haiku 0.100s n=10, nano 0.500s n=10, stale, sonnet 0.400s n=10, "
     "stale -> explore nano"),
    ("explore: nothing thin or stale, nothing to explore",
     snap(haiku=(0.1, None, 10, 1), nano=(0.5, None, 10, 1), sonnet=(0.4, None, 10, 1)),
     FastestRule(explore=1.0), None, "haiku",
     "fastest by ttft: haiku 0.100s n=10, nano 0.500s n=10, sonnet 0.400s n=10 -> haiku"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("snapshot", "rule", "max_tokens", "model", "reason"),
    [c[1:] for c in CASES],
    ids=[c[0] for c in CASES],
)
def test_fastest_decisions(
    snapshot: SpeedSnapshot, rule: FastestRule, max_tokens: int | None, model: str, reason: str
) -> None:
    policy = FastestPolicy("snappy", ["haiku", "nano", "sonnet"], rule)
    d = policy.decide(
        RequestContext(step_id="s", max_tokens=max_tokens), PoolHealth(speeds=snapshot)
    )
    assert (d.model, d.reason, d.policy, d.strategy) == (model, reason, "snappy", "single")


def test_explore_share_is_about_the_configured_share() -> None:
    s = snap(haiku=(0.1, None, 10, 1), nano=(0.5, None, 1, 1))
    rule = FastestRule(explore=0.1)
    explored = sum(
        rank_fastest(["haiku", "nano"], s, rule, key=f"run-{i}").explored for i in range(4000)
    )
    assert 0.08 < explored / 4000 < 0.12
    # deterministic for the same request and snapshot
    assert rank_fastest(["haiku", "nano"], s, rule, key="r") == rank_fastest(
        ["haiku", "nano"], s, rule, key="r"
    )


def test_unavailable_skipped_and_fallback_chain() -> None:
    s = snap(haiku=(0.3, None, 10, 1), nano=(0.1, None, 10, 1), sonnet=(0.2, None, 10, 1))
    p = FastestPolicy("snappy", ["haiku", "nano", "sonnet"], NO_EXPLORE, fallback=True)
    d = p.decide(RequestContext(), PoolHealth(frozenset({"nano"}), s))
    assert d.models == ("sonnet", "haiku") and d.strategy == "fallback"
    assert d.reason.endswith("-> sonnet; skipped unavailable nano")
    d = p.decide(RequestContext(), PoolHealth(frozenset({"haiku", "nano", "sonnet"}), s))
    assert d.model == "nano" and d.reason.endswith("; every candidate unavailable")


def _settings(policies: dict[str, Any]) -> Settings:
    from tests.unit.conftest import POOL

    return settings_from_dict({**POOL, "policies": policies})


def test_fastest_from_yaml_models_or_tier() -> None:
    s = _settings({
        "a": {"kind": "fastest", "models": ["nano", "haiku"], "metric": "total", "explore": 0},
        "b": {"kind": "fastest", "tier": "efficient"},
    })  # fmt: skip
    a = build_policy("a", s)
    assert isinstance(a, FastestPolicy) and a.candidates == ("nano", "haiku")
    assert a.rule == FastestRule("total", 0.0)
    b = build_policy("b", s)
    assert isinstance(b, FastestPolicy) and b.candidates == ("nano", "haiku")  # cheapest first


@pytest.mark.parametrize(
    ("policy", "message"),
    [
        ({"kind": "fastest", "models": ["nano"], "tier": "efficient"}, "either models or tier"),
        ({"kind": "fastest", "models": ["gpt-9"]}, "unknown model 'gpt-9'"),
        ({"kind": "fastest", "metric": "vibes"}, "metric"),
        ({"kind": "rules", "fastest": {"metric": "ttft"}}, "within_tier is not fastest"),
        ({"kind": "rules", "within_tier": "fastest", "prefer": ["nano"]}, "a prefer list"),
    ],
)
def test_bad_fastest_config(policy: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        _settings({"p": policy})


FAST_NANO = snap(haiku=(0.3, None, 10, 1), nano=(0.1, None, 10, 1))
DOCS = Annotation("single-file", "docs", "low")


def test_rules_within_tier_fastest_is_not_memoised() -> None:
    s = _settings({
        "r": {"kind": "rules", "default": "efficient", "within_tier": "fastest",
              "fastest": {"explore": 0}},
    })  # fmt: skip
    policy = build_policy("r", s)
    ctx = RequestContext(annotation=DOCS)
    d = policy.decide(ctx, PoolHealth(speeds=FAST_NANO))
    assert d.model == "nano"
    assert d.reason == (
        "rules: no rule matched (scope=single-file, domain=docs, ambiguity=low), default -> "
        "efficient -> nano (fastest by ttft: nano 0.100s n=10, haiku 0.300s n=10 -> nano)"
    )
    flipped = snap(haiku=(0.1, None, 10, 1), nano=(0.3, None, 10, 1))
    assert policy.decide(ctx, PoolHealth(speeds=flipped)).model == "haiku"


def test_latency_sensitive_overrides_cheapest_in_every_tier_policy() -> None:
    s = _settings({
        "r": {"kind": "rules", "default": "efficient"},
        "c": {"kind": "complexity", "tiers": {"low": "efficient"}},
        "t": {"kind": "task_type", "types": {"chat": {"tier": "efficient"}}},
    })  # fmt: skip
    health = PoolHealth(speeds=snap(haiku=(0.1, None, 10, 1), nano=(0.3, None, 10, 1)))
    for name in ("r", "c", "t"):
        policy = build_policy(name, s)
        msgs = (Message.user("hello there"),)
        normal = RequestContext(msgs, annotation=DOCS, step_id="s")
        sensitive = RequestContext(msgs, annotation=DOCS, step_id="s", latency="sensitive")
        assert policy.decide(normal, health).model == "nano", name  # cheapest
        assert policy.decide(sensitive, health).model == "haiku", name  # fastest


def test_workflow_routing_within_tier_fastest() -> None:
    s = _settings({"quick": {"kind": "workflow", "within_tier": "fastest"}})
    health = PoolHealth(speeds=snap(haiku=(0.1, None, 10, 1), nano=(0.3, None, 10, 1)))
    ctx = RequestContext(step_id="s", step_tier=Tier.EFFICIENT)
    assert build_policy("quick", s).decide(ctx, health).model == "haiku"
    assert build_policy(None, s).decide(ctx, health).model == "nano"  # the default: cheapest
    sensitive = RequestContext(step_id="s", step_tier=Tier.EFFICIENT, latency="sensitive")
    assert build_policy(None, s).decide(sensitive, health).model == "haiku"
