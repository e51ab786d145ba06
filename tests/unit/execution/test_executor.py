import random
from decimal import Decimal

import pytest

from turnout.config import Settings
from turnout.errors import (
    AllAttemptsFailed,
    AuthenticationError,
    ProviderError,
    RateLimited,
    ServerError,
)
from turnout.execution.executor import Executor
from turnout.execution.retry import RetryPolicy
from turnout.providers import FunctionProvider
from turnout.providers.pool import ModelPool
from turnout.types import ChatRequest, Decision, Message


def script(*outcomes: object) -> FunctionProvider:
    it = iter(outcomes)

    def fn(req: ChatRequest) -> str:
        o = next(it)
        if isinstance(o, ProviderError):
            raise o
        return str(o)

    return FunctionProvider(fn)


REQ = ChatRequest((Message.user("hello there"),))


def executor(
    settings: Settings, hosted: FunctionProvider, backup: FunctionProvider | None = None
) -> tuple[Executor, list[float]]:
    pool = ModelPool(settings, providers={"hosted": hosted, "backup": backup or hosted})
    slept: list[float] = []

    async def sleep(s: float) -> None:
        slept.append(s)

    return Executor(
        pool, retry=RetryPolicy(max_attempts=3), sleep=sleep, rng=random.Random(1)
    ), slept


async def test_retries_then_succeeds_and_honours_retry_after(settings: Settings) -> None:
    ex, slept = executor(
        settings, script(RateLimited("429", retry_after=2.5), ServerError("500"), "ok")
    )
    out = await ex.execute(Decision(("opus",), "r", "p"), REQ, run_id="r", step_id="s")
    assert out.ok and out.response is not None and out.response.text == "ok"
    assert [a.status for a in out.attempts] == ["error", "error", "ok"]
    assert [a.attempt for a in out.attempts] == [1, 2, 3]
    assert slept[0] == 2.5 and 0.1 < slept[1] < 1.0
    assert out.cost == out.attempts[-1].cost_usd > 0


async def test_gives_up_after_max_attempts_listing_each(settings: Settings) -> None:
    ex, _ = executor(settings, script(*[ServerError("502 bad gateway", status=502)] * 3))
    out = await ex.execute(Decision(("opus",), "r", "p"), REQ, run_id="r", step_id="s")
    assert not out.ok and isinstance(out.error, AllAttemptsFailed)
    assert str(out.error).count("server_error") == 3
    assert out.cost == Decimal(0)


async def test_non_retryable_error_stops_at_once(settings: Settings) -> None:
    ex, slept = executor(settings, script(AuthenticationError("401 invalid key")))
    out = await ex.execute(Decision(("opus",), "r", "p"), REQ, run_id="r", step_id="s")
    assert isinstance(out.error, AuthenticationError) and len(out.attempts) == 1 and slept == []


@pytest.mark.parametrize("streamed", [False, True])
async def test_a_retry_after_past_the_cap_fails_at_once(settings: Settings, streamed: bool) -> None:
    """single: the model asked for 120 s (max_retry_after_s is 30): not asked again."""
    ex, slept = executor(settings, script(RateLimited("429", retry_after=120), "ok"))
    d = Decision(("opus",), "r", "p")
    if streamed:
        stream = ex.stream(d, REQ, run_id="r", step_id="s")
        with pytest.raises(RateLimited):
            async for _ in stream:
                pass
        assert stream.execution is not None
        out = stream.execution
    else:
        out = await ex.execute(d, REQ, run_id="r", step_id="s")
    assert isinstance(out.error, RateLimited) and out.error.retry_after == 120
    assert [a.status for a in out.attempts] == ["error"] and slept == []


async def test_a_retry_after_past_the_cap_moves_down_the_chain(settings: Settings) -> None:
    primary = script(ServerError("503", status=503, retry_after=600))
    ex, slept = executor(settings, primary, script("from backup"))
    d = Decision(("opus", "nano"), "r", "p", strategy="fallback")
    out = await ex.execute(d, REQ, run_id="r", step_id="s")
    assert out.ok and out.model == "nano" and slept == []


async def test_a_providers_errors_say_where_it_is(settings: Settings) -> None:
    hosted = script(AuthenticationError("HTTP 401 from hosted (http://10.0.0.5/v1): no"))
    hosted.endpoint = "http://10.0.0.5/v1"
    ex, _ = executor(settings, hosted)
    out = await ex.execute(Decision(("opus",), "r", "p"), REQ, run_id="r", step_id="s")
    assert isinstance(out.error, AuthenticationError)
    assert out.error.endpoint == "http://10.0.0.5/v1"


async def test_fallback_chain_moves_across_providers(settings: Settings) -> None:
    primary = script(ServerError("503"))
    backup = script("from backup")
    ex, _ = executor(settings, primary, backup)
    out = await ex.execute(
        Decision(("opus", "nano"), "r", "p", strategy="fallback"), REQ, run_id="r", step_id="s"
    )
    assert out.ok and out.model == "nano"
    assert [(a.model, a.status) for a in out.attempts] == [("opus", "error"), ("nano", "ok")]


async def test_concurrency_limit_per_model(pool_dict: dict) -> None:  # type: ignore[type-arg]
    import asyncio

    from turnout.config import settings_from_dict

    pool_dict["models"]["opus"]["max_concurrency"] = 1
    s = settings_from_dict(pool_dict)
    active = 0
    peak = 0

    async def slow(req: ChatRequest) -> str:
        nonlocal active, peak
        active += 1
        peak = max(peak, active)
        await asyncio.sleep(0.02)
        active -= 1
        return "ok"

    ex = Executor(
        ModelPool(s, providers={"hosted": FunctionProvider(slow), "backup": FunctionProvider(slow)})
    )
    d = Decision(("opus",), "r", "p")
    outs = await asyncio.gather(*[ex.execute(d, REQ, run_id="r", step_id=str(i)) for i in range(4)])
    assert peak == 1 and all(o.ok for o in outs)
    assert max(o.queued_s for o in outs) > 0.03


@pytest.mark.parametrize("attempt", [1, 2, 3, 10])
def test_backoff_is_bounded(attempt: int) -> None:
    r = RetryPolicy(base_delay_s=0.5, max_delay_s=4, jitter=0.25)
    d = r.delay(attempt, ServerError("x"), random.Random(0))
    assert 0 <= d <= 5.0
