"""``POST /turnout/v1/feedback`` records whether a gateway answer was good; ``turnout learn``
exports it as an outcome (gateway requests have no checks)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import openai
import pytest

from support.gateway_rig import KEY, KEY_ENV, gateway_settings, reply
from turnout.gateway.server import Gateway
from turnout.learn.outcomes import export_outcomes
from turnout.testing import FakeOpenAI
from turnout.tracing import open_store

USER = [{"role": "user", "content": "Which team handles refunds?"}]


@pytest.fixture(autouse=True)
def _key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KEY_ENV, KEY)


@pytest.fixture
async def gateway(tmp_path: Path) -> AsyncIterator[Gateway]:
    async with FakeOpenAI(reply=reply) as upstream:
        settings = gateway_settings(upstream.base_url)
        async with Gateway(settings, port=0, store=str(tmp_path / "traces.db")) as gw:
            yield gw


async def post(gw: Gateway, body: object) -> tuple[int, dict[str, object]]:
    url = gw.base_url.removesuffix("/v1") + "/turnout/v1/feedback"
    async with aiohttp.ClientSession() as s, s.post(url, json=body) as r:
        return r.status, await r.json()


async def test_feedback_becomes_an_outcome(gateway: Gateway, tmp_path: Path) -> None:
    async with openai.AsyncOpenAI(base_url=gateway.base_url, api_key="unused") as client:
        good = await client.chat.completions.with_raw_response.create(model="cheap", messages=USER)  # type: ignore[arg-type]
        bad = await client.chat.completions.with_raw_response.create(model="cheap", messages=USER)  # type: ignore[arg-type]
    good_id, bad_id = good.headers["x-request-id"], bad.headers["x-request-id"]
    status, body = await post(gateway, {"request_id": good_id, "passed": True, "by": "ana"})
    assert status == 200 and body["recorded"] is True
    assert (await post(gateway, {"request_id": bad_id, "score": 0.25}))[0] == 200
    store = open_store(str(tmp_path / "traces.db"))
    try:
        outcomes = {o.id: o for o in export_outcomes(store, since=0)}
    finally:
        store.close()
    assert outcomes[f"{good_id}:chat"].passed == 1.0
    assert outcomes[f"{bad_id}:chat"].passed == 0.25
    assert outcomes[f"{good_id}:chat"].model == "small"
    assert outcomes[f"{good_id}:chat"].text == USER[0]["content"]


@pytest.mark.parametrize(
    ("body", "status", "says"),
    [
        ({"passed": True}, 400, "request_id"),
        ({"request_id": "x", "passed": "yes"}, 400, "passed"),
        ({"request_id": "x", "score": True}, 400, "score"),
        ({"request_id": "x", "score": 1.5}, 400, "score"),
        ({"request_id": "x", "passed": True, "score": 1}, 400, "either"),
        ({"request_id": "no-such-run", "passed": True}, 404, "no-such-run"),
        ([1, 2], 400, "object"),
    ],
)
async def test_bad_feedback_is_refused_naming_the_field(
    gateway: Gateway, body: object, status: int, says: str
) -> None:
    got, reply_body = await post(gateway, body)
    assert got == status
    error = reply_body["error"]
    assert isinstance(error, dict) and says in str(error["message"])
