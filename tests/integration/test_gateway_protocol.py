"""A request whose head the gateway cannot read (a header past aiohttp's 8,190 bytes, a
malformed line), on a real socket: a 400 in OpenAI's error shape that never quotes
what was sent, and a log line without it; the connection closed, the gateway still
answering."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlsplit

import openai
import pytest

from support.gateway_rig import KEY, KEY_ENV, gateway_settings, reply
from turnout.gateway.server import Gateway
from turnout.testing import FakeOpenAI

SECRET = "tk-" + "s3cr3t" * 8


@pytest.fixture(autouse=True)
def _key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KEY_ENV, KEY)


@pytest.fixture
async def gateway(tmp_path: Path) -> AsyncIterator[Gateway]:
    async with FakeOpenAI(reply=reply) as upstream:
        settings = gateway_settings(upstream.base_url)
        async with Gateway(settings, port=0, store=str(tmp_path / "traces.db")) as gw:
            yield gw


async def raw(gw: Gateway, head: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send ``head`` as is; the status, headers and body of the answer."""
    url = urlsplit(gw.base_url)
    reader, writer = await asyncio.open_connection(url.hostname, url.port)
    writer.write(head)
    await writer.drain()
    answer = await asyncio.wait_for(reader.read(), 10)  # the connection is closed after
    writer.close()
    top, _, body = answer.partition(b"\r\n\r\n")
    status_line, *lines = top.decode("latin-1").split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines)}
    return int(status_line.split()[1]), headers, body


@pytest.mark.parametrize(
    "head",
    [
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
        + SECRET.encode()
        + b" " * 9000
        + b"\r\nContent-Length: 2\r\n\r\n{}",
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization Bearer "
        + SECRET.encode()
        + b"\r\nContent-Length: 2\r\n\r\n{}",
    ],
    ids=["header too long", "malformed header"],
)
async def test_an_unreadable_request_never_quotes_what_it_sent(
    gateway: Gateway, head: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    status, headers, body = await raw(gateway, head)
    assert status == 400 and headers["content-type"].startswith("application/json")
    error = json.loads(body)["error"]
    assert error["type"] == "invalid_request_error" and error["code"] == "bad_http_request"
    assert SECRET not in body.decode() and "s3cr3t" not in caplog.text
    assert "could not be read" in caplog.text or "Error handling request" in caplog.text
    async with openai.AsyncOpenAI(base_url=gateway.base_url, api_key="unused") as client:
        answer = await client.chat.completions.create(
            model="cheap", messages=[{"role": "user", "content": "hi"}]
        )
    assert answer.choices[0].message.content  # the gateway still answers
