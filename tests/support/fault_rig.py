"""A two-server rig for the executor's fault tests: two fake OpenAI-compatible
servers (alpha, beta) on real sockets, a dead port, and a pool over them."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Iterable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from turnout.config.loader import settings_from_dict
from turnout.config.settings import Settings
from turnout.errors import TurnoutError
from turnout.execution.executor import Execution, Executor
from turnout.execution.executor import ExecutionStream as StreamExecution
from turnout.execution.setup import Resources, build_executor
from turnout.testing import FakeOpenAI, RecordedRequest
from turnout.tracing.records import AttemptRecord
from turnout.types import ChatRequest, Decision, Message, TextDelta, Usage

KEY_ENV = "TURNOUT_FAULTS_KEY"
KEY = "sk-faults-0123456789SECRET"
ALPHA_REPLY = "alpha: all good here"
BETA_REPLY = "beta: all good here"
PROMPT = ChatRequest((Message.user("Summarise the incident report in one line."),))
FAST: dict[str, Any] = {
    "retries": {"max_attempts": 3, "base_delay_s": 0.01, "max_delay_s": 0.05},
    "breaker": {"enabled": False},
}


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def merged(base: Mapping[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in extra.items():
        out[k] = merged(out[k], v) if isinstance(v, Mapping) and k in out else v
    return out


@dataclass
class Rig:
    alpha: FakeOpenAI
    beta: FakeOpenAI
    dead_port: int
    opened: list[tuple[Executor, Resources]] = field(default_factory=list)

    def settings(
        self, executor: Mapping[str, Any] | None = None, policies: Mapping[str, Any] | None = None
    ) -> Settings:
        key = {"api_key_env": KEY_ENV}
        raw = {
            "providers": {
                "alpha": {"kind": "openai", "base_url": self.alpha.base_url, **key,
                          "timeouts": {"connect": 1, "read": 0.4, "total": 5}},
                "beta": {"kind": "openai", "base_url": self.beta.base_url, **key,
                         "timeouts": {"connect": 1, "read": 2, "total": 5}},
                "dead": {"kind": "openai", "base_url": f"http://127.0.0.1:{self.dead_port}/v1",
                         **key, "timeouts": {"connect": 0.5, "read": 0.5, "total": 1}},
            },
            "models": {
                "small": {"provider": "alpha", "id": "alpha-small", "tier": "efficient",
                          "price": {"input": 1.0, "output": 2.0}, "context_window": 1000},
                "big": {"provider": "alpha", "id": "alpha-big", "tier": "frontier",
                        "price": {"input": 3.0, "output": 15.0}, "context_window": 200000},
                "backup": {"provider": "beta", "id": "beta-main", "tier": "standard",
                           "price": {"input": 0.5, "output": 1.5}, "context_window": 1000},
                "ghost": {"provider": "dead", "id": "ghost-1", "tier": "efficient",
                          "price": {"input": 1, "output": 1}},
            },
            "policies": dict(policies or {}),
            "executor": merged(FAST, executor or {}),
        }  # fmt: skip
        return settings_from_dict(raw)

    def executor(self, settings: Settings) -> Executor:
        ex, resources = build_executor(settings)
        self.opened.append((ex, resources))
        return ex

    async def close_executors(self) -> None:
        """Close every executor built so far (their background writes to shared state
        stop), so that a test can drop its Redis keys after them."""
        opened, self.opened = self.opened, []
        for ex, resources in opened:
            await ex.pool.aclose()
            await resources.aclose()

    def served_cost(self, settings: Settings, requests: Iterable[RecordedRequest]) -> Decimal:
        """The priced usage the fake servers reported for ``requests``."""
        by_id = {m.id: m for m in settings.models.values()}
        total = Decimal(0)
        for r in requests:
            spec = by_id[str(r.model)]
            server = self.alpha if spec.provider == "alpha" else self.beta
            u = server.reported_usage(r)
            usage = Usage(
                u["prompt_tokens"],
                u["completion_tokens"],
                u["prompt_tokens_details"]["cached_tokens"],
            )
            total += spec.price.cost(usage)
        return total

    def answered(self, *kinds: str) -> list[RecordedRequest]:
        """Requests the servers answered in full (``ok``, plus ``kinds``)."""
        wanted = ("ok", *kinds)
        return [r for s in (self.alpha, self.beta) for r in s.requests if r.fault.kind in wanted]


@asynccontextmanager
async def open_rig() -> AsyncIterator[Rig]:
    """Both servers up; every executor the rig built is closed on the way out."""
    async with FakeOpenAI(reply=ALPHA_REPLY) as alpha, FakeOpenAI(reply=BETA_REPLY) as beta:
        r = Rig(alpha, beta, closed_port())
        try:
            yield r
        finally:
            await r.close_executors()


def decision(*models: str, strategy: str = "fallback", **kw: Any) -> Decision:
    return Decision(tuple(models), "test", "test", strategy=strategy, **kw)  # type: ignore[arg-type]


async def run(ex: Executor, d: Decision, **kw: Any) -> Execution:
    return await ex.execute(d, PROMPT, run_id="run-1", step_id="step-1", **kw)


def classes(out: Execution) -> list[str | None]:
    return [a.error_class for a in out.attempts]


Event = Any  # StreamEvent | Restart


async def consume(
    s: StreamExecution, *, dwell: float = 0.0
) -> tuple[list[Event], TurnoutError | None]:
    """Read the whole stream (sleeping ``dwell`` after the first token, like a slow
    client): the events, and the error that ended it, if any."""
    events: list[Event] = []
    try:
        async for event in s:
            events.append(event)
            if dwell and len(events) == 1:
                await asyncio.sleep(dwell)
    except TurnoutError as exc:
        return events, exc
    return events, None


def text(events: Iterable[Event]) -> str:
    return "".join(e.text for e in events if isinstance(e, TextDelta))


def prompts_charged(attempts: Iterable[AttemptRecord]) -> Decimal:
    """What the attempts timed out (or cut) before their first token were charged: the
    prompt each sent, estimated (a provider bills a prompt it had). Each is checked to be
    such a charge: estimated, no output, more than zero."""
    total = Decimal(0)
    for a in attempts:
        if a.error_class == "timeout" and a.output_tokens == 0:
            assert a.usage_estimated and a.input_tokens > 0 and a.cost_usd > 0, a
            total += a.cost_usd
    return total
