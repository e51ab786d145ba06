"""One decision being carried out: what every attempt and strategy of it shares."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Literal

from turnout.execution.ledger import Ledger
from turnout.execution.timeouts import Deadline

if TYPE_CHECKING:
    from turnout.execution.executor import Executor
    from turnout.types import ChatRequest

StreamCutRule = Literal["continue", "restart", "fail"]

CutSpend = Callable[[Decimal, str, "ChatRequest"], Awaitable[bool]]
"""Asked before a streamed answer cut mid-way is continued or restarted, with what the
request has cost so far, the next model and the request it will be sent: whether the
request may go on paying (a key's budget grown to hold it); False, the stream ends with
the error that cut it."""


@dataclass(slots=True)
class DecisionRun:
    """``streamed``: the caller reads tokens as they come (a failure after the first one
    follows ``on_stream_cut``); unstreamed, the caller sees only the finished answer."""

    executor: Executor
    ledger: Ledger
    deadline: Deadline
    streamed: bool
    on_stream_cut: StreamCutRule = "continue"
    on_cut_spend: CutSpend | None = None

    def sub(self, ledger: Ledger) -> DecisionRun:
        """The same decision, recorded in another ledger and never streamed (an ensemble
        member, a judge: their answers are judged before anything is shown)."""
        return DecisionRun(self.executor, ledger, self.deadline, False, self.on_stream_cut)
