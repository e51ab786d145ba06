"""``kind: complexity``: each signal, thresholds, keywords, the reason, tiers and models."""

from __future__ import annotations

from typing import Any

import pytest

from turnout.config import Settings, settings_from_dict
from turnout.policies import PoolHealth, RequestContext, build_policy
from turnout.policies.complexity import ComplexityPolicy
from turnout.types import Decision, Message


def _policy(pool_dict: dict[str, Any], **options: Any) -> Any:
    pool_dict["policies"]["cx"] = {"kind": "complexity", **options}
    return build_policy("cx", settings_from_dict(pool_dict))


def _ctx(text: str, *earlier: Message) -> RequestContext:
    return RequestContext(messages=(*earlier, Message.user(text)))


def _decide(pool_dict: dict[str, Any], text: str, **options: Any) -> Decision:
    d: Decision = _policy(pool_dict, **options).decide(_ctx(text))
    return d


PARAGRAPH = (
    "The export job writes one row per invoice with the customer and the amount. "  # 76 chars
)


@pytest.mark.parametrize(
    ("text", "signals", "score"),
    [
        ("What is the capital of France", "no signals", 0),
        (PARAGRAPH * 16, "tokens~304", 1),  # 1216 chars
        (PARAGRAPH * 80, "tokens~1520 (long)", 3),
        ("Fix this:\n```py\nx = 1\n```\nand this:\n```py\ny = 2\n```", "code_blocks=2", 2),
        ("Fix this:\n```py\nx = 1", "code_blocks=1", 2),  # an unclosed fence counts
        ("Why? How? When?", "questions=3", 1),
        ("\n".join(["line"] * 30), "lines=30", 1),
        ("Please design the schema", "keyword:design", 2),
        ("Can you summarize this", "low-keyword:summarize", -2),
        ("Yes or no: is the build green", "low-keyword:yes or no", -2),
        ("Is the build green - yes, or no?", "low-keyword:yes or no", -2),  # punctuation
        ("We should weigh the trade-offs here", "keyword:trade-offs", 2),
    ],
)
def test_each_signal(pool_dict: dict[str, Any], text: str, signals: str, score: int) -> None:
    d = _decide(pool_dict, text)
    assert f"(score {score}: {signals})" in d.reason


def test_reason_names_every_signal_and_the_score(pool_dict: dict[str, Any]) -> None:
    text = (
        "Architect the export service for us.\n```py\ndef export(): ...\n```\n"
        + "context line\n" * 40
        + "```sql\nselect 1\n```"
    )
    d = _decide(pool_dict, text)
    assert d.reason == (
        "complexity: high (score 5: code_blocks=2, lines=47, keyword:architect) -> frontier -> opus"
    )
    assert d.models == ("opus",)


@pytest.mark.parametrize(
    ("text", "level", "model"),
    [
        ("Summarize this paragraph in one sentence.", "low", "nano"),
        ("Compare the two designs", "medium", "sonnet"),  # 'designs' is not 'design'
        ("Analyze and compare the trade-off between A and B", "high", "opus"),
    ],
)
def test_levels_map_to_tiers(pool_dict: dict[str, Any], text: str, level: str, model: str) -> None:
    d = _decide(pool_dict, text)
    assert d.reason.startswith(f"complexity: {level} ")
    assert d.models == (model,)


def test_thresholds_are_configurable(pool_dict: dict[str, Any]) -> None:
    text = "Why? How? When?"
    assert _decide(pool_dict, text).reason.startswith("complexity: low (score 1")
    d = _decide(pool_dict, text, levels={"medium": 1, "high": 3})
    assert d.reason.startswith("complexity: medium (score 1: questions=3)")
    d = _decide(pool_dict, text, signals={"questions": {"threshold": 2, "weight": 4}})
    assert d.reason.startswith("complexity: medium (score 4: questions=3)")
    d = _decide(pool_dict, "Why? How?", signals={"questions": {"threshold": 2}})
    assert "questions=2" in d.reason  # weight kept from the default
    d = _decide(pool_dict, text, signals={"questions": {"weight": 0}})
    assert "(score 0: no signals)" in d.reason  # weight 0 switches a signal off


def test_configured_keywords(pool_dict: dict[str, Any]) -> None:
    d = _decide(pool_dict, "Write the threat model for the ingest path", keywords=["threat model"])
    assert "(score 2: keyword:threat model)" in d.reason
    d = _decide(pool_dict, "Design the ingest path", keywords=["threat model"])
    assert "no signals" in d.reason  # the defaults were replaced
    d = _decide(pool_dict, "Design the ingest: audit it", extra_keywords=["audit"])
    assert "keyword:design, keyword:audit" in d.reason  # added to the defaults
    d = _decide(pool_dict, "Just tidy the list", extra_low_keywords=["tidy"])
    assert "low-keyword:tidy" in d.reason
    d = _decide(pool_dict, "Design it", keyword_weight=5)
    assert d.reason.startswith("complexity: high (score 5: keyword:design)")


@pytest.mark.parametrize(
    ("text", "hit"),
    [
        ("DESIGN the cache", True),
        ("design, then build", True),
        ("(design)", True),
        ("a re-design of it", True),  # hyphen is a word break
        ("designs and designer", False),
        ("the planning doc", False),
        ("predesign", False),
        ("Le design du cache — « design »", True),  # non-ASCII text
        ("**Design**: the cache", True),
        ("“design” it", True),
        ("see design.md", False),  # a dot inside a word joins it
    ],
)
def test_keywords_are_whole_words_case_insensitive(
    pool_dict: dict[str, Any], text: str, hit: bool
) -> None:
    assert ("keyword:design" in _decide(pool_dict, text).reason) is hit


