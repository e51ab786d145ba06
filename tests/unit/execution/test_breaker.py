"""Circuit breaker transitions, driven by a fake clock."""

from __future__ import annotations

import asyncio
import time

import pytest

from turnout.execution.breaker import BreakerBoard, BreakerConfig, MemoryBreakerStore
from turnout.policies.base import PoolHealth


class FakeClock:
    def __init__(self, t: float = 1000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t

    def advance(self, dt: float) -> None:
        self.t += dt


CFG = BreakerConfig(
    window_s=30, bucket_s=1, min_requests=5, failure_rate=0.5, cooldown_s=30, probe_timeout_s=60
)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def board(clock: FakeClock) -> BreakerBoard:
    return BreakerBoard(CFG, MemoryBreakerStore(clock))


async def fail(board: BreakerBoard, model: str, n: int) -> str:
    state = "closed"
    for _ in range(n):
        state = await board.record(model, False)
    return state


async def open_breaker(board: BreakerBoard, model: str = "opus") -> None:
    assert await fail(board, model, CFG.min_requests) == "open"


async def test_unknown_model_is_closed_and_allowed(board: BreakerBoard) -> None:
    assert await board.allow("opus")
    assert await board.state("opus") == "closed"
    assert await board.unavailable() == frozenset()


async def test_does_not_open_below_min_requests(board: BreakerBoard) -> None:
    assert await fail(board, "opus", 4) == "closed"
    assert await board.allow("opus")
    assert await board.record("opus", False) == "open"
    assert not await board.allow("opus")


async def test_opens_at_the_failure_rate_threshold(board: BreakerBoard) -> None:
    for _ in range(3):
        await board.record("opus", True)
    assert await fail(board, "opus", 2) == "closed"  # 2/5 = 0.4 < 0.5
    assert await board.record("opus", False) == "open"  # 3/6 = 0.5


async def test_successes_never_open_and_keep_rate_low(board: BreakerBoard) -> None:
    for _ in range(20):
        await board.record("opus", True)
    assert await fail(board, "opus", 19) == "closed"  # 19/39 < 0.5
    assert await board.record("opus", False) == "open"  # 20/40


async def test_open_refuses_and_reports_unavailable(board: BreakerBoard, clock: FakeClock) -> None:
    await open_breaker(board)
    clock.advance(29.9)
    assert not await board.allow("opus")
    assert await board.state("opus") == "open"
    assert await board.unavailable() == frozenset({"opus"})
    assert PoolHealth(await board.unavailable()).healthy("haiku")
    assert await board.allow("haiku")  # breakers are per model


async def test_cooldown_then_a_single_probe(board: BreakerBoard, clock: FakeClock) -> None:
    await open_breaker(board)
    clock.advance(30)
    assert await board.state("opus") == "half_open"
    assert await board.unavailable() == frozenset()  # a probe is due: a policy may pick it
    assert await board.allow("opus")  # this caller is the probe
    assert not await board.allow("opus")  # everyone else waits for it
    assert await board.unavailable() == frozenset({"opus"})


async def test_only_one_concurrent_caller_gets_the_probe(
    board: BreakerBoard, clock: FakeClock
) -> None:
    await open_breaker(board)
    clock.advance(31)
    results = await asyncio.gather(*(board.allow("opus") for _ in range(20)))
    assert sum(results) == 1


async def test_probe_success_closes_and_resets_the_window(
    board: BreakerBoard, clock: FakeClock
) -> None:
    await open_breaker(board)
    clock.advance(30)
    assert await board.allow("opus")
    assert await board.record("opus", True) == "closed"
    snap = (await board.snapshot())["opus"]
    assert (snap.state, snap.requests, snap.failures) == ("closed", 0, 0)
    assert await fail(board, "opus", 4) == "closed"  # a fresh window needs min_requests again
    assert await board.record("opus", False) == "open"


async def test_probe_failure_reopens_with_a_fresh_cooldown(
    board: BreakerBoard, clock: FakeClock
) -> None:
    await open_breaker(board)
    clock.advance(45)  # well past the first cooldown
    assert await board.allow("opus")
    clock.advance(10)  # the probe takes a while, then fails
    assert await board.record("opus", False) == "open"
    clock.advance(29.9)  # the new cooldown counts from the failed probe
    assert not await board.allow("opus")
    assert await board.state("opus") == "open"
    clock.advance(0.1)
    assert await board.allow("opus")


async def test_cooldown_grows_on_repeated_probe_failures_up_to_a_cap(clock: FakeClock) -> None:
    cfg = BreakerConfig(min_requests=1, cooldown_s=10, cooldown_multiplier=2, max_cooldown_s=35)
    board = BreakerBoard(cfg, MemoryBreakerStore(clock))
    await board.record("m", False)
    cooldowns = []
    for _ in range(4):
        cooldowns.append((await board.snapshot())["m"].cooldown_s)
        clock.advance(cooldowns[-1])
        assert await board.allow("m")
        await board.record("m", False)
    cooldowns.append((await board.snapshot())["m"].cooldown_s)
    assert cooldowns == [10, 20, 35, 35, 35]
    clock.advance(35)
    assert await board.allow("m")
    await board.record("m", True)  # success resets the growth
    await board.record("m", False)
    assert (await board.snapshot())["m"].cooldown_s == 10


async def test_rolling_window_forgets_old_failures(board: BreakerBoard, clock: FakeClock) -> None:
    assert await fail(board, "opus", 4) == "closed"
    clock.advance(31)  # those four have left the 30 s window
    assert await fail(board, "opus", 4) == "closed"
    snap = (await board.snapshot())["opus"]
    assert (snap.requests, snap.failures) == (4, 4)
    assert await board.record("opus", False) == "open"


async def test_window_keeps_recent_buckets(board: BreakerBoard, clock: FakeClock) -> None:
    for _ in range(4):
        await board.record("opus", False)
        clock.advance(5)  # failures at t, t+5, t+10, t+15: all inside 30 s
    assert await board.record("opus", False) == "open"


async def test_old_successes_leave_the_window_too(board: BreakerBoard, clock: FakeClock) -> None:
    for _ in range(10):
        await board.record("opus", True)
    assert await fail(board, "opus", 5) == "closed"  # 5/15
    clock.advance(20)
    assert await board.record("opus", False) == "closed"  # 6/16
    clock.advance(15)  # the first 15 results are older than 30 s now
    assert await board.record("opus", False) == "closed"  # 2/2, below min_requests
    assert await fail(board, "opus", 3) == "open"  # 5/5


async def test_abandoned_probe_is_given_up_after_probe_timeout(
    board: BreakerBoard, clock: FakeClock
) -> None:
    await open_breaker(board)
    clock.advance(30)
    assert await board.allow("opus")  # the probe's caller never reports back
    clock.advance(59)
    assert not await board.allow("opus")
    clock.advance(1)
    assert await board.unavailable() == frozenset()
    assert await board.allow("opus")  # a new probe
    assert not await board.allow("opus")


async def test_results_while_open_are_ignored(board: BreakerBoard, clock: FakeClock) -> None:
    await open_breaker(board)
    assert await board.record("opus", True) == "open"  # a straggler
    assert not await board.allow("opus")
    clock.advance(30)
    assert await board.allow("opus")


async def test_snapshot_reports_retry_time(board: BreakerBoard, clock: FakeClock) -> None:
    await board.record("haiku", True)
    await open_breaker(board)
    clock.advance(12)
    snap = await board.snapshot()
    assert list(snap) == ["haiku", "opus"]
    assert snap["opus"].state == "open"
    assert snap["opus"].retry_in_s == pytest.approx(18)
    assert snap["opus"].cooldown_s == 30
    assert snap["haiku"].state == "closed"
    assert snap["haiku"].failure_rate == 0.0
    clock.advance(18)
    assert (await board.snapshot())["opus"].state == "half_open"
    assert await board.allow("opus")
    assert (await board.snapshot())["opus"].retry_in_s is None  # probe in flight


async def test_reset(board: BreakerBoard) -> None:
    await open_breaker(board, "opus")
    await open_breaker(board, "haiku")
    await board.reset("opus")
    assert await board.allow("opus")
    assert await board.unavailable() == frozenset({"haiku"})
    await board.reset()
    assert await board.unavailable() == frozenset()


async def test_default_board_uses_the_real_clock() -> None:
    board = BreakerBoard()
    assert board.config == BreakerConfig()
    assert await board.allow("x")
    assert await board.record("x", True) == "closed"


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"window_s": 0}, "window_s"),
        ({"bucket_s": 60}, "bucket_s"),
        ({"min_requests": 0}, "min_requests"),
        ({"failure_rate": 0}, "failure_rate"),
        ({"failure_rate": 1.5}, "failure_rate"),
        ({"cooldown_s": -1}, "cooldown_s"),
        ({"cooldown_multiplier": 0.5}, "cooldown_multiplier"),
        ({"max_cooldown_s": 1}, "max_cooldown_s"),
    ],
)
def test_config_is_validated(kwargs: dict[str, float], field: str) -> None:
    with pytest.raises(ValueError, match=field):
        BreakerConfig(**kwargs)  # type: ignore[arg-type]


