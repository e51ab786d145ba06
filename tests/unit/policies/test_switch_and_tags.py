"""``kind: switch`` per context, ``rules`` conditions on tags, and the CI context tag."""

from __future__ import annotations

from typing import Any

import pytest

from turnout.cli.common import context_tags, in_ci
from turnout.config import settings_from_dict
from turnout.errors import ConfigError
from turnout.policies import PoolHealth, RequestContext, build_policy
from turnout.types import Annotation

CI_POLICIES: dict[str, Any] = {
    "strict": {
        "kind": "rules",
        "vocabulary": {"context": ["ci", "local"], "domain": ["review"]},
        "must_stay_frontier": [{"context": "ci", "domain": "review"}, {"context": "ci",
                                                                       "scope": "cross-service"}],
        "rules": [
            {"when": {"domain": ["docs", "tests"]}, "tier": "efficient"},
            {"when": {"context": "local", "domain": "review"}, "tier": "efficient"},
        ],
        "default": "standard",
    },
    "by_context": {"kind": "switch", "on": "context",
                   "cases": {"ci": "strict", "nightly": "haiku"}, "default": "mixed"},
}  # fmt: skip


@pytest.fixture
def settings(pool_dict: dict[str, Any]) -> Any:
    pool_dict["policies"].update(CI_POLICIES)
    return settings_from_dict(pool_dict)


def _ctx(tags: dict[str, str], step: str = "implementer", **ann: str) -> RequestContext:
    return RequestContext(step_id=step, annotation=Annotation(**ann) if ann else None, tags=tags)


@pytest.mark.parametrize(
    ("tags", "step", "ann", "model", "reason"),
    [
        ({"context": "ci"}, "x", {"domain": "review"}, "opus",
         "switch: context=ci -> strict -> rules: domain=review, context=ci is must-stay-frontier"),
        ({"context": "CI"}, "x", {"domain": "docs"}, "nano", "switch: context=CI -> strict -> rules: rule 1"),
        ({"context": "nightly"}, "x", {}, "haiku", "switch: context=nightly -> haiku"),
        ({"context": "local"}, "implementer", {}, "haiku",
         "switch: context=local has no case, default mixed -> per_step"),
        ({}, "planner", {}, "opus", "switch: no context tag, default mixed -> per_step"),
    ],
)  # fmt: skip
def test_switch_picks_a_policy_per_context(
    settings: Any, tags: dict[str, str], step: str, ann: dict[str, str], model: str, reason: str
) -> None:
    d = build_policy("by_context", settings).decide(_ctx(tags, step, **ann))
    assert d.model == model
    assert d.reason.startswith(reason), d.reason
    assert d.policy == "by_context"


@pytest.mark.parametrize(
    ("tags", "ann", "tier_reason"),
    [
        ({"context": "ci"}, {"domain": "review"}, "domain=review, context=ci is must-stay-frontier"),
        ({"context": "local"}, {"domain": "review"}, "rule 2 (domain=review, context=local)"),
        ({}, {"domain": "review"}, "no rule matched (domain=review), default"),
        ({"context": "ci"}, {"scope": "cross-service"}, "must-stay-frontier"),
        ({"context": "ci"}, {}, "no annotation, route up"),  # tags alone do not replace it
        ({"context": "ci"}, {"domain": "docs"}, "rule 1 (domain=docs)"),
    ],
)  # fmt: skip
def test_rules_match_tags_as_well_as_the_annotation(
    settings: Any, tags: dict[str, str], ann: dict[str, str], tier_reason: str
) -> None:
    d = build_policy("strict", settings).decide(_ctx(tags, **ann))
    assert tier_reason in d.reason, d.reason


def test_a_tag_only_must_stay_frontier_entry_applies_without_an_annotation(
    pool_dict: dict[str, Any],
) -> None:
    pool_dict["policies"]["p"] = {"kind": "rules", "vocabulary": {"context": ["ci"]},
                                  "must_stay_frontier": [{"context": "ci"}], "default": "efficient"}  # fmt: skip
    p = build_policy("p", settings_from_dict(pool_dict))
    assert p.decide(_ctx({"context": "ci"})).model == "opus"
    assert p.decide(_ctx({})).model != "opus"  # route up from efficient: standard
    # memoised per tag value: the same annotation with another tag decides again
    assert p.decide(_ctx({"context": "ci"})).model == "opus"


