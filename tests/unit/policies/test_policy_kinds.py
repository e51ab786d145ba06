"""``kind: cascade | fallback | ensemble | ab``: decisions, composition and config errors.

Pool (tests/unit/conftest.py): opus (frontier), sonnet (standard), haiku and
nano (efficient).
"""

from __future__ import annotations

import math
from collections import Counter
from typing import Any

import pytest

from turnout.config import Settings, settings_from_dict
from turnout.errors import ConfigError
from turnout.policies import PoolHealth, RequestContext, build_policy
from turnout.policies.ab import ABPolicy, bucket
from turnout.types import DEFAULT_REFUSALS, Decision, QualitySpec


def with_policies(pool_dict: dict[str, Any], **policies: dict[str, Any]) -> Settings:
    pool_dict["policies"].update(policies)
    return settings_from_dict(pool_dict)


def decide(
    settings: Settings,
    name: str,
    *,
    down: frozenset[str] = frozenset(),
    **tags: str,
) -> Decision:
    ctx = RequestContext(step_id="s", tags=tags)
    return build_policy(name, settings).decide(ctx, PoolHealth(down))


# -- cascade ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("models", "down", "expected", "reason"),
    [
        (
            ["nano", "haiku", "opus"],
            set(),
            ("nano", "haiku", "opus"),
            "cascade: nano -> haiku -> opus (escalate when an answer fails its checks)",
        ),
        (
            ["opus", "nano"],  # the order written is the order tried, cheap or not
            set(),
            ("opus", "nano"),
            "cascade: opus -> nano (escalate when an answer fails its checks)",
        ),
        (
            ["nano", "haiku", "opus"],
            {"haiku"},
            ("nano", "opus"),
            "cascade: nano -> opus (haiku unhealthy, skipped)",
        ),
        (
            ["nano", "haiku", "opus"],
            {"nano", "haiku"},
            ("opus",),
            "cascade: opus (nano, haiku unhealthy, skipped)",
        ),
        (
            ["nano", "opus"],
            {"nano", "opus"},  # nothing healthy: keep the whole ladder rather than nothing
            ("nano", "opus"),
            "cascade: nano -> opus (escalate when an answer fails its checks)",
        ),
    ],
)
def test_cascade_decisions(
    pool_dict: dict[str, Any],
    models: list[str],
    down: set[str],
    expected: tuple[str, ...],
    reason: str,
) -> None:
    s = with_policies(pool_dict, cheap_first={"kind": "cascade", "models": models})
    d = decide(s, "cheap_first", down=frozenset(down))
    assert d.models == expected
    assert d.strategy == "cascade"
    assert d.reason == reason
    assert d.policy == "cheap_first"
    assert d.quality == QualitySpec()


@pytest.mark.parametrize(
    ("quality", "expected"),
    [
        ({}, QualitySpec(0, DEFAULT_REFUSALS, True)),
        ({"min_chars": 40}, QualitySpec(40, DEFAULT_REFUSALS, True)),
        (
            {"refusal_phrases": ["no idea"], "code_block_when_asked": False},
            QualitySpec(0, ("no idea",), False),
        ),
        ({"refusal_phrases": []}, QualitySpec(0, (), True)),  # [] turns refusals off
    ],
)
def test_cascade_carries_its_quality_spec(
    pool_dict: dict[str, Any], quality: dict[str, Any], expected: QualitySpec
) -> None:
    s = with_policies(
        pool_dict, c={"kind": "cascade", "models": ["nano", "opus"], "quality": quality}
    )
    assert decide(s, "c").quality == expected


# -- fallback -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("down", "chain", "reason"),
    [
        (set(), ("opus", "sonnet", "nano"), "fallback: opus -> sonnet -> nano"),
        (
            {"opus"},
            ("sonnet", "nano", "opus"),
            "fallback: sonnet -> nano -> opus (opus breaker open, tried last)",
        ),
        (
            {"opus", "sonnet"},
            ("nano", "opus", "sonnet"),
            "fallback: nano -> opus -> sonnet (opus, sonnet breaker open, tried last)",
        ),
        (
            {"opus", "sonnet", "nano"},
            ("opus", "sonnet", "nano"),
            "fallback: opus -> sonnet -> nano (opus, sonnet, nano breaker open, tried last)",
        ),
        ({"haiku"}, ("opus", "sonnet", "nano"), "fallback: opus -> sonnet -> nano"),
    ],
)
def test_fallback_decisions(
    pool_dict: dict[str, Any], down: set[str], chain: tuple[str, ...], reason: str
) -> None:
    s = with_policies(
        pool_dict,
        resilient={
            "kind": "fallback",
            "models": ["opus", "sonnet", "nano"],
            "on_content_filter": "haiku",
        },
    )
    d = decide(s, "resilient", down=frozenset(down))
    assert d.models == chain
    assert d.reason == reason
    assert d.strategy == "fallback"
    assert d.on_content_filter == "haiku"


