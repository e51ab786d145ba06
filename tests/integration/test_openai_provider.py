"""OpenAICompatProvider against the fake OpenAI server on a real loopback socket."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator

import pytest

from turnout.config.settings import ModelSpec, ProviderConfig, Timeouts
from turnout.errors import (
    AuthenticationError,
    BadRequest,
    ContentFiltered,
    ContextLengthExceeded,
    MalformedResponse,
    ProviderConnectionError,
    ProviderError,
    ProviderTimeout,
    RateLimited,
    ServerError,
)
from turnout.pricing.cost import Price
from turnout.providers.openai_compat import OpenAICompatProvider
from turnout.providers.registry import build_provider
from turnout.testing import FakeOpenAI, Fault, echo_last_user
from turnout.types import (
    ChatRequest,
    ChatResponse,
    Message,
    StreamEnd,
    StreamEvent,
    TextDelta,
    Tier,
    ToolCall,
    ToolCallDelta,
    Usage,
)

KEY = "sk-test-0123456789abcdefSECRET"
KEY_ENV = "TURNOUT_TEST_OPENAI_KEY"
TIMEOUTS = Timeouts(connect=1.0, read=0.4, total=5.0)
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}


def ask(text: str = "Is this about a refund?", **kwargs: object) -> ChatRequest:
    return ChatRequest(messages=(Message.user(text),), model="gpt-fake", **kwargs)  # type: ignore[arg-type]


@pytest.fixture
async def server() -> AsyncIterator[FakeOpenAI]:
    async with FakeOpenAI(reply="The answer is yes.", cached_tokens=2) as fake:
        yield fake


@pytest.fixture
async def provider(
    server: FakeOpenAI, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[OpenAICompatProvider]:
    monkeypatch.setenv(KEY_ENV, KEY)
    p = OpenAICompatProvider(
        name="fake", base_url=server.base_url, api_key_env=KEY_ENV, timeouts=TIMEOUTS
    )
    yield p
    await p.aclose()


async def collect(p: OpenAICompatProvider, request: ChatRequest) -> list[StreamEvent]:
    return [event async for event in p.stream(request)]


async def call(p: OpenAICompatProvider, request: ChatRequest, *, streamed: bool) -> object:
    """One call, streamed to the end or not."""
    if streamed:
        return await collect(p, request)
    return await p.complete(request)


def assert_clean(exc: BaseException) -> None:
    """No API key in the message, the args or the repr of an error."""
    for text in (str(exc), repr(exc), repr(exc.args)):
        assert KEY not in text
        assert "0123456789abcdef" not in text


# -- success ---------------------------------------------------------------------------


@pytest.mark.parametrize("streamed", [False, True])
async def test_a_base_url_query_is_kept_after_the_endpoint_path(
    server: FakeOpenAI, monkeypatch: pytest.MonkeyPatch, streamed: bool
) -> None:
    """Azure-style ``?api-version=``: the path goes under base_url's, the query after."""
    monkeypatch.setenv(KEY_ENV, KEY)
    base = server.base_url + "/?api-version=2024-10-21&tenant=a%20b"
    p = OpenAICompatProvider(name="azure", base_url=base, api_key_env=KEY_ENV,
                             timeouts=TIMEOUTS)  # fmt: skip
    try:
        await call(p, ask(), streamed=streamed)
    finally:
        await p.aclose()
    (seen,) = server.requests
    assert seen.path == "/v1/chat/completions"
    assert seen.query in (
        "api-version=2024-10-21&tenant=a+b",
        "api-version=2024-10-21&tenant=a%20b",
    )
    assert "api-version" not in repr(p)  # the query may hold a key: never shown


async def test_complete_returns_text_usage_and_sends_the_key(
    server: FakeOpenAI, provider: OpenAICompatProvider
) -> None:
    answer = await provider.complete(ask(max_tokens=20, temperature=0.0, seed=7))
    assert isinstance(answer, ChatResponse)
    assert answer.content == "The answer is yes."
    assert answer.finish_reason == "stop"
    assert answer.model == "gpt-fake"
    assert answer.usage == Usage(input_tokens=6, output_tokens=5, cached_input_tokens=2)
    assert answer.latency_s > 0
    assert answer.response_id is not None
    assert answer.response_id.startswith("chatcmpl-")
    [seen] = server.requests
    assert seen.authorization == f"Bearer {KEY}"
    assert seen.headers["content-type"] == "application/json"
    assert seen.headers["user-agent"].startswith("turnout/")
    assert seen.body["max_tokens"] == 20
    assert seen.body["temperature"] == 0.0
    assert seen.body["seed"] == 7
    assert "stream" not in seen.body


