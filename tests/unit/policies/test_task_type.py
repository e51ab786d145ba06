"""``kind: task_type``: detection from realistic prompts; model, system prompt, temperature."""

from __future__ import annotations

from typing import Any

import pytest

from turnout.config import Settings, settings_from_dict
from turnout.policies import PoolHealth, RequestContext, build_policy
from turnout.policies.task_type import TaskTypePolicy
from turnout.types import Decision, Message

TYPES: dict[str, Any] = {
    "code": {"model": "sonnet", "system": "You are a careful engineer.", "temperature": 0.2},
    "translation": {"model": "nano", "temperature": 0.3},
    "creative": {"tier": "frontier", "temperature": 0.9},
    "extraction": {"model": "haiku", "system": "Answer with JSON only.", "temperature": 0},
    "classification": {"model": "nano", "system": "Answer with one label."},
    "math": {"tier": "standard", "temperature": 0},
    "analysis": {"model": "opus"},
}


def _policy(pool_dict: dict[str, Any], **options: Any) -> Any:
    options.setdefault("types", TYPES)
    pool_dict["policies"]["tt"] = {"kind": "task_type", **options}
    return build_policy("tt", settings_from_dict(pool_dict))


def _ctx(text: str, *earlier: Message) -> RequestContext:
    return RequestContext(messages=(*earlier, Message.user(text)))


def _decide(pool_dict: dict[str, Any], text: str, **options: Any) -> Decision:
    d: Decision = _policy(pool_dict, **options).decide(_ctx(text))
    return d


PROMPTS = [
    ("code", "Write a Python function that parses ISO 8601 dates and returns a datetime."),
    ("code", "Here is my code:\n```js\nconst x = await fetch(url)\n```\nWhy does it hang?"),
    ("code", "Traceback (most recent call last):\n  File \"app.py\", line 3\nKeyError: 'id'"),
    ("code", "Refactor this class so the retry logic lives in one method."),
    ("code", "Can you fix the bug where the SQL query returns duplicate rows?"),
    ("translation", "Translate the following paragraph into German: The meeting moved to Friday."),
    ("translation", "How do you say 'where is the station' in Japanese?"),
    ("translation", "Please translate to French: 'Your order has shipped.'"),
    ("math", "Solve for x: 3x + 7 = 22"),
    ("math", "What is 17 * 23?"),
    ("math", "Find the derivative of sin(x) * x^2."),
    ("math", "If a die is rolled twice, what is the probability of two sixes?"),
    (
        "extraction",
        "Extract every email address and phone number from the text below.\n\nCall 555-0100",
    ),
    (
        "extraction",
        "Pull out the invoice number, date and total from this text: INV-7, 2024-03-01, $90",
    ),
    (
        "extraction",
        "List all the company names mentioned in the following text: Acme and Globex met.",
    ),
    (
        "classification",
        "Classify this support ticket as billing, bug or feature request: I was charged twice.",
    ),
    ("classification", "Is this review positive or negative? 'The food was cold.'"),
    ("classification", "Categorize these headlines by topic: sports, politics, tech."),
    ("creative", "Write a short poem about the ocean at dawn."),
    ("creative", "Tell me a bedtime story about a dragon who is afraid of the dark."),
    ("creative", "Come up with a catchy slogan for a bike shop."),
    (
        "analysis",
        "Compare PostgreSQL and MySQL for a write-heavy workload and analyze the trade-offs.",
    ),
    ("analysis", "What are the pros and cons of moving our monolith to microservices?"),
    ("analysis", "Evaluate the risks of this launch plan and assess its impact on support."),
    ("chat", "Hi! How are you today?"),
    ("chat", "Thanks, that helped a lot."),
    ("chat", "What's a good name for a golden retriever puppy?"),
]


@pytest.mark.parametrize(("task", "text"), PROMPTS)
def test_detects_each_type(pool_dict: dict[str, Any], task: str, text: str) -> None:
    d = _decide(pool_dict, text)
    assert d.reason.startswith(f"task_type: {task} ("), d.reason


def test_translation_reason_model_and_temperature(pool_dict: dict[str, Any]) -> None:
    d = _decide(pool_dict, "Translate the following paragraph into German: Guten Morgen.")
    assert d.reason == (
        "task_type: translation (matched 'translate', 'into german') -> nano, temperature 0.3"
    )
    assert (d.models, d.temperature, d.system_prompt) == (("nano",), 0.3, None)


def test_system_prompt_and_temperature_are_carried(pool_dict: dict[str, Any]) -> None:
    d = _decide(pool_dict, "Write a Python function that adds two numbers.")
    assert d.models == ("sonnet",)
    assert d.system_prompt == "You are a careful engineer."
    assert d.temperature == 0.2
    assert d.reason.endswith("-> sonnet, temperature 0.2, with system prompt")
    d = _decide(pool_dict, "Extract the dates from this text: 1 May and 2 June")
    assert (d.models, d.system_prompt, d.temperature) == (("haiku",), "Answer with JSON only.", 0)


def test_a_tier_target_is_chosen_inside_the_tier(pool_dict: dict[str, Any]) -> None:
    d = _decide(pool_dict, "Write a haiku about autumn")
    assert d.models == ("opus",)
    assert d.reason == "task_type: creative (matched 'haiku') -> frontier -> opus, temperature 0.9"


def test_default_for_chat_and_unconfigured_types(pool_dict: dict[str, Any]) -> None:
    default = {"model": "haiku", "system": "Be brief.", "temperature": 0.5}
    d = _decide(pool_dict, "Hello there", default=default)
    assert d.reason == (
        "task_type: chat (no clear signal) -> default -> haiku, temperature 0.5, with system prompt"
    )
    assert (d.models, d.system_prompt, d.temperature) == (("haiku",), "Be brief.", 0.5)
    d = _decide(pool_dict, "Solve 2x = 10", types={"code": {"model": "opus"}}, default=default)
    assert d.reason.startswith("task_type: math (matched 'solve', arithmetic '2x = 10') -> default")
    assert d.models == ("haiku",)