def test_fallback_without_content_filter_model(pool_dict: dict[str, Any]) -> None:
    s = with_policies(pool_dict, r={"kind": "fallback", "models": ["opus"]})
    d = decide(s, "r")
    assert (d.models, d.on_content_filter, d.strategy) == (("opus",), None, "fallback")


# -- ensemble -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "mode", "judge", "reason"),
    [
        ({}, "auto", None, "ensemble: nano, haiku, sonnet in parallel (auto)"),
        ({"mode": "vote"}, "vote", None, "ensemble: nano, haiku, sonnet in parallel (vote)"),
        (
            {"mode": "first_passing"},
            "first_passing",
            None,
            "ensemble: nano, haiku, sonnet in parallel (first_passing)",
        ),
        (
            {"mode": "judge", "judge": "opus"},
            "judge",
            "opus",
            "ensemble: nano, haiku, sonnet in parallel (judge, judge opus)",
        ),
    ],
)
def test_ensemble_decisions(
    pool_dict: dict[str, Any],
    options: dict[str, Any],
    mode: str,
    judge: str | None,
    reason: str,
) -> None:
    s = with_policies(
        pool_dict, vote={"kind": "ensemble", "models": ["nano", "haiku", "sonnet"], **options}
    )
    d = decide(s, "vote")
    assert d.models == ("nano", "haiku", "sonnet")
    assert d.strategy == "ensemble"
    assert d.ensemble is not None
    assert (d.ensemble.mode, d.ensemble.judge) == (mode, judge)
    assert d.reason == reason


def test_ensemble_leaves_out_unhealthy_members(pool_dict: dict[str, Any]) -> None:
    s = with_policies(pool_dict, v={"kind": "ensemble", "models": ["nano", "haiku", "sonnet"]})
    assert decide(s, "v", down=frozenset({"haiku"})).models == ("nano", "sonnet")
    every = frozenset({"nano", "haiku", "sonnet"})
    assert decide(s, "v", down=every).models == ("nano", "haiku", "sonnet")


# -- ab -----------------------------------------------------------------------------------

SPLIT = {"kind": "ab", "key": "user", "variants": {"haiku": 0.5, "opus": 0.5}}


def test_ab_is_sticky_over_many_calls(pool_dict: dict[str, Any]) -> None:
    s = with_policies(pool_dict, split=SPLIT)
    policy = build_policy("split", s)
    for user in ("ana", "bo", "cy", "dee"):
        first = policy.decide(RequestContext(tags={"user": user}))
        assert first.variant in ("haiku", "opus")
        assert first.models == (first.variant,)
        assert first.reason == f"ab: user={user} -> variant {first.variant}"
        for _ in range(1000):
            again = policy.decide(RequestContext(tags={"user": user, "run": "other"}))
            assert again == first


def test_ab_is_sticky_across_freshly_built_policies(pool_dict: dict[str, Any]) -> None:
    users = [f"user-{i}" for i in range(200)]
    first = build_policy("split", with_policies(pool_dict, split=dict(SPLIT)))
    before = [first.decide(RequestContext(tags={"user": u})).variant for u in users]
    for _ in range(3):
        fresh = build_policy("split", settings_from_dict({**pool_dict}))
        assert [fresh.decide(RequestContext(tags={"user": u})).variant for u in users] == before
    assert set(before) == {"haiku", "opus"}


def test_ab_depends_only_on_policy_name_and_value() -> None:
    # a stable hash: the same value in every process (Python's hash() is salted per process)
    assert bucket("split", "ana") == bucket("split", "ana")
    assert 0.0 <= bucket("split", "ana") < 1.0
    assert bucket("split", "ana") != bucket("other", "ana")
    a = ABPolicy("split", "user", {"haiku": 1, "opus": 1}, {})
    b = ABPolicy("split", "user", {"haiku": 1, "opus": 1}, {})
    assert [a.assign(str(i)) for i in range(100)] == [b.assign(str(i)) for i in range(100)]