async def test_one_pooled_session_serves_many_concurrent_calls(
    server: FakeOpenAI, provider: OpenAICompatProvider
) -> None:
    server.reply = echo_last_user
    answers = await asyncio.gather(*(provider.complete(ask(f"q{i}")) for i in range(20)))
    assert [a.content for a in answers] == [f"q{i}" for i in range(20)]
    pool = provider._pool
    assert pool is not None
    opened = set(pool._open)
    assert 0 < len(opened) <= 20
    await provider.complete(ask())
    assert provider._pool is pool and pool._open == opened  # a kept-alive connection served it


async def test_stream_yields_deltas_then_usage(
    server: FakeOpenAI, provider: OpenAICompatProvider
) -> None:
    events = await collect(provider, ask())
    *deltas, end = events
    assert all(isinstance(d, TextDelta) for d in deltas)
    assert "".join(d.text for d in deltas if isinstance(d, TextDelta)) == "The answer is yes."
    assert isinstance(end, StreamEnd)
    assert end.finish_reason == "stop"
    assert end.usage == Usage(6, 5, 2)
    assert end.ttft_s is not None
    assert end.ttft_s > 0
    assert server.requests[0].body["stream_options"] == {"include_usage": True}


async def test_tool_calls_round_trip_without_streaming(
    server: FakeOpenAI, provider: OpenAICompatProvider
) -> None:
    server.script(Fault.with_tool_calls(("get_weather", '{"city": "Paris"}')))
    request = ask(tools=(WEATHER_TOOL,), tool_choice="auto", response_format={"type": "text"})
    answer = await provider.complete(request)
    assert answer.finish_reason == "tool_calls"
    assert answer.content is None
    [call] = answer.tool_calls
    assert (call.name, call.arguments) == ("get_weather", '{"city": "Paris"}')
    sent = server.requests[0].body
    assert sent["tools"] == [WEATHER_TOOL]
    assert sent["tool_choice"] == "auto"
    assert sent["response_format"] == {"type": "text"}

    follow_up = ChatRequest(
        messages=(
            Message.user("Weather in Paris?"),
            Message("assistant", None, tool_calls=(call,)),
            Message("tool", '{"temp": 21}', tool_call_id=call.id),
        ),
        model="gpt-fake",
        tools=(WEATHER_TOOL,),
    )
    await provider.complete(follow_up)
    messages = server.requests[1].body["messages"]
    assert messages[1] == {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "id": call.id,
                "type": "function",
                "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
            }
        ],
    }
    assert messages[2] == {"role": "tool", "content": '{"temp": 21}', "tool_call_id": call.id}


async def test_tool_calls_streamed_as_deltas(
    server: FakeOpenAI, provider: OpenAICompatProvider
) -> None:
    server.script("tool_calls")
    events = await collect(provider, ask(tools=(WEATHER_TOOL,)))
    calls = [e for e in events if isinstance(e, ToolCallDelta)]
    assert calls[0].name == "get_weather"
    assert calls[0].id is not None
    assert {c.index for c in calls} == {0}
    assert "".join(c.arguments for c in calls) == '{"query": "fake"}'
    end = events[-1]
    assert isinstance(end, StreamEnd)
    assert end.finish_reason == "tool_calls"
    assert end.usage.output_tokens > 0


async def test_scripted_503s_then_success(
    server: FakeOpenAI, provider: OpenAICompatProvider
) -> None:
    server.script(Fault.error(503), Fault.error(503))
    for _ in range(2):
        with pytest.raises(ServerError) as info:
            await provider.complete(ask())
        assert info.value.status == 503
        assert "overloaded" in str(info.value)
    assert (await provider.complete(ask())).content == "The answer is yes."


async def test_from_config_through_the_registry(
    server: FakeOpenAI, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(KEY_ENV, KEY)
    config = ProviderConfig(
        "gw",
        "openai",
        TIMEOUTS,
        {
            "base_url": server.base_url,
            "api_key_env": KEY_ENV,
            "headers": {"X-Team": "search"},
            "max_connections": 4,
        },
    )
    model = ModelSpec("cheap", "gw", "gpt-fake-mini", Tier.EFFICIENT, Price.of(0.1, 0.4))
    built = build_provider(config, [model])
    try:
        assert isinstance(built, OpenAICompatProvider)
        answer = await built.complete(ChatRequest(messages=(Message.user("hi"),)))
        assert answer.model == "gpt-fake-mini"
        assert server.requests[0].headers["x-team"] == "search"
        assert KEY not in repr(built)
    finally:
        await built.aclose()


# -- failures --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fault", "retry_after"),
    [
        (Fault.rate_limited(retry_after=2), 2.0),
        (Fault.rate_limited(), None),
        (Fault.rate_limited(retry_after_ms=150), 0.15),
    ],
)
async def test_rate_limited(
    server: FakeOpenAI, provider: OpenAICompatProvider, fault: Fault, retry_after: float | None
) -> None:
    server.script(fault)
    with pytest.raises(RateLimited) as info:
        await provider.complete(ask())
    assert info.value.retry_after == retry_after
    assert info.value.status == 429
    assert "HTTP 429" in str(info.value)
    assert info.value.retryable


