"""Config of the rules, complexity and task_type policies: spelling, one-line errors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from turnout.config import load_settings, settings_from_dict
from turnout.errors import ConfigError
from turnout.policies import RequestContext, build_policy
from turnout.types import Annotation, Message


def _err(pool_dict: dict[str, Any], **policy: Any) -> str:
    pool_dict["policies"]["p"] = policy
    with pytest.raises(ConfigError) as info:
        settings_from_dict(pool_dict)
    message = str(info.value)
    assert "\n" not in message
    return message


def test_the_documented_spelling_loads(tmp_path: Path) -> None:
    f = tmp_path / "turnout.yaml"
    f.write_text(
        """
providers:
  hosted: {kind: openai, base_url: "https://api.example.com/v1", api_key_env: EXAMPLE_API_KEY}
models:
  opus:   {provider: hosted, id: claude-opus-4-8, tier: frontier, price: {input: 5, output: 25}}
  sonnet: {provider: hosted, id: claude-sonnet-4-5, tier: standard, price: {input: 3, output: 15}}
  haiku:  {provider: hosted, id: claude-haiku-4-5, tier: efficient, price: {input: 1, output: 5}}
  smol:   {provider: hosted, id: smol, tier: efficient, price: {input: 0.1, output: 0.1}}
policies:
  written:
    kind: rules
    must_stay_frontier: [{domain: security}, {domain: schema}, {ambiguity: high}]
    rules:
      - when: {scope: single-file, domain: [docs, config, tests], ambiguity: low}
        tier: efficient
      - when: {scope: cross-service}
        tier: frontier
    default: standard
    within_tier: cheapest        # or: prefer: [model, model]
  preferring:
    kind: rules
    default: efficient
    prefer: [haiku]
  by_complexity:
    kind: complexity
    levels: {medium: 2, high: 5}
    tiers: {low: efficient, medium: standard, high: frontier}
    models: {low: smol}
    signals: {lines: {threshold: 50, weight: 2}}
    extra_keywords: [threat model]
  by_task:
    kind: task_type
    types:
      code: {model: sonnet, system: "You are a careful engineer.", temperature: 0.2}
      translation: {model: smol, temperature: 0.3}
      creative: {tier: frontier, temperature: 0.9}
    default: {tier: standard}
