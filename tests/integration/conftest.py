"""Integration fixtures: a fake OpenAI-compatible server on a real socket, and a
project directory with a turnout.yaml pointing at it."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from support.fault_rig import KEY, KEY_ENV, Rig, open_rig
from turnout.testing.fake_openai import FakeOpenAI
from turnout.testing.server_thread import ServerThread

API_KEY = "sk-test-SECRET-0123456789"


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Project:
    root: Path
    server: ServerThread

    @property
    def config(self) -> Path:
        return self.root / "turnout.yaml"

    @property
    def store(self) -> Path:
        return self.root / "traces.db"

    def write(self, name: str, text: str) -> Path:
        p = self.root / name
        p.write_text(text)
        return p


@pytest.fixture
def fake_server() -> Iterator[ServerThread]:
    with FakeOpenAI.start_in_thread(reply="risks, tests and rollback are covered") as handle:
        yield handle


@pytest.fixture
def project(tmp_path: Path, fake_server: ServerThread, monkeypatch: pytest.MonkeyPatch) -> Project:
    monkeypatch.setenv("FAKE_API_KEY", API_KEY)
    monkeypatch.chdir(tmp_path)
    dead = closed_port()
    proj = Project(tmp_path, fake_server)
    proj.write(
        "turnout.yaml",
        f"""
providers:
  hosted: {{kind: openai, base_url: "{fake_server.base_url}", api_key_env: FAKE_API_KEY,
            timeouts: {{connect: 1, read: 2, total: 5}}}}
  down:   {{kind: openai, base_url: "http://127.0.0.1:{dead}/v1", api_key_env: FAKE_API_KEY,
            timeouts: {{connect: 1, read: 1, total: 2}}}}
models:
  opus:  {{provider: hosted, id: claude-opus-4-8, tier: frontier, price: {{input: 5.00, output: 25.00, cached_input: 0.50}}}}
  haiku: {{provider: hosted, id: claude-haiku-4-5, tier: efficient, price_sheet: claude-haiku-4-5}}
  ghost: {{provider: down, id: ghost-1, tier: efficient, price: {{input: 1, output: 1}}}}
policies:
  all_frontier: {{kind: static, model: opus}}
  mixed: {{kind: per_step, default: opus, steps: {{implementer: haiku}}}}
  broken: {{kind: static, model: ghost}}
""",
    )
    proj.write(
        "workflow.yaml",
        """
name: csv-export
inputs: [task]
steps:
  - id: planner
    prompt: "Plan this change: {{ task }}. Reply as {\\"risks\\": []}"
    checks: [{contains_all: [risks, tests, rollback]}]
  - id: implementer
    inputs: [planner]
    prompt: "Implement this plan:\\n{{ planner }}"
    annotation: {scope: multi-file, domain: feature, ambiguity: medium}
  - id: words
    kind: code
    inputs: [implementer]
    run: "steps:count_words"
""",
    )
    proj.write(
        "steps.py", "def count_words(inputs):\n    return len(inputs['implementer'].split())\n"
    )
    return proj


@pytest.fixture
async def rig(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Rig]:
    """Two fake OpenAI-compatible servers and a dead port (see tests/support/fault_rig.py)."""
    monkeypatch.setenv(KEY_ENV, KEY)
    async with open_rig() as r:
        yield r


@pytest.fixture
async def client() -> AsyncIterator[Any]:
    """The real Redis on 127.0.0.1:6379 (tests skip, saying why, when it is not there)."""
    redis_asyncio = pytest.importorskip("redis.asyncio")
    redis_exceptions = pytest.importorskip("redis.exceptions")
    c = redis_asyncio.Redis(host="127.0.0.1", port=6379, socket_connect_timeout=2)
    try:
        await c.ping()
    except (OSError, redis_exceptions.ConnectionError) as exc:
        await c.aclose()
        pytest.skip(f"Redis is not reachable at 127.0.0.1:6379 ({exc})")
    yield c
    await c.aclose()