@pytest.mark.parametrize("status", [500, 502, 503])
@pytest.mark.parametrize("streamed", [False, True])
async def test_server_errors(
    server: FakeOpenAI, provider: OpenAICompatProvider, status: int, streamed: bool
) -> None:
    server.script(Fault.error(status))
    with pytest.raises(ServerError) as info:
        await call(provider, ask(), streamed=streamed)
    assert info.value.status == status
    assert f"HTTP {status}" in str(info.value)
    if status == 502:
        assert "Bad Gateway" in str(info.value)
        assert "<" not in str(info.value)


async def test_401_that_echoes_the_key_never_leaks_it(
    server: FakeOpenAI, provider: OpenAICompatProvider
) -> None:
    server.script(Fault.error(401, echo_auth=True))
    with pytest.raises(AuthenticationError) as info:
        await provider.complete(ask())
    assert info.value.status == 401
    assert "Incorrect API key provided" in str(info.value)
    assert "[REDACTED]" in str(info.value)
    assert_clean(info.value)
    assert KEY not in repr(provider)


async def test_missing_key_env_var_is_an_auth_error_naming_the_variable(
    server: FakeOpenAI, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(KEY_ENV, raising=False)
    p = OpenAICompatProvider(name="fake", base_url=server.base_url, api_key_env=KEY_ENV)
    with pytest.raises(AuthenticationError, match=KEY_ENV):
        await p.complete(ask())
    with pytest.raises(AuthenticationError, match=KEY_ENV):
        await collect(p, ask())
    assert server.requests == []
    await p.aclose()


@pytest.mark.parametrize("streamed", [False, True])
async def test_stall_is_a_read_timeout(
    server: FakeOpenAI, provider: OpenAICompatProvider, streamed: bool
) -> None:
    server.script(Fault.stall(3.0))
    loop = asyncio.get_running_loop()
    start = loop.time()
    with pytest.raises(ProviderTimeout, match="read timeout"):
        await call(provider, ask(), streamed=streamed)
    assert loop.time() - start < 2.0


async def test_stall_in_the_middle_of_a_stream_is_a_read_timeout(
    server: FakeOpenAI, provider: OpenAICompatProvider
) -> None:
    server.script(Fault.stall(3.0, after_chunks=2))
    seen: list[StreamEvent] = []

    async def consume() -> None:
        async for event in provider.stream(ask()):
            seen.append(event)

    with pytest.raises(ProviderTimeout):
        await consume()
    assert seen
    assert isinstance(seen[0], TextDelta)


async def test_total_timeout(server: FakeOpenAI, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KEY_ENV, KEY)
    server.chunk_delay = 0.1
    p = OpenAICompatProvider(
        name="fake",
        base_url=server.base_url,
        api_key_env=KEY_ENV,
        timeouts=Timeouts(connect=1.0, read=1.0, total=0.3),
    )
    try:
        with pytest.raises(ProviderTimeout, match="total timeout"):
            await collect(p, ask("a long answer please"))
    finally:
        await p.aclose()


async def test_connection_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KEY_ENV, KEY)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    p = OpenAICompatProvider(
        name="closed",
        base_url=f"http://127.0.0.1:{port}/v1",
        api_key_env=KEY_ENV,
        timeouts=TIMEOUTS,
    )
    try:
        with pytest.raises(ProviderConnectionError, match="cannot connect") as info:
            await p.complete(ask())
        assert info.value.retryable
        assert_clean(info.value)
        with pytest.raises(ProviderConnectionError):
            await collect(p, ask())
    finally:
        await p.aclose()


async def test_malformed_json_body(server: FakeOpenAI, provider: OpenAICompatProvider) -> None:
    server.script("malformed_json")
    with pytest.raises(MalformedResponse, match="not valid JSON"):
        await provider.complete(ask())


async def test_malformed_sse_chunk(server: FakeOpenAI, provider: OpenAICompatProvider) -> None:
    server.script(Fault.malformed_sse(after_chunks=2))
    with pytest.raises(MalformedResponse, match="stream chunk is not valid JSON"):
        await collect(provider, ask())


@pytest.mark.parametrize("after", [0, 2, 6, 7])
async def test_stream_cut_midway_is_a_connection_error(
    server: FakeOpenAI, provider: OpenAICompatProvider, after: int
) -> None:
    # frames: role, 4 words, finish (5), usage (6), [DONE] (7)
    server.script(Fault.cut(after_chunks=after))
    with pytest.raises(ProviderConnectionError, match="closed before the answer was complete"):
        await collect(provider, ask())


