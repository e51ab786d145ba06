"""Streaming a decision whose answer must be judged before any of it is shown.

An ``ensemble`` picks its answer by vote, by the first that passes the checks,
or by a judge; a ``cascade`` with answer-quality checks escalates when an answer
fails them. Neither can stream tokens as they arrive: a streamed answer cannot
be taken back once the client has seen it. So a stream of such a decision runs
it to the end with :meth:`~turnout.execution.executor.Executor.execute` (every
member or rung, their attempts traced and their cost counted as usual), then
streams the chosen answer: its text as one delta, its tool calls, and a
:class:`~turnout.types.StreamEnd`. The time to the first token is the whole
decision's latency.

Other decisions stream token by token (:mod:`turnout.execution.streaming`).
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import TYPE_CHECKING

from turnout.execution.budget import Budget
from turnout.types import ChatRequest, Decision, StreamEnd, StreamEvent, TextDelta, ToolCallDelta

if TYPE_CHECKING:
    from turnout.execution.executor import Execution, Executor
    from turnout.execution.streaming import Restart


def is_judged(decision: Decision) -> bool:
    """Whether the decision's answer must be judged whole before it is shown."""
    return decision.strategy == "ensemble" or (
        decision.strategy == "cascade" and decision.quality is not None
    )


class JudgedStream:
    """Iterate it for events; afterwards ``execution`` holds the outcome and attempts
    (as :class:`~turnout.execution.streaming.StreamExecution` does). Never restarts.
    A caller that stops before the decision is judged leaves ``execution`` None; the
    attempts made so far still reach the executor's trace sink."""

    def __init__(
        self,
        executor: Executor,
        request: ChatRequest,
        decision: Decision,
        *,
        run_id: str,
        step_id: str,
        budget: Budget | None,
    ) -> None:
        self.executor = executor
        self.request = request  # as the caller sent it: execute() applies the decision
        self.decision = decision
        self.run_id = run_id
        self.step_id = step_id
        self.budget = budget
        self.execution: Execution | None = None

    def __aiter__(self) -> AsyncGenerator[StreamEvent | Restart, None]:
        return self._run()

    async def _run(self) -> AsyncGenerator[StreamEvent | Restart, None]:
        execution = await self.executor.execute(
            self.decision,
            self.request,
            run_id=self.run_id,
            step_id=self.step_id,
            budget=self.budget,
        )
        self.execution = execution
        response = execution.response
        if response is None:
            assert execution.error is not None
            raise execution.error
        if response.content:
            yield TextDelta(response.content)
        for i, call in enumerate(response.tool_calls):
            yield ToolCallDelta(i, call.id, call.name, call.arguments)
        yield StreamEnd(
            response.finish_reason,
            response.usage,
            response.model,
            response.response_id,
            ttft_s=execution.latency_s,
        )
