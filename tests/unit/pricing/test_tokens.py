import json

from turnout.pricing.tokens import (
    estimate_prompt_tokens,
    estimate_tokens,
    estimated_usage,
    request_prompt_tokens,
)
from turnout.types import ChatRequest, Message, ToolCall

TOOL = {
    "type": "function",
    "function": {
        "name": "lookup",
        "description": "Look an order up by its id. " * 20,
        "parameters": {"type": "object", "properties": {"id": {"type": "string"}}},
    },
}


def test_about_four_characters_a_token() -> None:
    assert estimate_tokens("") == 0
    assert estimate_tokens("a") == 1
    assert estimate_tokens("x" * 400) == 100


def test_a_prompt_counts_each_message_framing_and_the_reply_priming() -> None:
    # 376 characters + 12 framing + 12 priming = 400 characters: 100 tokens
    assert estimate_prompt_tokens([Message.user("x" * 376)]) == 100
    # a second message adds its text and its framing
    two = [Message.system("y" * 88), Message.user("x" * 376)]
    assert estimate_prompt_tokens(two) == 125
    assert estimate_prompt_tokens([]) == 0


def test_tools_are_counted_as_the_json_sent() -> None:
    plain = estimate_prompt_tokens([Message.user("hi")])
    sent = len(json.dumps(TOOL, separators=(",", ":")))
    with_tools = estimate_prompt_tokens([Message.user("hi")], [TOOL, TOOL])
    assert with_tools - plain >= 2 * sent // 4 - 1
    request = ChatRequest(messages=(Message.user("hi"),), tools=(TOOL,))
    assert request_prompt_tokens(request) == estimate_prompt_tokens([Message.user("hi")], [TOOL])


def test_tool_calls_and_their_results_are_counted() -> None:
    arguments = json.dumps({"query": "z" * 400})
    call = Message("assistant", None, tool_calls=(ToolCall("call_1", "search", arguments),))
    result = Message("tool", "r" * 40, tool_call_id="call_1")
    bare = estimate_prompt_tokens([Message.user("hi")])
    more = estimate_prompt_tokens([Message.user("hi"), call, result])
    assert more - bare >= (len(arguments) + 40) // 4


def test_estimated_usage_is_marked() -> None:
    usage = estimated_usage([Message.user("x" * 376)], "y" * 40)
    assert (usage.input_tokens, usage.output_tokens, usage.estimated) == (100, 10, True)