def test_keyword_count_is_capped(pool_dict: dict[str, Any]) -> None:
    text = "analyze, design, compare, refactor, optimize"
    d = _decide(pool_dict, text)
    assert "(score 6: keyword:analyze, keyword:design, keyword:compare)" in d.reason
    d = _decide(pool_dict, text, max_keywords=1)
    assert "(score 2: keyword:analyze)" in d.reason


def test_keywords_are_looked_for_in_the_head_and_tail_only(pool_dict: dict[str, Any]) -> None:
    filler = "plain words here " * 200  # 3400 chars
    assert "keyword:design" not in _decide(pool_dict, filler + " design " + filler).reason
    assert "keyword:design" in _decide(pool_dict, filler + " design").reason
    assert "keyword:design" in _decide(pool_dict, "design " + filler).reason
    d = _decide(pool_dict, filler + " design " + filler, scan_chars=0)
    assert "keyword:design" in d.reason


def test_only_the_last_user_message_is_scored(pool_dict: dict[str, Any]) -> None:
    policy = _policy(pool_dict)
    earlier = (
        Message.system("You design and architect systems."),
        Message.user("Design the architecture and compare options"),
        Message.assistant("Here is a design."),
    )
    d = policy.decide(_ctx("thanks, looks fine", *earlier))
    assert "no signals" in d.reason
    assert "no signals" in policy.decide(RequestContext()).reason  # no messages at all


def test_conversation_length_signal(pool_dict: dict[str, Any]) -> None:
    long_history = (Message.user(PARAGRAPH * 300), Message.assistant("ok"))
    policy = _policy(pool_dict, signals={"conversation_tokens": {"threshold": 5000, "weight": 3}})
    d = policy.decide(_ctx("and now?", *long_history))
    assert "(score 3: conversation_tokens~5703)" in d.reason
    policy = _policy(pool_dict, signals={"conversation_tokens": {"weight": 0}})
    assert "no signals" in policy.decide(_ctx("and now?", *long_history)).reason


def test_tiers_and_models_per_level(pool_dict: dict[str, Any]) -> None:
    d = _decide(pool_dict, "hello", tiers={"low": "standard"})
    assert d.reason == "complexity: low (score 0: no signals) -> standard -> sonnet"
    d = _decide(pool_dict, "hello", models={"low": "haiku"})
    assert d.reason == "complexity: low (score 0: no signals) -> haiku"
    assert d.models == ("haiku",)


def test_named_model_unavailable_uses_its_tier(pool_dict: dict[str, Any]) -> None:
    policy = _policy(pool_dict, models={"low": "haiku"})
    d = policy.decide(_ctx("hello"), PoolHealth(frozenset({"haiku"})))
    assert d.models == ("nano",)
    assert d.reason.endswith("-> efficient -> nano (haiku unavailable; cheapest in efficient)")


def test_within_tier_and_fallback(pool_dict: dict[str, Any]) -> None:
    d = _decide(pool_dict, "hello", prefer=["haiku"])
    assert d.models == ("haiku",)
    d = _decide(pool_dict, "hello", fallback=True)
    assert (d.models, d.strategy) == (("nano", "haiku"), "fallback")
    d = _decide(pool_dict, "hello", fallback=True, models={"low": "haiku"})
    assert (d.models, d.strategy) == (("haiku", "nano"), "fallback")


def test_score_is_separate_from_the_decision(settings: Settings) -> None:
    policy = ComplexityPolicy("cx", settings, medium=1, high=2)
    verdict = policy.score(_ctx("Design it"))
    assert (verdict.level, verdict.score, verdict.fired) == ("high", 2, ("keyword:design",))


def test_code_fences_count_as_str_count() -> None:
    import random

    from turnout.policies.complexity import code_fences

    rng = random.Random(3)
    for _ in range(2000):
        text = "".join(rng.choice("``` `x\n’é") for _ in range(rng.randint(0, 60)))
        assert code_fences(text) == text.count("```"), text


def test_text_beyond_ascii_reads_as_ascii_does(pool_dict: dict[str, Any]) -> None:
    typeset = "We should “design” the cache — and weigh the trade‑offs’ costs… naïvely?"
    plain = 'We should "design" the cache - and weigh the trade-offs\' costs... naively?'
    assert "keyword:design" in _decide(pool_dict, typeset).reason
    assert _decide(pool_dict, plain).reason.replace("naively", "") == _decide(
        pool_dict, typeset
    ).reason.replace("naïvely", "")
    d = _decide(pool_dict, "Переведи и ANALYZE — «Trade-Offs» İ DESIGN")
    assert "(score 6: keyword:analyze, keyword:design, keyword:trade-offs)" in d.reason


def test_a_long_prompt_is_memoised_by_its_whole_text(pool_dict: dict[str, Any]) -> None:
    policy = _policy(pool_dict)
    filler = "plain words here " * 300
    one = policy.decide(_ctx("design " + filler + "x" + filler))
    two = policy.decide(_ctx("design " + filler + "y\n" * 40 + filler[80:]))
    assert "lines=" not in one.reason
    assert "lines=41" in two.reason  # the same length and edges, another verdict