"""
    )
    s = load_settings(f)
    assert s.policies["written"].kind == "rules"
    written = build_policy("written", s)
    d = written.decide(RequestContext(annotation=Annotation("single-file", "docs", "low")))
    assert d.model == "smol"
    d = written.decide(RequestContext(annotation=Annotation(domain="security")))
    assert d.reason == "rules: domain=security is must-stay-frontier -> frontier -> opus"
    d = build_policy("preferring", s).decide(RequestContext(annotation=Annotation(domain="docs")))
    assert d.model == "haiku"
    msgs = (Message.user("Write the threat model"),)
    d = build_policy("by_complexity", s).decide(RequestContext(messages=msgs))
    assert d.reason.startswith("complexity: medium (score 2: keyword:threat model)")
    msgs = (Message.user("Translate to French: hello"),)
    d = build_policy("by_task", s).decide(RequestContext(messages=msgs))
    assert (d.model, d.temperature) == ("smol", 0.3)


RULES: dict[str, Any] = {
    "kind": "rules",
    "rules": [{"when": {"domain": "docs"}, "tier": "efficient"}],
}


@pytest.mark.parametrize(
    ("policy", "expected"),
    [
        (
            {**RULES, "prefer": ["haiku", "gpt-9"]},
            "turnout.yaml: policies.p.prefer[1]: unknown model 'gpt-9'"
            " (known: haiku, nano, opus, sonnet)",
        ),
        (
            {**RULES, "within_tier": {"prefer": ["gpt-9"]}},
            "turnout.yaml: policies.p.within_tier.prefer[0]: unknown model 'gpt-9'",
        ),
        (
            {"kind": "complexity", "models": {"low": "gpt-9"}},
            "turnout.yaml: policies.p.models.low: unknown model 'gpt-9'",
        ),
        (
            {"kind": "complexity", "prefer": ["gpt-9"]},
            "turnout.yaml: policies.p.prefer[0]: unknown model 'gpt-9'",
        ),
        (
            {"kind": "task_type", "types": {"code": {"model": "gpt-9"}}},
            "turnout.yaml: policies.p.types.code.model: unknown model 'gpt-9'",
        ),
        (
            {"kind": "task_type", "default": {"model": "gpt-9"}},
            "turnout.yaml: policies.p.default.model: unknown model 'gpt-9'",
        ),
    ],
)
def test_unknown_model_names_the_field(
    pool_dict: dict[str, Any], policy: dict[str, Any], expected: str
) -> None:
    assert _err(pool_dict, **policy).startswith(expected)


@pytest.mark.parametrize(
    ("policy", "field", "message"),
    [
        (  # bad tier name in a rule
            {"kind": "rules", "rules": [{"when": {"domain": "docs"}, "tier": "huge"}]},
            "policies.p.rules.0.tier",
            "Input should be 'efficient', 'standard' or 'frontier'",
        ),
        ({"kind": "rules", "default": "cheap"}, "policies.p.default", "Input should be"),
        (
            {"kind": "complexity", "tiers": {"high": "premium"}},
            "policies.p.tiers.high",
            "Input should be",
        ),
        (
            {"kind": "task_type", "types": {"code": {"tier": "premium"}}},
            "policies.p.types.code.tier",
            "Input should be",
        ),
        (  # unknown annotation key in when
            {"kind": "rules", "rules": [{"when": {"team": "infra"}, "tier": "efficient"}]},
            "policies.p.rules.0.when.team",
            "unknown field",
        ),
        (
            {"kind": "rules", "must_stay_frontier": [{"domian": "security"}]},
            "policies.p.must_stay_frontier.0.domian",
            "unknown field",
        ),
        (  # unknown annotation value (a typo) in when
            {"kind": "rules", "rules": [{"when": {"domain": "secuirty"}, "tier": "frontier"}]},
            "policies.p",
            "rules[0].when.domain: unknown value 'secuirty' (known: config, docs, feature,"
            " refactor, schema, security, tests; add it under vocabulary.domain to extend)",
        ),
        (
            {"kind": "rules", "must_stay_frontier": [{"domain": ["security", "auth"]}]},
            "policies.p",
            "must_stay_frontier[0].domain: unknown value 'auth'",
        ),
        (
            {"kind": "rules", "vocabulary": {"team": ["infra"]}},
            "policies.p.vocabulary.team",
            "unknown field",
        ),
        (
            {"kind": "rules", "rules": [{"when": {}, "tier": "efficient"}]},
            "policies.p.rules.0.when",
            "needs at least one of scope, domain, ambiguity",
        ),
        (
            {"kind": "rules", "rules": [{"when": {"domain": []}, "tier": "efficient"}]},
            "policies.p.rules.0.when",
            "domain: an empty list never matches",
        ),
        (
            {"kind": "rules", "within_tier": "cheapest", "prefer": ["haiku"]},
            "policies.p",
            "within_tier is cheapest but a prefer list is given",
        ),
        (
            {"kind": "rules", "within_tier": "prefer"},
            "policies.p",
            "within_tier is prefer but no prefer list is given",
        ),
        (
            {"kind": "rules", "within_tier": {"prefer": ["haiku"]}, "prefer": ["nano"]},
            "policies.p",
            "give prefer either at the top or under within_tier, not both",
        ),
        (
            {"kind": "rules", "within_tier": "random"},
            "policies.p.within_tier",
            "expected cheapest, prefer, fastest or {prefer: [model, ...]}, got 'random'",
        ),
        (
            {"kind": "complexity", "levels": {"medium": 5, "high": 5}},
            "policies.p.levels",
            "medium must be below high",
        ),
        (
            {"kind": "complexity", "signals": {"emojis": {"weight": 1}}},
            "policies.p.signals.emojis",
            "unknown field",
        ),
        (
            {"kind": "task_type", "types": {"poetry": {"model": "opus"}}},
            "policies.p.types.poetry",
            "unknown field",
        ),
        (
            {"kind": "task_type", "types": {"code": {"model": "opus", "tier": "frontier"}}},
            "policies.p.types.code",
            "give either model or tier, not both",
        ),
        (
            {"kind": "task_type", "default": {"temperature": 3}},
            "policies.p.default.temperature",
            "less than or equal to 2",
        ),
    ],
)
def test_bad_policy_config_is_one_line_naming_the_field(
    pool_dict: dict[str, Any], policy: dict[str, Any], field: str, message: str
) -> None:
    error = _err(pool_dict, **policy)
    assert error.startswith(f"turnout.yaml: {field}: "), error
    assert message in error


def test_rules_default_is_a_tier_not_a_model(pool_dict: dict[str, Any]) -> None:
    pool_dict["policies"]["p"] = {"kind": "rules", "default": "frontier"}
    assert settings_from_dict(pool_dict).policies["p"].options["default"] == "frontier"


def test_vocabulary_extension_allows_new_values(pool_dict: dict[str, Any]) -> None:
    pool_dict["policies"]["p"] = {
        "kind": "rules",
        "must_stay_frontier": [{"domain": ["security", "Auth"]}],
        "vocabulary": {"domain": ["AUTH"]},
    }
    options = settings_from_dict(pool_dict).policies["p"].options
    assert options["must_stay_frontier"][0]["domain"] == ["security", "auth"]
