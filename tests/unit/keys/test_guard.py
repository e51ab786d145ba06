"""The request gate with in-process state over a real SQLite key store: 401, 403, 429
(rate and budget) in OpenAI's shape with its headers; holds settled and released; a
revocation seen at once through the key-change generation."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from turnout.keys import KeyStore, Period
from turnout.keys.cache import CachedKeys, LocalKeyEvents
from turnout.keys.guard import KeyGuard
from turnout.keys.refusals import Refused
from turnout.limits import MemoryBudgets, MemoryRateLimiter
from turnout.limits.budget import PaidCall
from turnout.limits.gate import LocalGate
from turnout.pricing.cost import Price
from turnout.tracing.sqlite import SQLiteStore
from turnout.types import ChatRequest, Message

REQ = ChatRequest(messages=(Message("user", "x" * 376),), max_tokens=100)
PRICE = Price.of(5, 25)  # the request's estimate: 100 * 5 + 100 * 25 per million = $0.003


@pytest.fixture
def setup(tmp_path: Path):  # type: ignore[no-untyped-def]
    store = SQLiteStore(tmp_path / "traces.db")
    keys = KeyStore(store)
    gate = LocalGate(LocalKeyEvents(), MemoryRateLimiter(), MemoryBudgets())
    guard = KeyGuard(CachedKeys(keys), gate)
    yield keys, guard
    store.close()


async def admit(guard: KeyGuard, secret: str | None, policy: str | None = "rules",
                models: tuple[str, ...] = ("haiku",)):  # type: ignore[no-untyped-def]  # fmt: skip
    return await guard.admit(
        f"Bearer {secret}" if secret else None, REQ, policy=policy, models=models,
        plans=[(PaidCall(m, PRICE),) for m in models or ("haiku",)],
    )  # fmt: skip


async def test_unauthorised_and_forbidden(setup) -> None:  # type: ignore[no-untyped-def]
    keys, guard = setup
    secret, _ = keys.create("team-a", policies=("rules",), models=("haiku",))
    assert (await admit(guard, secret)).key.name == "team-a"
    for bad, code in ((None, "invalid_api_key"), ("tk-wrong-wrong-wrong", "invalid_api_key")):
        with pytest.raises(Refused) as info:
            await admit(guard, bad)
        assert (info.value.refusal.status, info.value.refusal.code) == (401, code)
    with pytest.raises(Refused) as info:
        await admit(guard, secret, policy="cheap_first")
    assert info.value.refusal.status == 403 and info.value.refusal.code == "policy_not_allowed"
    with pytest.raises(Refused) as info:
        await admit(guard, secret, policy=None, models=("opus",))
    assert info.value.refusal.code == "model_not_allowed"
    body = info.value.refusal.body()
    assert set(body["error"]) == {"message", "type", "param", "code"}
    assert secret not in repr(body)


async def test_revocation_is_seen_at_once(setup) -> None:  # type: ignore[no-untyped-def]
    keys, guard = setup
    secret, _ = keys.create("team-a")
    await admit(guard, secret)
    await admit(guard, secret)
    assert guard.keys.reads == 1  # cached
    keys.revoke("team-a")
    await guard.key_changed()
    with pytest.raises(Refused) as info:
        await admit(guard, secret)
    assert info.value.refusal.code == "key_revoked"


async def test_rate_limit_headers(setup) -> None:  # type: ignore[no-untyped-def]
    keys, guard = setup
    secret, _ = keys.create("team-a", rpm=2, tpm=10_000)
    first = await admit(guard, secret)
    assert first.headers["x-ratelimit-remaining-requests"] == "1"
    assert first.headers["x-ratelimit-remaining-tokens"] == str(10_000 - 200)
    await admit(guard, secret)
    with pytest.raises(Refused) as info:
        await admit(guard, secret)
    refusal = info.value.refusal
    assert (refusal.status, refusal.code, refusal.type) == (429, "rate_limit_exceeded", "requests")
    assert refusal.headers["x-ratelimit-remaining-requests"] == "0"
    assert int(refusal.headers["retry-after"]) >= 59


async def test_started_the_key_is_known_at_once_and_the_outcome_is_kept(setup) -> None:  # type: ignore[no-untyped-def]
    keys, guard = setup
    secret, _ = keys.create("team-a", rpm=1, models=("haiku",))
    plans = [(PaidCall("haiku", PRICE),)]
    admitting = await guard.start(f"Bearer {secret}", REQ, policy="rules", models=(), plans=plans)
    assert admitting.key.name == "team-a" and admitting.key.models == ("haiku",)
    assert admitting.admission is None  # not decided until awaited
    admission = await admitting
    assert await admitting is admission is admitting.admission  # decided once
    refused = await guard.start(f"Bearer {secret}", REQ, policy="rules", models=(), plans=plans)
    for _ in range(2):  # the second request of the minute, refused however often awaited
        with pytest.raises(Refused) as info:
            await refused
        assert info.value.refusal.code == "rate_limit_exceeded"
    assert refused.admission is None
    with pytest.raises(Refused) as info:  # the key itself is checked when started
        await guard.start(f"Bearer {secret}", REQ, policy=None, models=("opus",), plans=plans)
    assert info.value.refusal.code == "model_not_allowed"


async def test_budget_reserve_settle_release(setup) -> None:  # type: ignore[no-untyped-def]
    keys, guard = setup
    secret, _ = keys.create("team-a", budget_usd=Decimal("0.01"), period=Period.DAY)
    held = [await admit(guard, secret) for _ in range(3)]  # 3 x $0.003 held
    assert "x-turnout-budget-warning" in held[2].headers  # 90% held
    with pytest.raises(Refused) as info:
        await admit(guard, secret)
    refusal = info.value.refusal
    assert (refusal.status, refusal.code) == (429, "budget_exceeded")
    assert int(refusal.headers["retry-after"]) > 0 and "resets at" in refusal.message
    await guard.finish(held[0], None)  # failed: released
    guard.finish_soon(held[1], Decimal("0.001"))  # settled below its estimate, not awaited
    after = await admit(guard, secret)
    assert after.headers["x-turnout-budget-remaining-usd"] == "0.003"  # 0.01 - 0.001 - 2 x 0.003


async def test_a_cut_answer_goes_on_only_within_holds_grown_on_the_budget(setup) -> None:  # type: ignore[no-untyped-def]
    """A streamed answer cut mid-way and continued: its holds grow by what they lack for
    what it has cost plus the next call; past the budget, nothing more is held and it
    may not go on; settled, the grown holds are given back and the cost counts once."""
    keys, guard = setup
    secret, _ = keys.create("team-a", budget_usd=Decimal("0.01"), period=Period.DAY)
    first = await admit(guard, secret)  # $0.003 held
    assert await guard.grow(first, Decimal("0.002"))  # within its hold: nothing more
    assert first.grown == [] and first.held_pico == 3 * 10**9
    assert await guard.grow(first, Decimal("0.005"))  # $0.002 more held
    assert first.held_pico == 5 * 10**9
    other = await admit(guard, secret)  # $0.003: $0.008 held in all
    assert not await guard.grow(other, Decimal("0.006"))  # $0.003 more would pass $0.01
    assert other.grown == []
    guard.finish_soon(first, Decimal("0.0045"))
    guard.finish_soon(other, None)
    after = await admit(guard, secret)
    assert after.headers["x-turnout-budget-remaining-usd"] == "0.0025"  # 0.01 - 0.0045 - 0.003


async def test_a_request_taken_back_counts_nothing_and_holds_nothing(setup) -> None:  # type: ignore[no-untyped-def]
    keys, guard = setup
    secret, _ = keys.create("team-a", rpm=1, tpm=10_000, budget_usd=Decimal("0.003"))
    first = await admit(guard, secret)  # the one request a minute, $0.003: all the budget
    guard.take_back_soon(first)  # it called nothing
    await guard.given_back()
    again = await admit(guard, secret)
    assert again.headers["x-ratelimit-remaining-requests"] == "0"
    assert again.headers["x-turnout-budget-remaining-usd"] == "0"
    with pytest.raises(Refused):
        await admit(guard, secret)


async def test_a_request_larger_than_the_whole_budget_is_not_told_to_wait(setup) -> None:  # type: ignore[no-untyped-def]
    keys, guard = setup
    secret, _ = keys.create("tiny", budget_usd=Decimal("0.001"), period=Period.WEEK)
    with pytest.raises(Refused) as info:
        await admit(guard, secret)  # $0.003 held: more than the week's $0.001, ever
    refusal = info.value.refusal
    assert (refusal.status, refusal.code) == (429, "budget_exceeded")
    assert "retry-after" not in refusal.headers and refusal.headers["x-should-retry"] == "false"
    assert "alone is more than the whole budget" in refusal.message


async def test_an_answer_warns_of_the_budget_as_its_remaining_header_counts(setup) -> None:  # type: ignore[no-untyped-def]
    """Admitted, the warning counts the hold; answered, it counts what the request cost,
    as the remaining-budget header beside it does."""
    keys, guard = setup
    secret, _ = keys.create("team-a", budget_usd=Decimal("0.01"), period=Period.DAY)
    third = [await admit(guard, secret) for _ in range(3)][-1]  # $0.009 held
    assert "90%" in third.headers["x-turnout-budget-warning"]
    cheap = third.headers_after(Decimal("0.001"))  # $0.007 used: below 80%
    assert cheap["x-turnout-budget-remaining-usd"] == "0.003"
    assert "x-turnout-budget-warning" not in cheap
    dear = third.headers_after(Decimal("0.0025"))  # $0.0085 used
    assert dear["x-turnout-budget-remaining-usd"] == "0.0015"
    assert "85%" in dear["x-turnout-budget-warning"]


async def test_a_change_elsewhere_is_seen_through_the_generation(setup) -> None:  # type: ignore[no-untyped-def]
    keys, guard = setup
    secret, _ = keys.create("team-a", budget_usd=Decimal("1"))
    await admit(guard, secret)
    keys.update("team-a", budget_usd=Decimal("0.001"))  # another process changed it...
    await guard.gate.bump()  # ...and bumped the shared generation
    with pytest.raises(Refused) as info:
        await admit(guard, secret)
    assert info.value.refusal.code == "budget_exceeded"
    assert guard.keys.reads == 2


async def test_a_key_loosened_elsewhere_is_let_through_at_once(setup) -> None:  # type: ignore[no-untyped-def]
    keys, guard = setup
    secret, _ = keys.create("team-a", policies=("strong",))
    for _ in range(3):  # refused on the cached record: no database read each time
        with pytest.raises(Refused) as info:
            await admit(guard, secret)
        assert info.value.refusal.code == "policy_not_allowed"
        assert info.value.refusal.key == "team-a"  # the name, for metrics
    assert guard.keys.reads <= 2
    keys.update("team-a", policies=())  # another process loosened it...
    await guard.gate.bump()  # ...and bumped the shared generation
    assert (await admit(guard, secret)).key.policies == ()


async def test_a_renewed_key_is_let_through_at_once(setup) -> None:  # type: ignore[no-untyped-def]
    import asyncio
    import time

    keys, guard = setup
    secret, _ = keys.create("team-a", expires_at=time.time() + 0.05)
    await asyncio.sleep(0.06)
    with pytest.raises(Refused) as info:
        await admit(guard, secret)
    assert (info.value.refusal.code, info.value.refusal.key) == ("key_expired", "team-a")
    keys.update("team-a", expires_at=time.time() + 3600)
    await guard.gate.bump()
    assert (await admit(guard, secret)).key.name == "team-a"


async def test_refusals_without_a_change_read_nothing_more(setup) -> None:  # type: ignore[no-untyped-def]
    keys, guard = setup
    secret, _ = keys.create("team-a", policies=("strong",))
    for _ in range(5):
        with pytest.raises(Refused):
            await admit(guard, secret)
    assert guard.keys.reads == 2  # the first read, and one more to learn the generation
    with pytest.raises(Refused):
        await admit(guard, "tk-unknown-unknown-unknown")
    with pytest.raises(Refused):
        await admit(guard, "tk-unknown-unknown-unknown")
    assert guard.keys.reads == 3  # an unknown key is cached too


async def test_a_key_bound_to_policies_cannot_name_a_model_directly(setup) -> None:  # type: ignore[no-untyped-def]
    keys, guard = setup
    secret, _ = keys.create("team-a", policies=("rules",))
    assert (await admit(guard, secret, policy="rules", models=())).key.name == "team-a"
    with pytest.raises(Refused) as info:
        await admit(guard, secret, policy=None, models=("opus",))
    assert (info.value.refusal.status, info.value.refusal.code) == (403, "model_not_allowed")


async def test_the_budget_hold_is_priced_by_the_models_the_key_may_reach(setup) -> None:  # type: ignore[no-untyped-def]
    keys, guard = setup
    secret, _ = keys.create("team-a", budget_usd=Decimal("1"), models=("haiku",))
    prices = {"haiku": PRICE, "opus": Price.of(50, 250)}  # opus is ten times dearer
    admission = await guard.admit(f"Bearer {secret}", REQ, policy="rules", models=(),
                                  plans=[(PaidCall(m, p),) for m, p in prices.items()])  # fmt: skip
    assert admission.reservation is not None
    assert admission.reservation.estimate_pico == 3_000_000_000  # $0.003: haiku's, not opus'
    anything, _ = keys.create("team-b", budget_usd=Decimal("1"))
    vote = [(PaidCall("haiku", PRICE), PaidCall("opus", prices["opus"]), PaidCall("h2", PRICE))]
    holds = []
    for key in (secret, anything):
        together = await guard.admit(f"Bearer {key}", REQ, policy="vote", models=(), plans=vote)
        assert together.reservation is not None
        holds.append(together.reservation.estimate_pico)
    # every member the key may use: haiku alone; haiku + opus + h2 ($0.003 + $0.03 + $0.003)
    assert holds == [3_000_000_000, 36_000_000_000]


async def test_a_budget_refusal_says_what_would_pass_and_what_is_left(setup) -> None:  # type: ignore[no-untyped-def]
    keys, guard = setup
    secret, _ = keys.create("team-a", budget_usd=Decimal("0.004"), period=Period.TOTAL)
    await admit(guard, secret)  # $0.003 held
    with pytest.raises(Refused) as info:
        await admit(guard, secret)
    message = info.value.refusal.message
    assert "this request (up to $0.003000) would pass the budget of $0.004 in total" in message
    assert "($0.001000 left)" in message and "never resets" in message


async def test_tokens_without_max_tokens_count_the_prompt_then_what_was_used(setup) -> None:  # type: ignore[no-untyped-def]
    keys, guard = setup
    secret, _ = keys.create("team-a", tpm=400)
    plain = ChatRequest(messages=(Message("user", "x" * 376),))  # 100 prompt tokens

    async def ask():  # type: ignore[no-untyped-def]
        return await guard.admit(f"Bearer {secret}", plain, policy="rules", models=(),
                                 plans=[(PaidCall("haiku", PRICE),)])  # fmt: skip

    first = await ask()
    assert first.headers["x-ratelimit-remaining-tokens"] == "300"  # no 1,024 invented
    guard.finish_soon(first, Decimal(0), 250)  # its answer was long: 250 tokens in all
    second = await ask()
    assert second.headers["x-ratelimit-remaining-tokens"] == "50"  # 250 + 100
    guard.finish_soon(second, Decimal(0), 30)  # a short one gives the rest back
    third = await ask()
    assert third.headers["x-ratelimit-remaining-tokens"] == "20"  # 250 + 30 + 100
    guard.finish_soon(third, Decimal(0), None)  # unknown (abandoned): the count stays
    with pytest.raises(Refused) as info:
        await ask()
    assert info.value.refusal.type == "tokens"


async def test_a_budget_refusal_without_max_tokens_says_what_it_held(setup) -> None:  # type: ignore[no-untyped-def]
    keys, guard = setup
    secret, _ = keys.create("team-a", budget_usd=Decimal("0.01"), period=Period.DAY)
    plain = ChatRequest(messages=(Message("user", "hi"),))  # 1,024 output tokens held
    plans = [(PaidCall("opus", Price.of(15, 75)),)]  # about $0.077
    with pytest.raises(Refused) as info:
        await guard.admit(f"Bearer {secret}", plain, policy="rules", models=(), plans=plans)
    message = info.value.refusal.message
    assert "max_tokens is not set, so 1024 output tokens are held" in message
    assert info.value.refusal.headers["x-should-retry"] == "false"


async def test_a_request_given_up_while_decided_again_gives_that_hold_back(setup) -> None:  # type: ignore[no-untyped-def]
    """A key changed elsewhere sends a request through a second pass of the gate; a client
    that hangs up during it leaves the pass to finish, and what it held is given back."""
    import asyncio

    from turnout.limits.gate import Later

    keys, guard = setup
    secret, _ = keys.create("team-a", budget_usd=Decimal("0.006"), period=Period.DAY)
    await guard.finish(await admit(guard, secret), None)  # the key cached, nothing held
    local, go, started = guard.gate, asyncio.Event(), [0]

    class SecondPassWaits:  # the in-process gate; the request's second pass waits for go
        def __getattr__(self, name: str):  # type: ignore[no-untyped-def]
            return getattr(local, name)

        def start_admit(self, *args, **kwargs) -> Later[object]:  # type: ignore[no-untyped-def]
            started[0] += 1
            later = local.start_admit(*args, **kwargs)
            if started[0] == 1:
                return later  # type: ignore[no-any-return]

            async def waits() -> object:
                await go.wait()
                return await later

            return Later(waits)

    keys.update("team-a", budget_usd=Decimal("0.006"))  # changed elsewhere...
    await local.bump()  # ...and the shared generation bumped
    guard.gate = SecondPassWaits()  # type: ignore[assignment]
    admitting = await guard.start(f"Bearer {secret}", REQ, policy="rules", models=(),
                                  plans=[(PaidCall("haiku", PRICE),)])  # fmt: skip
    waiting = asyncio.ensure_future(_awaited(admitting))
    for _ in range(20):
        await asyncio.sleep(0)
    assert started[0] == 2 and not waiting.done()  # in its second pass
    waiting.cancel()  # the client hung up
    admitting.abandon()
    go.set()  # the second pass holds $0.003...
    for _ in range(20):
        await asyncio.sleep(0)
    guard.gate = local
    held = [await admit(guard, secret) for _ in range(2)]  # ...given back: $0.006 is free
    assert held[1].headers["x-turnout-budget-remaining-usd"] == "0"


async def _awaited(admitting: object) -> object:
    return await admitting  # type: ignore[misc]