@pytest.mark.parametrize(
    "weights",
    [
        {"haiku": 0.5, "opus": 0.5},
        {"haiku": 0.9, "opus": 0.1},
        {"nano": 1, "haiku": 2, "opus": 7},  # weights need not add up to 1
        {"haiku": 0.7, "opus": 0.0, "sonnet": 0.3},
    ],
)
def test_ab_split_matches_the_weights(pool_dict: dict[str, Any], weights: dict[str, float]) -> None:
    s = with_policies(pool_dict, split={"kind": "ab", "variants": weights})
    policy = build_policy("split", s)
    n = 10_000
    counts = Counter(
        policy.decide(RequestContext(tags={"user": f"u{i}"})).variant for i in range(n)
    )
    total = sum(weights.values())
    for variant, w in weights.items():
        share = counts[variant] / n
        expected = w / total
        # binomial sd is at most 0.5%; 2.5 points is five of them and still "a few percent"
        assert math.isclose(share, expected, abs_tol=0.025), (variant, share, expected)
    assert set(counts) == {v for v, w in weights.items() if w > 0}  # weight 0: never


def test_ab_variant_naming_a_policy_delegates_with_a_composed_reason(
    pool_dict: dict[str, Any],
) -> None:
    s = with_policies(
        pool_dict,
        cheap_first={"kind": "cascade", "models": ["nano", "opus"]},
        resilient={"kind": "fallback", "models": ["opus", "sonnet"]},
        split={"kind": "ab", "variants": {"cheap_first": 0.5, "resilient": 0.5}},
    )
    policy = build_policy("split", s)
    seen: dict[str, Decision] = {}
    for i in range(64):
        d = policy.decide(RequestContext(tags={"user": f"u{i}"}))
        assert d.variant is not None
        seen.setdefault(d.variant, d)
    assert set(seen) == {"cheap_first", "resilient"}
    c = seen["cheap_first"]
    assert c.policy == "split"
    assert (c.strategy, c.models) == ("cascade", ("nano", "opus"))
    assert c.quality == QualitySpec()
    assert c.reason.startswith("ab: user=u")
    assert c.reason.endswith(
        " -> variant cheap_first -> "
        "cascade: nano -> opus (escalate when an answer fails its checks)"
    )
    f = seen["resilient"]
    assert (f.strategy, f.models, f.policy) == ("fallback", ("opus", "sonnet"), "split")
    assert f.reason.endswith(" -> variant resilient -> fallback: opus -> sonnet")


def test_ab_delegate_sees_pool_health(pool_dict: dict[str, Any]) -> None:
    s = with_policies(
        pool_dict,
        resilient={"kind": "fallback", "models": ["opus", "sonnet"]},
        split={"kind": "ab", "variants": {"resilient": 1}},
    )
    d = decide(s, "split", down=frozenset({"opus"}), user="ana")
    assert d.models == ("sonnet", "opus")
    assert d.reason == (
        "ab: user=ana -> variant resilient -> "
        "fallback: sonnet -> opus (opus breaker open, tried last)"
    )


def test_ab_without_the_key_tag_is_assigned_by_run(pool_dict: dict[str, Any]) -> None:
    s = with_policies(pool_dict, split={**SPLIT, "key": "session"})
    policy = build_policy("split", s)
    d = policy.decide(RequestContext(tags={"user": "ana", "run": "run-1"}))
    assert d.reason == f"ab: no session tag, by run -> variant {d.variant}"
    # the same run id gives the same variant; runs spread over both variants
    again = policy.decide(RequestContext(tags={"run": "run-1"}))
    assert again.variant == d.variant
    by_run = {policy.decide(RequestContext(tags={"run": f"r{i}"})).variant for i in range(64)}
    assert by_run == {"haiku", "opus"}


def test_ab_key_tag_wins_over_run(pool_dict: dict[str, Any]) -> None:
    s = with_policies(pool_dict, split=SPLIT)
    policy = build_policy("split", s)
    variants = {
        policy.decide(RequestContext(tags={"user": "ana", "run": f"r{i}"})).variant
        for i in range(50)
    }
    assert len(variants) == 1


def test_ab_salt_reshuffles_assignment(pool_dict: dict[str, Any]) -> None:
    s = with_policies(
        pool_dict, a=dict(SPLIT), b={**SPLIT, "salt": "a"}, c={**SPLIT, "salt": "other"}
    )
    users = [RequestContext(tags={"user": f"u{i}"}) for i in range(200)]
    a, b, c = (build_policy(n, s) for n in "abc")
    va = [a.decide(u).variant for u in users]
    assert [b.decide(u).variant for u in users] == va  # salt "a" == the name "a"
    assert [c.decide(u).variant for u in users] != va


