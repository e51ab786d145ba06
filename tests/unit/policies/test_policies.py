import pytest

from turnout.config import Settings
from turnout.errors import ConfigError
from turnout.policies import PoolHealth, RequestContext, build_policy
from turnout.policies.tiers import TierChooser
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


def test_tier_choice_cheapest_and_health(settings: Settings) -> None:
    c = TierChooser(settings).choose(Tier.EFFICIENT, PoolHealth())
    assert (c.models, c.tier, c.why) == (("nano",), Tier.EFFICIENT, "cheapest in efficient")
    c = TierChooser(settings).choose(Tier.EFFICIENT, PoolHealth(frozenset({"nano"})))
    assert c.models == ("haiku",)
    c = TierChooser(settings, prefer=["haiku"]).choose(Tier.EFFICIENT, PoolHealth())
    assert c.models == ("haiku",) and c.why is not None and c.why.startswith("preferred")


def test_tier_choice_routes_up_when_tier_is_empty(pool_dict: dict) -> None:  # type: ignore[type-arg]
    from turnout.config import settings_from_dict

    del pool_dict["models"]["sonnet"]
    s = settings_from_dict(pool_dict)
    c = TierChooser(s).choose(Tier.STANDARD, PoolHealth())
    assert (c.models, c.tier) == (("opus",), Tier.FRONTIER) and "routed to frontier" in (
        c.why or ""
    )