def test_switch_composes_with_health(settings: Any) -> None:
    d = build_policy("by_context", settings).decide(
        _ctx({"context": "nightly"}), PoolHealth(frozenset({"haiku"}))
    )
    assert d.model == "haiku" and "(haiku unavailable)" in d.reason


@pytest.mark.parametrize(
    ("policy", "field", "message"),
    [
        ({"kind": "switch", "on": "context", "cases": {"ci": "nope"}, "default": "opus"},
         "policies.p.cases.ci", "'nope' is neither a model nor a policy"),
        ({"kind": "switch", "on": "context", "default": "nope"},
         "policies.p.default", "'nope' is neither a model nor a policy"),
        ({"kind": "switch", "cases": {}, "default": "opus"}, "policies.p.on", "required field is missing"),
    ],
)  # fmt: skip
def test_bad_switch_config(
    pool_dict: dict[str, Any], policy: dict[str, Any], field: str, message: str
) -> None:
    pool_dict["policies"]["p"] = policy
    with pytest.raises(ConfigError) as info:
        settings_from_dict(pool_dict)
    assert str(info.value).startswith(f"turnout.yaml: {field}: ") and message in str(info.value)


def test_switch_cycles_are_refused(pool_dict: dict[str, Any]) -> None:
    pool_dict["policies"]["a"] = {"kind": "switch", "on": "context", "default": "b"}
    pool_dict["policies"]["b"] = {"kind": "switch", "on": "context", "default": "a"}
    with pytest.raises(ConfigError, match="cycle"):
        build_policy("a", settings_from_dict(pool_dict))


@pytest.mark.parametrize(
    ("env", "tags", "expected"),
    [
        ({"CI": "true"}, {}, {"context": "ci"}),
        ({"CI": "1"}, {"user": "7"}, {"user": "7", "context": "ci"}),
        ({"CI": "TRUE"}, {"context": "local"}, {"context": "local"}),  # --tag wins
        ({"CI": "false"}, {}, {}),
        ({}, {}, {}),
        ({"CI": ""}, {"context": "ci"}, {"context": "ci"}),
    ],
)
def test_ci_sets_the_context_tag_unless_one_is_given(
    env: dict[str, str], tags: dict[str, str], expected: dict[str, str]
) -> None:
    assert context_tags(tags, env) == expected
    assert in_ci(env) == (env.get("CI", "").lower() in ("true", "1"))


def test_a_bare_yaml_on_key_is_the_tag_name(tmp_path: Any) -> None:
    from turnout.config import load_settings

    path = tmp_path / "turnout.yaml"
    path.write_text(
        "providers: {p: {kind: openai, base_url: 'http://127.0.0.1:9/v1'}}\n"
        "models: {m: {provider: p, id: m, tier: efficient, price: {input: 1, output: 1}}}\n"
        "policies:\n  s:\n    kind: switch\n    on: context\n    default: m\n"
    )
    d = build_policy("s", load_settings(path)).decide(_ctx({"context": "ci"}))
    assert d.reason == "switch: context=ci has no case, default m"


def test_the_examples_ci_policy() -> None:
    from pathlib import Path

    from turnout.config import load_settings

    settings = load_settings(Path(__file__).parents[3] / "examples" / "policies.yaml")
    policy = build_policy("by_context", settings)
    review = _ctx({"context": "ci"}, scope="single-file", domain="review", ambiguity="low")
    assert policy.decide(review).model == "qwen"
    assert "context=ci is must-stay-frontier" in policy.decide(review).reason
    docs = _ctx({"context": "ci"}, scope="single-file", domain="docs", ambiguity="low")
    assert policy.decide(docs).model == "smol"
    assert policy.decide(_ctx({}, domain="review")).strategy == "cascade"