async def test_stream_cut_after_done_is_still_an_answer(
    server: FakeOpenAI, provider: OpenAICompatProvider
) -> None:
    server.script(Fault.cut(after_chunks=99))
    *_, end = await collect(provider, ask())
    assert isinstance(end, StreamEnd)
    assert end.usage == Usage(6, 5, 2)


async def test_body_cut_midway_is_a_connection_error(
    server: FakeOpenAI, provider: OpenAICompatProvider
) -> None:
    server.script("cut")
    with pytest.raises(ProviderConnectionError):
        await provider.complete(ask())


@pytest.mark.parametrize("streamed", [False, True])
async def test_context_length_exceeded(
    server: FakeOpenAI, provider: OpenAICompatProvider, streamed: bool
) -> None:
    server.script(Fault.context_length())
    with pytest.raises(ContextLengthExceeded, match="maximum context length") as info:
        await call(provider, ask(), streamed=streamed)
    assert info.value.status == 400
    assert not info.value.retryable


@pytest.mark.parametrize(
    "fault",
    [
        Fault.content_filter(),
        Fault.content_policy_error("content_filter"),
        Fault.content_policy_error("content_policy_violation"),
    ],
)
@pytest.mark.parametrize("streamed", [False, True])
async def test_content_filtered(
    server: FakeOpenAI, provider: OpenAICompatProvider, fault: Fault, streamed: bool
) -> None:
    server.script(fault)
    with pytest.raises(ContentFiltered):
        await call(provider, ask(), streamed=streamed)


async def test_generic_400_is_a_bad_request(
    server: FakeOpenAI, provider: OpenAICompatProvider
) -> None:
    server.script(Fault.error(400))
    with pytest.raises(BadRequest) as info:
        await provider.complete(ask())
    assert info.value.status == 400
    assert not info.value.retryable


@pytest.mark.parametrize(
    "spec",
    [
        "401:echo",
        "429",
        "500",
        "502",
        "503",
        "400",
        "context_length",
        "content_policy",
        "malformed_json",
        "cut",
    ],
)
async def test_no_error_carries_the_key(
    server: FakeOpenAI, provider: OpenAICompatProvider, spec: str
) -> None:
    server.script(spec)
    with pytest.raises(ProviderError) as info:
        await provider.complete(ask(f"my key is {KEY}"))
    assert_clean(info.value)


async def test_aclose_then_reuse_opens_a_new_session(
    provider: OpenAICompatProvider,
) -> None:
    await provider.complete(ask())
    await provider.aclose()
    assert (await provider.complete(ask())).content == "The answer is yes."


async def test_assistant_and_tool_messages_are_sent_verbatim(
    server: FakeOpenAI, provider: OpenAICompatProvider
) -> None:
    request = ChatRequest(
        messages=(
            Message.system("Be brief."),
            Message.user("Look it up."),
            Message("assistant", "Calling.", tool_calls=(ToolCall("c1", "lookup", "{}"),)),
            Message("tool", "found", tool_call_id="c1", name="lookup"),
        ),
        model="gpt-fake",
        stop=("END",),
        extra={"user": "u-1", "max_completion_tokens": 9},
    )
    await provider.complete(request)
    body = server.requests[0].body
    assert [m["role"] for m in body["messages"]] == ["system", "user", "assistant", "tool"]
    assert body["messages"][2]["content"] == "Calling."
    assert body["messages"][3] == {
        "role": "tool",
        "content": "found",
        "tool_call_id": "c1",
        "name": "lookup",
    }
    assert body["stop"] == ["END"]
    assert body["user"] == "u-1"
    assert body["max_completion_tokens"] == 9


async def test_an_error_object_in_a_200_body_is_reported_as_such(
    server: FakeOpenAI, provider: OpenAICompatProvider
) -> None:
    server.script(Fault.error_in_200(code="502", message="upstream overloaded"))
    with pytest.raises(ServerError) as caught:
        await provider.complete(ask())
    exc = caught.value
    assert "HTTP 502" not in str(exc)
    assert "error in the body of an HTTP 200 answer from fake" in str(exc)
    assert exc.status == 200 and exc.provider_code == "502" and exc.retryable


async def test_an_error_event_mid_stream_is_reported_as_such(
    server: FakeOpenAI, provider: OpenAICompatProvider
) -> None:
    server.script(Fault.error_in_200(code="529", message="Overloaded", after_chunks=2))
    texts: list[str] = []

    async def read() -> None:
        async for event in provider.stream(ask()):
            if isinstance(event, TextDelta):
                texts.append(event.text)

    with pytest.raises(ServerError) as caught:
        await read()
    exc = caught.value
    assert texts  # the error came after some of the answer
    assert "HTTP 529" not in str(exc) and "error event in the stream from fake" in str(exc)
    assert exc.status is None and exc.provider_code == "529"
