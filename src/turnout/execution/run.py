"""One decision being carried out: what every attempt and strategy of it shares."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from turnout.execution.ledger import Ledger
from turnout.execution.timeouts import Deadline

if TYPE_CHECKING:
    from turnout.execution.executor import Executor

StreamCutRule = Literal["continue", "restart", "fail"]


@dataclass(slots=True)
class DecisionRun:
    """``streamed``: the caller reads tokens as they come (a failure after the first one
    follows ``on_stream_cut``); unstreamed, the caller sees only the finished answer."""

    executor: Executor
    ledger: Ledger
    deadline: Deadline
    streamed: bool
    on_stream_cut: StreamCutRule = "continue"

    def sub(self, ledger: Ledger) -> DecisionRun:
        """The same decision, recorded in another ledger and never streamed (an ensemble
        member, a judge: their answers are judged before anything is shown)."""
        return DecisionRun(self.executor, ledger, self.deadline, False, self.on_stream_cut)