# -- composition cycles -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("policies", "start", "cycle"),
    [
        ({"x": {"kind": "ab", "variants": {"x": 1, "opus": 1}}}, "x", "x -> x"),
        (
            {
                "a": {"kind": "ab", "variants": {"b": 1, "opus": 1}},
                "b": {"kind": "ab", "variants": {"a": 1, "nano": 1}},
            },
            "a",
            "a -> b -> a",
        ),
        (
            {
                "a": {"kind": "ab", "variants": {"b": 1}},
                "b": {"kind": "ab", "variants": {"c": 1}},
                "c": {"kind": "ab", "variants": {"haiku": 1, "a": 1}},
            },
            "b",
            "b -> c -> a -> b",
        ),
    ],
)
def test_policy_cycles_are_config_errors(
    pool_dict: dict[str, Any], policies: dict[str, Any], start: str, cycle: str
) -> None:
    s = with_policies(pool_dict, **policies)
    with pytest.raises(ConfigError, match=f"policies name each other in a cycle: {cycle}$"):
        build_policy(start, s)


def test_a_policy_named_twice_without_a_cycle_is_fine(pool_dict: dict[str, Any]) -> None:
    s = with_policies(
        pool_dict,
        leaf={"kind": "fallback", "models": ["opus", "nano"]},
        mid={"kind": "ab", "variants": {"leaf": 1, "haiku": 1}},
        top={"kind": "ab", "variants": {"leaf": 1, "mid": 1}},
    )
    policy = build_policy("top", s)
    for i in range(32):
        assert policy.decide(RequestContext(tags={"user": str(i)})).policy == "top"
    # a failed build leaves nothing behind: the next build starts from a clean stack
    bad = with_policies(pool_dict, loop={"kind": "ab", "variants": {"loop": 1}})
    with pytest.raises(ConfigError):
        build_policy("loop", bad)
    assert build_policy("top", bad).name == "top"


# -- config errors ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("policy", "field", "message"),
    [
        (
            {"kind": "cascade", "models": ["nano", "gpt5"]},
            "policies.p.models[1]",
            "unknown model 'gpt5'",
        ),
        (
            {"kind": "fallback", "models": ["gpt5", "opus"]},
            "policies.p.models[0]",
            "unknown model 'gpt5'",
        ),
        (
            {"kind": "fallback", "models": ["opus"], "on_content_filter": "gpt5"},
            "policies.p.on_content_filter",
            "unknown model 'gpt5'",
        ),
        (
            {"kind": "ensemble", "models": ["nano", "haiku", "gpt5"]},
            "policies.p.models[2]",
            "unknown model 'gpt5'",
        ),
        (
            {"kind": "ensemble", "models": ["nano", "haiku"], "mode": "judge", "judge": "gpt5"},
            "policies.p.judge",
            "unknown model 'gpt5'",
        ),
        (
            {"kind": "ab", "variants": {"opus": 1, "gpt5": 1}},
            "policies.p.variants",
            "variant 'gpt5' is neither a model nor a policy",
        ),
    ],
)
def test_unknown_names_are_config_errors_naming_the_field(
    pool_dict: dict[str, Any], policy: dict[str, Any], field: str, message: str
) -> None:
    with pytest.raises(ConfigError) as info:
        with_policies(pool_dict, p=policy)
    assert info.value.field == field
    assert message in str(info.value)
    assert "known: haiku, nano, opus, sonnet" in str(info.value) or policy["kind"] == "ab"


@pytest.mark.parametrize(
    ("policy", "field", "message"),
    [
        ({"kind": "cascade", "models": ["nano"]}, "models", "at least 2"),
        ({"kind": "ensemble", "models": ["nano"]}, "models", "at least 2"),
        (
            {"kind": "ensemble", "models": ["nano", "opus"], "mode": "judge"},
            None,
            "mode judge needs a judge model",
        ),
        ({"kind": "ensemble", "models": ["nano", "opus"], "mode": "best"}, "mode", "'vote'"),
        ({"kind": "fallback", "models": []}, "models", "at least 1"),
        ({"kind": "ab", "variants": {}}, "variants", "at least 1"),
        ({"kind": "ab", "variants": {"opus": -1, "nano": 2}}, "variants", "non-negative"),
        ({"kind": "ab", "variants": {"opus": 0, "nano": 0}}, "variants", "more than 0"),
        ({"kind": "cascade", "models": ["nano", "opus"], "quality": {"min_chars": -1}}, None, ""),
        ({"kind": "cascade", "models": ["nano", "opus"], "escalate": "always"}, "escalate", ""),
    ],
)
def test_malformed_policies_are_config_errors_naming_the_policy(
    pool_dict: dict[str, Any], policy: dict[str, Any], field: str | None, message: str
) -> None:
    with pytest.raises(ConfigError) as info:
        with_policies(pool_dict, p=policy)
    err = info.value
    assert err.field is not None and err.field.startswith("policies.p")
    if field is not None:
        assert err.field.endswith(f".{field}")
    assert message in str(err)
    assert str(err).startswith("turnout.yaml: policies.p")
    assert "\n" not in str(err)
