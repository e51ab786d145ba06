"""The façade's ``admitted`` go-ahead (what the gateway passes while a key's limits are
checked in Redis): awaited once the policy has decided and before anything is traced,
looked up or sent; what it raises is the call's. ``allowed_models`` given as a function
is asked after it. Against the fake upstream on a real socket, with a real SQLite store."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from support.gateway_rig import KEY, KEY_ENV, gateway_settings
from turnout import Turnout
from turnout.errors import ModelNotAllowed
from turnout.testing import FakeOpenAI
from turnout.tracing.sqlite import SQLiteStore

HI = [{"role": "user", "content": "hi"}]


class Stop(Exception):
    pass


@pytest.fixture
async def upstream(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[FakeOpenAI]:
    monkeypatch.setenv(KEY_ENV, KEY)
    async with FakeOpenAI(reply="fine") as fake:
        yield fake


def runs(path: Path) -> int:
    with SQLiteStore(path) as store:
        return int(store.query("SELECT COUNT(*) FROM runs")[0][0])


async def test_a_go_ahead_that_raises_stops_the_call_before_anything_is_traced_or_sent(
    upstream: FakeOpenAI, tmp_path: Path
) -> None:
    asked: list[str] = []

    async def refused() -> None:
        asked.append("admitted")
        raise Stop

    db = tmp_path / "traces.db"
    async with Turnout(gateway_settings(upstream.base_url), store=str(db)) as t:
        with pytest.raises(Stop):
            await t.chat(HI, policy="cheap", admitted=refused)
        with pytest.raises(Stop):
            async for _ in t.stream(HI, policy="cheap", admitted=refused):
                pass
        assert t.writer is not None
        t.writer.flush()
    assert asked == ["admitted", "admitted"]
    assert upstream.requests == [] and runs(db) == 0


async def test_the_allowed_models_are_asked_once_the_go_ahead_is_done(
    upstream: FakeOpenAI, tmp_path: Path
) -> None:
    allowed: list[str] = []

    async def admitted() -> None:  # the key, re-read meanwhile, may use only "large"
        allowed.append("large")

    db = tmp_path / "traces.db"
    async with Turnout(gateway_settings(upstream.base_url), store=str(db)) as t:
        with pytest.raises(ModelNotAllowed):  # the policy's only choice is not the key's
            await t.chat(HI, policy="cheap", admitted=admitted, allowed_models=lambda: allowed)
        answer = await t.chat(HI, model="large", admitted=admitted, allowed_models=lambda: allowed)
        assert answer.ok and answer.model == "large"
        anyone = await t.chat(HI, policy="cheap", allowed_models=lambda: None)
        assert anyone.ok and anyone.model == "small"
    assert [r.model for r in upstream.requests] == ["large-1", "small-1"]
