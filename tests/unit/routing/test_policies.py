import pytest

from turnout.config import Settings
from turnout.errors import ConfigError
from turnout.routing import PoolHealth, RequestContext, build_policy
from turnout.routing.selection import pick_in_tier
from turnout.types import Tier


@pytest.mark.parametrize(
    ("policy", "step", "model", "reason"),
    [
        ("all_frontier", "planner", "opus", "static: every step -> opus"),
        ("all_frontier", None, "opus", "static: every step -> opus"),
        ("mixed", "implementer", "haiku", "per_step: implementer -> haiku"),
        ("mixed", "planner", "opus", "per_step: planner -> default opus"),
        ("mixed", None, "opus", "per_step: request -> default opus"),
    ],
)
def test_decisions(
    settings: Settings, policy: str, step: str | None, model: str, reason: str
) -> None:
    d = build_policy(policy, settings).decide(RequestContext(step_id=step))
    assert d.models == (model,)
    assert d.reason == reason
    assert d.policy == policy
    assert d.strategy == "single"


def test_unknown_policy_lists_known(settings: Settings) -> None:
    with pytest.raises(ConfigError, match=r"unknown policy 'nope' \(known: all_frontier, mixed\)"):
        build_policy("nope", settings)


@pytest.mark.parametrize(
    ("ctx", "model"),
    [
        (RequestContext(step_id="s", step_model="haiku"), "haiku"),
        (RequestContext(step_id="s", step_tier=Tier.STANDARD), "sonnet"),
        (RequestContext(step_id="s", default_model="sonnet"), "sonnet"),
        (RequestContext(step_id="s"), "opus"),  # nothing said: route up
    ],
)
def test_workflow_policy(settings: Settings, ctx: RequestContext, model: str) -> None:
    assert build_policy(None, settings).decide(ctx).model == model


def test_pick_in_tier_cheapest_and_health(settings: Settings) -> None:
    m, tier, why = pick_in_tier(settings, Tier.EFFICIENT)
    assert (m.name, tier, why) == ("nano", Tier.EFFICIENT, "cheapest in efficient")
    m, _, _ = pick_in_tier(settings, Tier.EFFICIENT, health=PoolHealth(frozenset({"nano"})))
    assert m.name == "haiku"
    m, _, why = pick_in_tier(settings, Tier.EFFICIENT, prefer=["haiku"])
    assert m.name == "haiku" and why.startswith("preferred")


def test_pick_in_tier_routes_up_when_tier_is_empty(pool_dict: dict) -> None:  # type: ignore[type-arg]
    from turnout.config import settings_from_dict

    del pool_dict["models"]["sonnet"]
    s = settings_from_dict(pool_dict)
    m, tier, why = pick_in_tier(s, Tier.STANDARD)
    assert (m.name, tier) == ("opus", Tier.FRONTIER) and "routed to frontier" in why
