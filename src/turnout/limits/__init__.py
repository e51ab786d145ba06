"""Per-key rate limits and budgets, exact across replicas through Redis (Lua scripts),
with in-process twins for one process and for Redis outages."""

from turnout.limits.budget import (
    BudgetState,
    KeyBudget,
    KeyBudgetExceeded,
    KeyBudgets,
    MemoryBudgets,
    Reservation,
    estimate_request,
)
from turnout.limits.rate import (
    MemoryRateLimiter,
    RateDecision,
    RateLimit,
    RateLimiter,
    RateLimitExceeded,
)

__all__ = [
    "BudgetState",
    "KeyBudget",
    "KeyBudgetExceeded",
    "KeyBudgets",
    "MemoryBudgets",
    "MemoryRateLimiter",
    "RateDecision",
    "RateLimit",
    "RateLimitExceeded",
    "RateLimiter",
    "Reservation",
    "estimate_request",
]
