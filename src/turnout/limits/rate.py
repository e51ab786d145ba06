"""Rate limits per key (and optionally per model): requests and tokens per minute.

The algorithm is a **sliding-window log**: a key's limit of N requests a minute means
at most N requests in *any* 60-second window, which is what people read "RPM" to mean
and what a test of "60 requests in a minute, 30 admitted" checks. GCRA and token
buckets refill continuously, so within one minute they admit the burst *plus* what
refilled meanwhile (a 30-RPM GCRA key hit over 20 seconds admits 40); a fixed window
admits up to 2N across its edge; the two-window "sliding counter" is an estimate.
The log's cost is one entry per admitted request in the last minute, so its memory
is bounded by the limit itself, and an idle key's entries expire with it. Tokens use
the same log (an entry carries its count) with a running sum, so a check is O(1)
amortised: expired entries are subtracted once, as they leave.

Tokens are counted when a request is admitted, as the prompt's estimate (messages and
tools) plus its ``max_tokens`` when it sets one (what OpenAI counts): a limit must be
decided before the answer. Once answered, the request's entry is recounted to the tokens
its provider calls really used (:meth:`MemoryRateLimiter.recount_now`), so a request
without ``max_tokens`` still counts its output, and one that used less than it allowed
gives the rest back.

:class:`MemoryRateLimiter` is the one-process implementation;
:class:`~turnout.limits.rate_redis.RedisRateLimiter` runs the same algorithm in one
Lua script, so any number of replicas admit exactly the limit, not N times it.
"""

from __future__ import annotations

import itertools
import math
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from turnout.errors import TurnoutError
from turnout.wire.errors import retry_after

WINDOW_S = 60.0


@dataclass(frozen=True, slots=True)
class RateLimit:
    """Requests and tokens per minute; None: no limit of that kind."""

    rpm: int | None = None
    tpm: int | None = None

    def __bool__(self) -> bool:
        return self.rpm is not None or self.tpm is not None


@dataclass(frozen=True, slots=True)
class RateDecision:
    """Whether a request was admitted, and what OpenAI's ``x-ratelimit-*`` headers say.

    ``reset_*_s``: seconds until the limit is back to its initial state (every request,
    or every token, counted has left the window), as OpenAI's headers say.
    ``retry_after_s``: when a refused request could be admitted (None when it never
    could: more tokens than the limit).
    """

    allowed: bool
    limit: RateLimit
    requests: int = 0
    tokens: int = 0
    reset_requests_s: float = 0.0
    reset_tokens_s: float = 0.0
    retry_after_s: float | None = None
    shared: bool = True
    """False when decided by this process alone (no Redis, or Redis unreachable)."""
    entry: int = 0
    """Decided in this process: the admission's entry in its logs (to recount it, or
    take it back); 0 when it was not admitted."""

    @property
    def remaining_requests(self) -> int | None:
        return None if self.limit.rpm is None else max(0, self.limit.rpm - self.requests)

    @property
    def remaining_tokens(self) -> int | None:
        return None if self.limit.tpm is None else max(0, self.limit.tpm - self.tokens)

    @property
    def refused_by(self) -> str | None:
        """``requests`` or ``tokens`` when refused, else None."""
        if self.allowed:
            return None
        if self.limit.rpm is not None and self.requests >= self.limit.rpm:
            return "requests"
        return "tokens"

    def headers(self) -> dict[str, str]:
        """OpenAI's rate-limit headers (and ``retry-after`` when refused)."""
        out: dict[str, str] = {}
        if self.limit.rpm is not None:
            out["x-ratelimit-limit-requests"] = str(self.limit.rpm)
            out["x-ratelimit-remaining-requests"] = str(self.remaining_requests)
            out["x-ratelimit-reset-requests"] = duration(self.reset_requests_s)
        if self.limit.tpm is not None:
            out["x-ratelimit-limit-tokens"] = str(self.limit.tpm)
            out["x-ratelimit-remaining-tokens"] = str(self.remaining_tokens)
            out["x-ratelimit-reset-tokens"] = duration(self.reset_tokens_s)
        if not self.allowed and self.retry_after_s is not None:
            out["retry-after"] = retry_after(self.retry_after_s)
            out["retry-after-ms"] = str(max(1, math.ceil(self.retry_after_s * 1000)))
        elif not self.allowed:  # larger than the limit itself: waiting never admits it
            out["x-should-retry"] = "false"
        return out


def duration(seconds: float) -> str:
    """A duration as OpenAI writes it: ``17ms``, ``1s``, ``6m0s``, ``1.5s``."""
    if seconds <= 0:
        return "0s"
    if seconds < 1:
        return f"{max(1, round(seconds * 1000))}ms"
    minutes, rest = divmod(seconds, 60)
    text = f"{rest:.3f}".rstrip("0").rstrip(".") + "s"
    return f"{int(minutes)}m{text}" if minutes else text