def test_default_default_is_the_standard_tier(pool_dict: dict[str, Any]) -> None:
    d = _decide(pool_dict, "Hello there", types={})
    assert d.reason == "task_type: chat (no clear signal) -> default -> standard -> sonnet"
    assert (d.system_prompt, d.temperature) == (None, None)


def test_type_fields_fall_back_to_default_field_by_field(pool_dict: dict[str, Any]) -> None:
    d = _decide(
        pool_dict,
        "Write a poem about rain",
        types={"creative": {"temperature": 1.1}},
        default={"model": "haiku", "system": "Be kind."},
    )
    assert (d.models, d.temperature, d.system_prompt) == (("haiku",), 1.1, "Be kind.")
    assert "-> default" not in d.reason  # creative is configured


def test_extra_keywords_and_min_score(pool_dict: dict[str, Any]) -> None:
    text = "Write a villanelle about the sea"
    assert _decide(pool_dict, text).reason.startswith("task_type: chat")
    d = _decide(pool_dict, text, keywords={"creative": ["villanelle"]})
    assert d.reason.startswith("task_type: creative (matched 'villanelle')")
    weak = "Some python and json"  # weak signals only: code 1, extraction 1
    assert _decide(pool_dict, weak).reason.startswith("task_type: chat")
    assert _decide(pool_dict, weak, min_score=1).reason.startswith("task_type: code")


def test_only_the_last_user_message_is_read(pool_dict: dict[str, Any]) -> None:
    policy = _policy(pool_dict)
    earlier = (Message.system("Translate everything."), Message.user("Write a poem"))
    assert policy.decide(_ctx("Thanks!", *earlier)).reason.startswith("task_type: chat")
    assert policy.decide(RequestContext()).reason.startswith("task_type: chat")


def test_named_model_unavailable_uses_its_tier(pool_dict: dict[str, Any]) -> None:
    policy = _policy(pool_dict)
    d = policy.decide(_ctx("Translate to Spanish: hello"), PoolHealth(frozenset({"nano"})))
    assert d.models == ("haiku",)
    assert d.temperature == 0.3
    assert "-> efficient -> haiku (nano unavailable; cheapest in efficient)" in d.reason


def test_fallback_chain_keeps_the_system_prompt(pool_dict: dict[str, Any]) -> None:
    d = _decide(pool_dict, "Classify: spam or not? 'WIN A PRIZE'", fallback=True)
    assert (d.models, d.strategy) == (("nano", "haiku"), "fallback")
    assert d.system_prompt == "Answer with one label."


def test_detection_is_separate_from_the_decision(settings: Settings) -> None:
    policy = TaskTypePolicy("tt", settings)
    found = policy.detect(_ctx("Translate to Spanish: good morning"))
    assert (found.task, found.score) == ("translation", 4)
    assert found.matched == ("'translate'", "'to spanish'")


def test_long_prompts_are_scanned_in_head_and_tail(pool_dict: dict[str, Any]) -> None:
    filler = "The report covers the quarter in some detail. " * 100
    assert _decide(pool_dict, filler + "Translate the above into Italian.").reason.startswith(
        "task_type: translation"
    )
    assert _decide(pool_dict, filler + " Write a poem. " + filler).reason.startswith(
        "task_type: chat"
    )


def test_structure_is_searched_from_where_it_can_start() -> None:
    """Skipping to the first possible start finds what a search from 0 finds."""
    import random

    from turnout.policies.task_type import (
        _ARITHMETIC,
        _CODE_SYNTAX,
        _STRUCTURE_SCAN,
        _structure_starts,
    )

    pieces = [*"0123456789 \nab-+*/^=()};<#!&|?.,×÷é٣", "==", "=>", "();", "</", "#include"]
    pieces += ["!=", "&&", "||", " - ", " / ", "2 ", "3x", "x ", "\u0660", "\u2003", "\ud800"]
    rng = random.Random(5)
    for _ in range(3000):
        text = "".join(rng.choice(pieces) for _ in range(rng.choice([5, 60, 400])))
        code_at, arithmetic_at = _structure_starts(text)
        for pattern, at in ((_CODE_SYNTAX, code_at), (_ARITHMETIC, arithmetic_at)):
            full = pattern.search(text, 0, _STRUCTURE_SCAN)
            skipped = pattern.search(text, at, _STRUCTURE_SCAN) if at >= 0 else None
            assert (full and full.span()) == (skipped and skipped.span()), text


FILLER = "The report covers the quarter in some detail. " * 4  # past the regex prefilter's cut


@pytest.mark.parametrize(
    ("task", "text", "signal"),
    [
        ("math", FILLER + "What is 17 * 23?", "arithmetic '17 * 23'"),
        ("code", FILLER + "In python: if (a == b) {}", "code syntax '=='"),
        ("chat", FILLER + "It is dated 2024-03-01 - final (v2).", "no clear signal"),
        (
            "translation",
            "Bitte: “Translate the following paragraph into German” — ok?",
            "into german",
        ),
        ("code", "Schreib „einen Test“ — write a Python function that adds 2 numbers", "function"),
    ],
)
def test_long_and_typeset_prompts(
    pool_dict: dict[str, Any], task: str, text: str, signal: str
) -> None:
    reason = _decide(pool_dict, text).reason
    assert reason.startswith(f"task_type: {task} ("), reason
    assert signal in reason
