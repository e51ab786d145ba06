"""Budget caps per run and per step, enforced *before* money is spent.

Before each call the executor estimates its cost from the prompt size (about
four characters a token) and ``max_tokens`` (or a default when the request
sets none) and refuses with :class:`~turnout.errors.BudgetExceeded` when the
run or the step would pass its cap. An admitted call *holds* its estimate until
it is recorded, so calls in flight together (ensemble members, parallel steps)
count each other and cannot jointly pass a cap. After the call the hold is
released and the real cost is charged.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

from turnout.errors import BudgetExceeded
from turnout.pricing.cost import Price
from turnout.pricing.tokens import request_prompt_tokens
from turnout.types import ChatRequest

DEFAULT_OUTPUT_ESTIMATE = 1024
"""Output tokens assumed for a request without ``max_tokens``."""


def estimate_tokens(request: ChatRequest) -> tuple[int, int]:
    """An upper-bound guess at one call's (input, output) tokens, before making it."""
    return request_prompt_tokens(request), request.max_tokens or DEFAULT_OUTPUT_ESTIMATE


def estimate_cost(price: Price, request: ChatRequest) -> Decimal:
    """An upper-bound guess at one call's cost, before making it."""
    return price.estimate(*estimate_tokens(request))


@dataclass(slots=True)
class Budget:
    """Spend caps for one run (``run_usd``) and for each of its steps (``step_usd``).

    ``spent`` / ``by_step`` are what calls cost; ``held`` / ``held_by_step`` the
    estimates of calls admitted and not yet recorded.
    """

    run_usd: Decimal | None = None
    step_usd: Decimal | None = None
    spent: Decimal = Decimal(0)
    by_step: dict[str, Decimal] = field(default_factory=dict)
    held: Decimal = Decimal(0)
    held_by_step: dict[str, Decimal] = field(default_factory=dict)

    def check(self, step_id: str, estimate: Decimal) -> None:
        """Raise BudgetExceeded when ``estimate`` more would pass a cap."""
        if self.step_usd is not None:
            step_spent = self.by_step.get(step_id, Decimal(0))
            step_held = self.held_by_step.get(step_id, Decimal(0))
            if step_spent + step_held + estimate > self.step_usd:
                raise BudgetExceeded(
                    f"step {step_id!r}: estimated ${estimate:.6f} more would pass the step cap "
                    f"of ${self.step_usd} ({_so_far(step_spent, step_held)})",
                    scope="step",
                )
        if self.run_usd is not None and self.spent + self.held + estimate > self.run_usd:
            raise BudgetExceeded(
                f"step {step_id!r}: estimated ${estimate:.6f} more would pass the run cap "
                f"of ${self.run_usd} ({_so_far(self.spent, self.held)})",
                scope="run",
            )

    def hold(self, step_id: str, estimate: Decimal) -> None:
        """Check, then hold ``estimate`` for a call about to be made (see :meth:`release`)."""
        self.check(step_id, estimate)
        self.held += estimate
        self.held_by_step[step_id] = self.held_by_step.get(step_id, Decimal(0)) + estimate

    def release(self, step_id: str, estimate: Decimal) -> None:
        """Give back a hold once its call is recorded (and charged)."""
        self.held -= estimate
        self.held_by_step[step_id] = self.held_by_step.get(step_id, Decimal(0)) - estimate

    def charge(self, step_id: str, amount: Decimal) -> None:
        if amount:
            self.spent += amount
            self.by_step[step_id] = self.by_step.get(step_id, Decimal(0)) + amount


def _so_far(spent: Decimal, held: Decimal) -> str:
    if held:
        return f"spent ${spent:.6f}, ${held:.6f} held by calls in flight"
    return f"spent ${spent:.6f}"


class BudgetGate:
    """The budget as seen by one attempt: its estimate held before the call, the hold
    given back and the real cost charged once the call is recorded (or the hold given
    back alone when no call was made)."""

    __slots__ = ("_budget", "_held", "_step")

    def __init__(self, budget: Budget | None, step_id: str) -> None:
        self._budget = budget
        self._step = step_id
        self._held = Decimal(0)

    def admit(self, price: Price, request: ChatRequest) -> BudgetExceeded | None:
        """Hold the call's estimate; None when it fits every cap, else why not."""
        if self._budget is None:
            return None
        estimate = estimate_cost(price, request)
        try:
            self._budget.hold(self._step, estimate)
        except BudgetExceeded as exc:
            return exc
        self._held = estimate
        return None

    def release(self) -> None:
        if self._held and self._budget is not None:
            self._budget.release(self._step, self._held)
        self._held = Decimal(0)

    def settle(self, cost: Decimal) -> None:
        self.release()
        if self._budget is not None:
            self._budget.charge(self._step, cost)