class RateLimitExceeded(TurnoutError):
    """A key's rate limit refused a request (429 with OpenAI's headers)."""

    error_class = "rate_limited"

    def __init__(self, scope: str, decision: RateDecision) -> None:
        self.decision = decision
        what = decision.refused_by or "requests"
        limit = decision.limit.rpm if what == "requests" else decision.limit.tpm
        unit = "requests" if what == "requests" else "tokens"
        if decision.retry_after_s is None:
            tail = "the request alone is larger than the limit"
        else:
            tail = f"try again in {duration(decision.retry_after_s)}"
        super().__init__(f"rate limit of {limit} {unit} per minute reached for {scope}: {tail}")


class RateLimiter(Protocol):
    async def admit(self, scope: str, limit: RateLimit, tokens: int = 0) -> RateDecision:
        """Count the request (and its tokens) against ``scope`` if both limits allow it."""

    async def aclose(self) -> None: ...


class _Log:
    __slots__ = ("requests", "tokens", "used")

    def __init__(self) -> None:
        self.requests: deque[tuple[float, int]] = deque()  # (at, entry)
        self.tokens: deque[tuple[float, int, int]] = deque()  # (at, count, entry)
        self.used = 0


class MemoryRateLimiter:
    """The sliding-window log in this process. At most ``max_scopes`` keys are kept
    (least recently used dropped), and each log holds at most its limit's entries, so
    memory is bounded whatever the traffic."""

    def __init__(
        self,
        *,
        window_s: float = WINDOW_S,
        max_scopes: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.window_s = window_s
        self.max_scopes = max_scopes
        self._clock = clock
        self._logs: OrderedDict[str, _Log] = OrderedDict()
        self._entries = itertools.count(1)

    def __len__(self) -> int:
        return len(self._logs)

    async def admit(self, scope: str, limit: RateLimit, tokens: int = 0) -> RateDecision:
        return self.admit_now(scope, limit, tokens)

    def admit_now(self, scope: str, limit: RateLimit, tokens: int = 0) -> RateDecision:
        now = self._clock()
        log = self._log(scope)
        edge = now - self.window_s
        while log.requests and log.requests[0][0] <= edge:
            log.requests.popleft()
        while log.tokens and log.tokens[0][0] <= edge:
            log.used -= log.tokens.popleft()[1]
        wait_r = wait_t = 0.0
        never = False
        if limit.rpm is not None and len(log.requests) >= limit.rpm:
            wait_r = log.requests[len(log.requests) - limit.rpm][0] + self.window_s - now
        if limit.tpm is not None and log.used + tokens > limit.tpm:
            if tokens > limit.tpm:
                never = True
            else:
                need, freed = log.used + tokens - limit.tpm, 0
                for at, count, _ in log.tokens:
                    freed += count
                    if freed >= need:
                        wait_t = at + self.window_s - now
                        break
        allowed = not never and wait_r <= 0 and wait_t <= 0
        entry = 0
        if allowed:
            entry = next(self._entries)
            if limit.rpm is not None:
                log.requests.append((now, entry))
            if limit.tpm is not None:
                log.tokens.append((now, tokens, entry))
                log.used += tokens
        return RateDecision(
            allowed=allowed,
            limit=limit,
            requests=len(log.requests),
            tokens=log.used,
            reset_requests_s=log.requests[-1][0] + self.window_s - now if log.requests else 0.0,
            reset_tokens_s=log.tokens[-1][0] + self.window_s - now if log.tokens else 0.0,
            retry_after_s=None if allowed or never else max(wait_r, wait_t),
            shared=False,
            entry=entry,
        )

    def undo_now(self, scope: str, entry: int) -> None:
        """Take the admission ``entry`` of ``scope`` (its decision's
        :attr:`RateDecision.entry`) back out, its tokens as last recounted: it was decided
        on a key since changed, or its budget refused it. Nothing when it has left the
        window."""
        log = self._logs.get(scope)
        if log is None or not entry:
            return
        for i in range(len(log.requests) - 1, -1, -1):
            if log.requests[i][1] == entry:
                del log.requests[i]
                break
        for i in range(len(log.tokens) - 1, -1, -1):
            if log.tokens[i][2] == entry:
                log.used -= log.tokens[i][1]
                del log.tokens[i]
                break

    def recount_now(self, scope: str, entry: int, used: int) -> None:
        """Recount the admission ``entry`` of ``scope`` (its decision's
        :attr:`RateDecision.entry`) as ``used`` tokens, what its calls really used;
        nothing when it has left the window."""
        log = self._logs.get(scope)
        if log is None or not entry:
            return
        for i in range(len(log.tokens) - 1, -1, -1):
            at, count, mine = log.tokens[i]
            if mine == entry:
                log.tokens[i] = (at, max(0, used), entry)
                log.used += max(0, used) - count
                return
            if mine < entry:  # entries are in order: it has left the window
                return

    def _log(self, scope: str) -> _Log:
        log = self._logs.get(scope)
        if log is None:
            log = self._logs[scope] = _Log()
            if len(self._logs) > self.max_scopes:
                self._logs.popitem(last=False)
        else:
            self._logs.move_to_end(scope)
        return log

    async def aclose(self) -> None:
        self._logs.clear()
