"""The fake OpenAI server itself: fault specs, scripting, wire format, thread and CLI use."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import urllib.error
import urllib.request
from typing import Any

import aiohttp
import pytest

from turnout.testing import FakeOpenAI, Fault, echo_last_user

CHAT = {"model": "m", "messages": [{"role": "user", "content": "ping"}]}


async def post(
    server: FakeOpenAI, body: dict[str, Any], headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    async with (
        aiohttp.ClientSession() as session,
        session.post(server.base_url + "/chat/completions", json=body, headers=headers) as r,
    ):
        return r.status, dict(r.headers), await r.read()


def sse_payloads(raw: bytes) -> list[str]:
    return [
        line.removeprefix("data: ")
        for line in raw.decode().split("\n\n")
        if line.startswith("data: ")
    ]


# -- specs -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("ok", Fault.ok()),
        ("503", Fault.error(503)),
        ("401:echo", Fault.error(401, echo_auth=True)),
        ("429", Fault.rate_limited()),
        ("429:retry-after=2", Fault.rate_limited(retry_after="2")),
        ("429:retry-after-ms=150", Fault.rate_limited(retry_after_ms=150)),
        ("503:retry-after=2", Fault.error(503, headers=(("Retry-After", "2"),))),
        ("529:retry-after-ms=150", Fault.error(529, headers=(("retry-after-ms", "150"),))),
        ("context_length", Fault.context_length()),
        ("content_filter", Fault.content_filter()),
        ("content_filter_error", Fault.content_policy_error("content_filter")),
        ("content_policy", Fault.content_policy_error()),
        ("stall:1.5", Fault.stall(1.5)),
        ("stall:1.5:after=2", Fault.stall(1.5, after_chunks=2)),
        ("malformed_json", Fault.malformed_json()),
        ("malformed_sse:after=3", Fault.malformed_sse(after_chunks=3)),
        ("cut:after=4", Fault.cut(after_chunks=4)),
        ("tool_calls", Fault.with_tool_calls()),
    ],
)
def test_parse_specs(spec: str, expected: Fault) -> None:
    assert Fault.parse(spec) == expected


@pytest.mark.parametrize("spec", ["explode", "stall:soon", "cut:after=x"])
def test_bad_specs_say_what_is_known(spec: str) -> None:
    with pytest.raises(ValueError, match="bad fault spec"):
        Fault.parse(spec)


# -- behaviour -------------------------------------------------------------------------


async def test_answer_usage_and_recorded_request() -> None:
    async with FakeOpenAI(reply="four words right here", cached_tokens=1) as server:
        status, _, raw = await post(server, CHAT, {"Authorization": "Bearer sk-x"})
        assert status == 200
        body = json.loads(raw)
        assert body["object"] == "chat.completion"
        assert body["choices"][0]["message"]["content"] == "four words right here"
        assert body["choices"][0]["finish_reason"] == "stop"
        assert body["usage"] == {
            "prompt_tokens": 1,
            "completion_tokens": 6,
            "total_tokens": 7,
            "prompt_tokens_details": {"cached_tokens": 1},
        }
        [seen] = server.requests
        assert seen.authorization == "Bearer sk-x"
        assert seen.model == "m"
        assert not seen.stream


async def test_script_runs_in_order_then_falls_back_to_default() -> None:
    async with FakeOpenAI() as server:
        server.script(Fault.error(503), "503", Fault.rate_limited(retry_after=1))
        assert server.pending == 3
        statuses = [(await post(server, CHAT))[0] for _ in range(4)]
        assert statuses == [503, 503, 429, 200]
        assert server.pending == 0


async def test_header_and_model_name_override_the_script() -> None:
    async with FakeOpenAI() as server:
        server.script("500")
        status, headers, _ = await post(server, CHAT, {"x-fake-fault": "429:retry-after=4"})
        assert (status, headers["Retry-After"]) == (429, "4")
        status, _, raw = await post(server, {**CHAT, "model": "fault:context_length"})
        assert status == 400
        assert json.loads(raw)["error"]["code"] == "context_length_exceeded"
        assert (await post(server, CHAT))[0] == 500  # the script was left alone


async def test_echo_reply_and_default_fault() -> None:
    async with FakeOpenAI(reply=echo_last_user, default=Fault.error(502)) as server:
        status, headers, raw = await post(server, CHAT)
        assert status == 502
        assert headers["Content-Type"].startswith("text/html")
        server.default = Fault.ok()
        _, _, raw = await post(server, CHAT)
        assert json.loads(raw)["choices"][0]["message"]["content"] == "ping"


async def test_401_echo_reflects_the_authorization_header() -> None:
    async with FakeOpenAI() as server:
        server.script("401:echo")
        _, _, raw = await post(server, CHAT, {"Authorization": "Bearer sk-reflected-123"})
        assert "sk-reflected-123" in json.loads(raw)["error"]["message"]


async def test_stream_with_and_without_usage() -> None:
    async with FakeOpenAI(reply="a b") as server:
        body = {**CHAT, "stream": True, "stream_options": {"include_usage": True}}
        status, headers, raw = await post(server, body)
        assert status == 200
        assert headers["Content-Type"] == "text/event-stream"
        payloads = sse_payloads(raw)
        assert payloads[-1] == "[DONE]"
        chunks = [json.loads(p) for p in payloads[:-1]]
        text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"])
        assert text == "a b"
        assert chunks[-2]["choices"][0]["finish_reason"] == "stop"
        assert chunks[-1]["choices"] == []
        assert chunks[-1]["usage"]["completion_tokens"] == 1

        _, _, raw = await post(server, {**CHAT, "stream": True})
        assert all("usage" not in json.loads(p) for p in sse_payloads(raw)[:-1])


async def test_streamed_tool_calls_use_the_offered_tool() -> None:
    tool = {"type": "function", "function": {"name": "search", "parameters": {}}}
    async with FakeOpenAI() as server:
        server.script("tool_calls")
        _, _, raw = await post(server, {**CHAT, "stream": True, "tools": [tool]})
        chunks = [json.loads(p) for p in sse_payloads(raw)[:-1]]
        calls = [tc for c in chunks for tc in c["choices"][0]["delta"].get("tool_calls", [])]
        assert calls[0]["function"]["name"] == "search"
        assert "".join(c["function"]["arguments"] for c in calls) == '{"query": "fake"}'
        assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"


async def test_malformed_bodies() -> None:
    async with FakeOpenAI() as server:
        server.script("malformed_json", Fault.malformed_sse(after_chunks=1))
        _, _, raw = await post(server, CHAT)
        with pytest.raises(json.JSONDecodeError):
            json.loads(raw)
        _, _, raw = await post(server, {**CHAT, "stream": True})
        payloads = sse_payloads(raw)
        json.loads(payloads[0])
        with pytest.raises(json.JSONDecodeError):
            json.loads(payloads[1])


async def test_bad_request_bodies_get_a_400() -> None:
    async with FakeOpenAI() as server:
        assert (await post(server, {"model": "m"}))[0] == 400
        status, _, raw = await post(server, CHAT, {"x-fake-fault": "nonsense"})
        assert status == 400
        assert "unknown fault" in json.loads(raw)["error"]["message"]


async def wait_for_hangups(server: FakeOpenAI, n: int) -> None:
    for _ in range(200):  # 2 s at most
        if server.hangups >= n:
            return
        await asyncio.sleep(0.01)


@pytest.mark.parametrize("spec", ["stall:5", "stall:5:after=2"])
async def test_a_client_hanging_up_is_counted(spec: str) -> None:
    async with FakeOpenAI() as server, aiohttp.ClientSession() as session:
        await post(server, CHAT)  # answered in full: not a hang-up
        server.script(spec)
        url = server.base_url + "/chat/completions"
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.1), session.post(url, json={**CHAT, "stream": True}) as r:
                await r.read()
        await wait_for_hangups(server, 1)  # long before the 5 s stall ends
        assert server.hangups == 1
        server.reset()
        assert server.hangups == 0


# -- from sync code and from the command line ------------------------------------------


def sync_post(url: str, body: dict[str, Any]) -> tuple[int, bytes]:
    request = urllib.request.Request(
        url + "/chat/completions",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, exc.read()


def test_thread_mode_serves_sync_code() -> None:
    with FakeOpenAI.start_in_thread(reply="threaded") as handle:
        handle.script("503")
        assert sync_post(handle.base_url, CHAT)[0] == 503
        status, raw = sync_post(handle.base_url, CHAT)
        assert status == 200
        assert json.loads(raw)["choices"][0]["message"]["content"] == "threaded"
        assert len(handle.requests) == 2


def test_thread_mode_reports_a_port_in_use() -> None:
    with (
        FakeOpenAI.start_in_thread() as first,
        pytest.raises(OSError, match="address already in use"),
    ):
        FakeOpenAI.start_in_thread(port=first.server.port)


def test_command_line_server() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "turnout.testing.fake_openai", "--port", "0", "--reply", "cli"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().strip()
        assert line.startswith("listening on http://127.0.0.1:")
        status, raw = sync_post(line.removeprefix("listening on "), CHAT)
        assert status == 200
        assert json.loads(raw)["choices"][0]["message"]["content"] == "cli"
    finally:
        proc.terminate()
        _, stderr = proc.communicate(timeout=10)
    assert proc.returncode == 0
    assert "Warning" not in stderr