def test_bucket_count() -> None:
    assert BreakerConfig(window_s=30, bucket_s=1).buckets == 30
    assert BreakerConfig(window_s=10, bucket_s=3).buckets == 4


async def test_in_process_calls_are_fast() -> None:
    board = BreakerBoard(CFG)
    n = 20_000
    t0 = time.perf_counter()
    for i in range(n):
        if await board.allow("opus"):
            await board.record("opus", i % 4 != 0)  # 25% failures: stays closed
    per_pair = (time.perf_counter() - t0) / n
    assert await board.state("opus") == "closed"
    assert per_pair < 50e-6  # measured ~1-2 µs per allow+record; generous for busy CI


async def test_retry_in_says_when_a_call_may_go_through(
    board: BreakerBoard, clock: FakeClock
) -> None:
    assert await board.retry_in("opus") is None  # never seen: closed
    await open_breaker(board)
    clock.advance(10)
    assert await board.retry_in("opus") == pytest.approx(20)  # the rest of the cooldown
    clock.advance(20)
    assert await board.retry_in("opus") == 0  # a probe is due
    assert await board.allow("opus")  # the probe, in flight
    clock.advance(5)
    assert await board.retry_in("opus") == pytest.approx(55)  # at the latest: given up
    await board.record("opus", True)
    assert await board.retry_in("opus") is None
