"""``ensemble``: every model at once, then one answer.

A majority vote when every answer is short (classification-like; ties go to the
higher tier), else the first answer that passes the step's checks, or a judge
model's pick (``mode: judge``). Each member is tried as a ``single`` decision
(retries included); every member's attempts are traced and charged. Streamed, the
chosen answer is shown once it is chosen: nothing can be shown before.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncGenerator, Sequence
from dataclasses import replace

from turnout.errors import TurnoutError
from turnout.execution.ledger import Ledger
from turnout.execution.run import DecisionRun
from turnout.execution.strategies.cascade import Acceptor
from turnout.execution.strategies.chain import Event, Walk
from turnout.execution.strategies.single import SingleRoute
from turnout.execution.vote import Ballot, classification_like, majority
from turnout.providers.base import replay
from turnout.types import NO_EXTRA, ChatRequest, ChatResponse, Message

_NUMBER = re.compile(r"(?<![\d.])\d{1,3}(?![\d.]?\d)")
"""A whole number in a judge's reply (not part of a decimal)."""


class EnsembleWalk:
    """The same interface as :class:`~turnout.execution.strategies.chain.Walk`."""

    def __init__(self, run: DecisionRun, request: ChatRequest, accept: Acceptor | None) -> None:
        self.run = run
        self.request = request
        self.accept = accept
        self.response: ChatResponse | None = None
        self.model: str | None = None
        self.note: str | None = None
        self.ttft_s: float | None = None
        self.current: str | None = None

    async def events(self) -> AsyncGenerator[Event, None]:
        t0 = time.perf_counter()
        await self._decide()
        if self.response is None:
            if self.run.deadline.expired():
                raise self.run.deadline.error()
            raise self.run.ledger.failure()
        if self.run.streamed:
            self.ttft_s = time.perf_counter() - t0 - self.run.ledger.queued_s
            for event in replay(self.response, self.ttft_s):
                yield event

    async def _answer(
        self, run: DecisionRun, model: str, request: ChatRequest
    ) -> ChatResponse | None:
        walk = Walk(run, SingleRoute(model, run.executor.retry.max_attempts), request)
        try:
            async for _ in walk.events():
                pass
        except TurnoutError:  # recorded in the ledger; the ensemble goes on without it
            return None
        return walk.response

    async def _decide(self) -> None:
        run, ledger = self.run, self.run.ledger
        d = ledger.decision
        ledgers = [Ledger(ledger.run_id, ledger.step_id, d, ledger.budget) for _ in d.models]
        try:
            answers = await asyncio.gather(
                *(
                    self._answer(run.sub(sub), m, self.request)
                    for sub, m in zip(ledgers, d.models, strict=True)
                )
            )
        finally:  # also when the total timeout cuts the ensemble: no attempt (or cost) is lost
            for sub in ledgers:
                ledger.absorb(sub)
        pool = run.executor.pool
        ballots = [
            Ballot(m, pool.spec(m).tier, r)
            for m, r in zip(d.models, answers, strict=True)
            if r is not None
        ]
        if not ballots:
            self.note = "ensemble: every model failed"
            return
        spec = d.ensemble
        mode = spec.mode if spec else "auto"
        if mode == "auto":
            short = classification_like([b.response.text for b in ballots])
            mode = "vote" if short else "first_passing"
        if mode == "vote":
            v = majority(ballots)
            self._pick(
                v.winner, f"ensemble vote: {v.votes}/{v.total} for {v.answer!r} -> {v.winner.model}"
            )
            return
        if mode == "judge" and spec is not None and spec.judge:
            picked = await self._judge(ballots, spec.judge)
            if picked is not None:
                self._pick(picked, f"ensemble judge {spec.judge} chose {picked.model}")
                return
        for b in ballots:
            if self.accept is None or self.accept(b.response) is None:
                self._pick(b, f"ensemble: first passing answer from {b.model}")
                return
        best = max(ballots, key=lambda b: b.tier.rank)
        self._pick(best, f"ensemble: no answer passed; kept {best.model} (highest tier)")

    def _pick(self, ballot: Ballot, note: str) -> None:
        # chosen from several: no one upstream speaks for it (no logprobs, fingerprint...)
        self.response = replace(ballot.response, extra=NO_EXTRA)
        self.model, self.note = ballot.model, note
        self.current = ballot.model

    async def _judge(self, ballots: Sequence[Ballot], judge: str) -> Ballot | None:
        question = "\n".join(m.content or "" for m in self.request.messages if m.role == "user")
        listed = "\n\n".join(f"Answer {i + 1}:\n{b.response.text}" for i, b in enumerate(ballots))
        prompt = (
            f"Question:\n{question}\n\n{listed}\n\n"
            f"Which answer is best? Reply with the number only (1-{len(ballots)})."
        )
        ask = ChatRequest((Message.user(prompt),), max_tokens=8, temperature=0)
        answer = await self._answer(self.run.sub(self.run.ledger), judge, ask)
        if answer is None:
            return None
        for number in _NUMBER.findall(answer.text):  # "2", "Answer 2.", "**2**"
            if 1 <= int(number) <= len(ballots):
                return ballots[int(number) - 1]
        return None
