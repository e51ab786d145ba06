"""Cache keys: normalization, what is cacheable, what changes the key."""

from __future__ import annotations

from types import MappingProxyType

import pytest

from turnout.execution.cache.keys import (
    exact_key,
    is_cacheable,
    normalize_messages,
    semantic_split,
    semantic_text,
)
from turnout.types import ChatRequest, Message, ToolCall


def req(*messages: Message, **kw: object) -> ChatRequest:
    kw.setdefault("model", "claude-haiku-4-5")
    kw.setdefault("temperature", 0)
    return ChatRequest(messages=messages or (Message.user("Is this a refund request?"),), **kw)  # type: ignore[arg-type]


def test_only_deterministic_requests_are_cacheable() -> None:
    assert is_cacheable(req(temperature=0))
    assert is_cacheable(req(temperature=0.0))
    assert not is_cacheable(req(temperature=0.7))
    assert not is_cacheable(req(temperature=None))  # provider default: sampled
    assert is_cacheable(req(temperature=0.7), force=True)
    assert not is_cacheable(ChatRequest(messages=(), temperature=0), force=True)


def test_key_is_stable_hex() -> None:
    k = exact_key(req())
    assert len(k) == 64
    assert int(k, 16) >= 0
    assert exact_key(req()) == k


def test_trailing_whitespace_does_not_change_the_key() -> None:
    a = req(Message.system("Be terse."), Message.user("Is this a refund?"))
    b = req(Message.system("Be terse.  \n"), Message.user("Is this a refund?\n\n"))
    assert exact_key(a) == exact_key(b)
    c = req(Message.system("Be terse."), Message.user("  Is this a refund?"))
    assert exact_key(a) != exact_key(c)  # leading whitespace is content


def test_int_and_float_zero_temperature_are_the_same() -> None:
    assert exact_key(req(temperature=0)) == exact_key(req(temperature=0.0))


@pytest.mark.parametrize(
    "change",
    [
        {"model": "gpt-4.1-nano"},
        {"max_tokens": 16},
        {"temperature": 0.2},
        {"top_p": 0.5},
        {"stop": ("\n",)},
        {"seed": 7},
        {"tools": ({"type": "function", "function": {"name": "lookup"}},)},
        {"tool_choice": "required"},
        {"response_format": {"type": "json_object"}},
        {"extra": {"frequency_penalty": 0.5}},
    ],
)
def test_every_answer_changing_parameter_changes_the_key(change: dict[str, object]) -> None:
    assert exact_key(req(**change)) != exact_key(req())


def test_roles_content_and_order_change_the_key() -> None:
    base = exact_key(req(Message.system("A"), Message.user("B")))
    assert exact_key(req(Message.user("A"), Message.user("B"))) != base
    assert exact_key(req(Message.system("A"), Message.user("C"))) != base
    assert exact_key(req(Message.user("B"), Message.system("A"))) != base


def test_stop_order_and_mapping_types_do_not_matter() -> None:
    a = req(stop=("a", "b"), response_format={"type": "json_object", "x": 1})
    b = req(stop=("b", "a"), response_format=MappingProxyType({"x": 1, "type": "json_object"}))
    assert exact_key(a) == exact_key(b)


def test_tool_call_ids_are_renumbered_and_arguments_canonical() -> None:
    def convo(call_id: str, args: str) -> ChatRequest:
        return req(
            Message.user("weather?"),
            Message("assistant", None, (ToolCall(call_id, "weather", args),)),
            Message("tool", "sunny", tool_call_id=call_id),
        )

    a = convo("call_abc", '{"city": "Paris", "unit": "C"}')
    b = convo("call_xyz", '{"unit":"C","city":"Paris"}')
    assert exact_key(a) == exact_key(b)
    assert exact_key(a) != exact_key(convo("call_abc", '{"city": "Lyon", "unit": "C"}'))
    norm = normalize_messages(a.messages)
    assert norm[1]["tool_calls"][0]["id"] == norm[2]["tool_call_id"] == "call_0"
    # arguments that are not JSON are kept as text
    assert normalize_messages(convo("c", "not json").messages)[1]["tool_calls"][0]["arguments"] == {
        "text": "not json"
    }


def test_tool_call_name_changes_the_key() -> None:
    a = req(Message("assistant", None, (ToolCall("1", "weather", "{}"),)))
    b = req(Message("assistant", None, (ToolCall("1", "news", "{}"),)))
    assert exact_key(a) != exact_key(b)


def test_unserializable_parameter_is_a_clear_error() -> None:
    with pytest.raises(TypeError, match="cannot serialize object"):
        exact_key(req(extra={"x": object()}))


def test_semantic_split_scopes_by_model_params_and_context() -> None:
    q = Message.user("How do I reset my password?")
    split = semantic_split(req(Message.system("Support bot."), q))
    assert split is not None
    scope, text = split
    assert text == "How do I reset my password?"
    same = semantic_split(req(Message.system("Support bot."), Message.user("Forgot my password")))
    assert same is not None
    assert same[0] == scope  # a different question, same scope
    for other in (
        req(Message.system("Support bot."), q, model="gpt-4.1-nano"),
        req(Message.system("Support bot."), q, max_tokens=5),
        req(Message.system("Pirate bot."), q),
        req(Message.system("Support bot."), Message.user("hi"), Message.assistant("hello"), q),
    ):
        split_other = semantic_split(other)
        assert split_other is not None
        assert split_other[0] != scope


def test_semantic_split_without_context_keeps_only_system_messages() -> None:
    q = Message.user("How do I reset my password?")
    a = semantic_split(req(Message.system("S"), q), context=False)
    b = semantic_split(
        req(Message.system("S"), Message.user("hi"), Message.assistant("hello"), q), context=False
    )
    assert a is not None
    assert b is not None
    assert a[0] == b[0]


def test_semantic_split_needs_a_last_user_message_with_text() -> None:
    assert semantic_split(req(Message.user("q"), Message.assistant("a"))) is None
    assert semantic_split(req(Message.user("   "))) is None
    assert semantic_split(req(Message("tool", "42", tool_call_id="1"))) is None


def test_semantic_text_collapses_whitespace() -> None:
    assert semantic_text("  How   do I\n\treset it?  ") == "How do I reset it?"
