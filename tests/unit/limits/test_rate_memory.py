"""The sliding-window log in one process: exactly the limit in any window, OpenAI's
headers, Retry-After, bounded memory."""

from __future__ import annotations

import pytest

from turnout.limits.rate import MemoryRateLimiter, RateLimit, RateLimitExceeded, duration


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


async def test_exactly_rpm_in_any_window() -> None:
    clock = Clock()
    limiter = MemoryRateLimiter(clock=clock)
    limit = RateLimit(rpm=30)
    admitted = 0
    for _ in range(60):  # 60 requests over 59 seconds: a GCRA would admit ~59
        admitted += (await limiter.admit("k", limit)).allowed
        clock.t += 59 / 60
    assert admitted == 30
    clock.t = 1000.0 + 60.0001  # the first request has left the window
    assert (await limiter.admit("k", limit)).allowed


async def test_headers_and_retry_after() -> None:
    clock = Clock()
    limiter = MemoryRateLimiter(clock=clock)
    limit = RateLimit(rpm=2, tpm=100)
    first = await limiter.admit("k", limit, tokens=40)
    assert first.headers() == {
        "x-ratelimit-limit-requests": "2",
        "x-ratelimit-remaining-requests": "1",
        "x-ratelimit-reset-requests": "1m0s",
        "x-ratelimit-limit-tokens": "100",
        "x-ratelimit-remaining-tokens": "60",
        "x-ratelimit-reset-tokens": "1m0s",
    }
    clock.t += 10
    assert (await limiter.admit("k", limit, tokens=40)).allowed
    clock.t += 5
    refused = await limiter.admit("k", limit, tokens=10)
    assert not refused.allowed and refused.refused_by == "requests"
    assert refused.retry_after_s == pytest.approx(45)
    headers = refused.headers()
    assert headers["retry-after"] == "45" and headers["x-ratelimit-remaining-requests"] == "0"
    assert "try again in 45s" in str(RateLimitExceeded("team-a", refused))


async def test_tokens_refused_until_enough_leave() -> None:
    clock = Clock()
    limiter = MemoryRateLimiter(clock=clock)
    limit = RateLimit(tpm=100)
    assert (await limiter.admit("k", limit, tokens=60)).allowed
    clock.t += 20
    assert (await limiter.admit("k", limit, tokens=30)).allowed
    refused = await limiter.admit("k", limit, tokens=50)
    assert not refused.allowed and refused.refused_by == "tokens"
    assert refused.retry_after_s == pytest.approx(40)  # when the 60 leave
    never = await limiter.admit("k", limit, tokens=101)
    assert not never.allowed and never.retry_after_s is None
    assert never.headers()["x-should-retry"] == "false" and "retry-after" not in never.headers()
    assert "x-should-retry" not in refused.headers() and refused.headers()["retry-after"] == "40"
    clock.t += 40.001
    assert (await limiter.admit("k", limit, tokens=50)).allowed


async def test_memory_is_bounded() -> None:
    limiter = MemoryRateLimiter(max_scopes=100)
    for i in range(1000):
        await limiter.admit(f"k{i}", RateLimit(rpm=5))
    assert len(limiter) == 100


def test_duration_format() -> None:
    assert [duration(x) for x in (0, 0.017, 1, 1.5, 360, 61.25)] == [
        "0s", "17ms", "1s", "1.5s", "6m0s", "1m1.25s",
    ]  # fmt: skip


async def test_reset_is_when_the_newest_entry_leaves() -> None:
    clock = Clock()
    limiter = MemoryRateLimiter(clock=clock)
    limit = RateLimit(rpm=5, tpm=1000)
    await limiter.admit("k", limit, tokens=10)
    clock.t += 20
    second = await limiter.admit("k", limit, tokens=10)
    assert second.reset_requests_s == pytest.approx(60)  # back to 5 of 5 in a minute
    clock.t += 15
    third = await limiter.admit("k", limit, tokens=10)
    assert third.headers()["x-ratelimit-reset-requests"] == "1m0s"
    assert third.headers()["x-ratelimit-reset-tokens"] == "1m0s"


async def test_an_admission_is_recounted_to_what_it_used() -> None:
    clock = Clock()
    limiter = MemoryRateLimiter(clock=clock)
    limit = RateLimit(tpm=1000)
    first = await limiter.admit("k", limit, tokens=300)
    clock.t += 1
    second = await limiter.admit("k", limit, tokens=200)
    limiter.recount_now("k", first.entry, 40)
    limiter.recount_now("k", second.entry, 900)
    limiter.recount_now("k", 0, 70)  # no entry (no tpm limit): nothing changes
    refused = await limiter.admit("k", limit, tokens=100)
    assert not refused.allowed and refused.tokens == 940
    assert (await limiter.admit("k", limit, tokens=60)).tokens == 1000
    clock.t += 59.5  # the first (recounted to 40) leaves the window with its 40
    assert (await limiter.admit("k", limit, tokens=40)).tokens == 1000


async def test_a_recount_finds_its_own_admission_among_equal_ones() -> None:
    clock = Clock()
    limiter = MemoryRateLimiter(clock=clock)
    limit = RateLimit(tpm=10_000)
    old = await limiter.admit("k", limit, tokens=500)  # a long stream: it outlives the window
    clock.t += 70
    new = await limiter.admit("k", limit, tokens=500)  # the same prompt and max_tokens
    limiter.recount_now("k", old.entry, 5000)  # left the window: nothing to recount
    limiter.recount_now("k", new.entry, 100)
    assert (await limiter.admit("k", limit, tokens=0)).tokens == 100


async def test_an_admission_taken_back_is_its_own_as_recounted() -> None:
    """Undone by its entry: not the latest admission, nor another with the same tokens;
    its tokens as last recounted; one that has left the window, or a refusal, is
    nothing to undo."""
    clock = Clock()
    limiter = MemoryRateLimiter(clock=clock)
    limit = RateLimit(rpm=2, tpm=1000)
    first = await limiter.admit("k", limit, tokens=300)
    clock.t += 10
    second = await limiter.admit("k", limit, tokens=300)  # the same prompt and max_tokens
    limiter.recount_now("k", first.entry, 40)
    limiter.undo_now("k", first.entry)  # decided on a key since changed
    after = await limiter.admit("k", limit, tokens=0)
    assert (after.requests, after.tokens) == (2, 300)  # the second and its 300 stay
    refused = await limiter.admit("k", limit, tokens=0)
    assert not refused.allowed and refused.retry_after_s == 60  # the oldest left: t=10
    limiter.undo_now("k", refused.entry)  # never admitted: nothing to take back
    clock.t += 61
    limiter.undo_now("k", second.entry)  # left the window: nothing more to take back
    assert (await limiter.admit("k", limit, tokens=1)).tokens == 1
    rpm_only = MemoryRateLimiter(clock=clock)
    one = await rpm_only.admit("k", RateLimit(rpm=1))
    rpm_only.undo_now("k", one.entry)
    assert (await rpm_only.admit("k", RateLimit(rpm=1))).allowed
