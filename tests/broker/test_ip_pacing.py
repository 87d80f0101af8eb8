"""Two logins, one per-IP budget: two TradovateClients for two simulator users share one
IpPacer. A 429 lockout of one login never slows the other; the shared bucket bounds the
combined rate the simulator sees; a caller waiting on it keeps its deadline."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.broker.conftest import SimFactory, client_settings
from trading_gateway.server.broker import (
    IpPacer,
    RateLimitedError,
    TradovateClient,
    UpstreamTimeout,
)
from trading_gateway.server.deadline import Deadline
from trading_gateway.simulator import Simulator
from trading_gateway.simulator.config import numbered_users

A, B = "sim-user-1", "sim-user-2"


@pytest.fixture
async def two_users(make_sim: SimFactory) -> Simulator:
    return await make_sim(users=numbered_users(2, 2), endpoint_limits={})


@contextlib.asynccontextmanager
async def logins(
    sim: Simulator, pacer: IpPacer | None, **overrides: Any
) -> AsyncIterator[tuple[TradovateClient, TradovateClient]]:
    """Started clients for users A and B, both handed `pacer`."""
    clients = []
    async with contextlib.AsyncExitStack() as stack:
        for name in (A, B):
            creds = sim.credentials_for(name)
            settings = client_settings(
                sim, username=creds["name"], password=creds["password"], **overrides
            )
            client = TradovateClient(settings, ip_pacer=pacer)
            await stack.enter_async_context(client)
            clients.append(client)
        yield clients[0], clients[1]


def account_list_calls(sim: Simulator) -> int:
    return int(sim.control.counters()["calls"].get("account/list", 0))


async def test_a_locked_out_login_takes_no_shared_tokens_and_never_slows_the_other(
    two_users: Simulator,
) -> None:
    # One shared token a second, four saved up: any token A took would make B wait ~1 s.
    pacer = IpPacer(rate=1.0, burst=4)
    async with logins(two_users, pacer) as (a, b):
        await asyncio.sleep(2.0)  # refill what the two logins took
        two_users.control.burst_429(1, endpoint="account/list", user=A)
        with pytest.raises(RateLimitedError):
            await a.accounts()  # the simulator's 429 opens A's circuit (60 s)
        assert a.rate_limited_for > 30 and b.rate_limited_for == 0
        before = pacer.available()
        for _ in range(20):  # A keeps asking while locked out: refused without being sent
            with pytest.raises(RateLimitedError):
                await a.accounts()
        assert pacer.available() >= before  # A's refused calls took no shared token
        sent = account_list_calls(two_users)
        started = time.monotonic()
        for _ in range(3):
            assert len(await b.accounts(deadline=Deadline.after(5.0))) == 2
        elapsed = time.monotonic() - started
        print(f"\nB's 3 calls during A's lockout: {elapsed * 1000:.0f} ms")
        assert elapsed < 0.5  # no wait for a shared token
        assert account_list_calls(two_users) == sent + 3  # only B's calls reached Tradovate
        assert pacer.delayed == 0


async def _hammer(client: TradovateClient, until: float, answered: list[int]) -> None:
    while time.monotonic() < until:
        await client.accounts(deadline=Deadline.after(5.0))
        answered[0] += 1


@pytest.mark.parametrize("shared", [True, False], ids=["shared-bucket", "own-buckets-only"])
async def test_the_shared_bucket_keeps_two_logins_under_the_ip_limit(
    two_users: Simulator, shared: bool
) -> None:
    """Each login alone (10 calls a second) stays under the simulator's per-IP limit (15 a
    second); both together exceed it unless their calls also draw on one shared bucket (8 a
    second)."""
    rate, burst, seconds = 8.0, 1, 2.0
    pacer = IpPacer(rate=rate, burst=burst) if shared else None
    async with logins(two_users, pacer, rate_per_second=10.0, rate_burst=1) as (a, b):
        await asyncio.sleep(0.3)
        two_users.control.reset_counters()
        two_users.control.set_ip_limits([[15, 1.0]])
        counts = {A: [0], B: [0]}
        until = time.monotonic() + seconds
        started = time.monotonic()
        workers = [
            _hammer(client, until, counts[name])
            for client, name in ((a, A), (b, B))
            for _ in range(3)
        ]
        results = await asyncio.gather(*workers, return_exceptions=True)
        elapsed = time.monotonic() - started
    errors = [r for r in results if isinstance(r, BaseException)]
    sent = account_list_calls(two_users)
    print(
        f"\n{'shared' if shared else 'own only'}: {sent} calls in {elapsed:.2f} s "
        f"(A {counts[A][0]}, B {counts[B][0]}), errors {[type(e).__name__ for e in errors]}"
    )
    if not shared:
        # The control: two logins at their own pace trip the per-IP limit.
        assert any(isinstance(e, RateLimitedError) for e in errors)
        return
    assert errors == []
    assert sent == counts[A][0] + counts[B][0]
    assert sent <= burst + rate * elapsed + 1  # the shared bucket's bound
    assert sent >= 0.5 * rate * seconds  # and it is used, not starved
    assert min(counts[A][0], counts[B][0]) >= 0.3 * sent  # both logins get their turns


async def test_a_wait_on_the_shared_bucket_keeps_the_callers_deadline(
    two_users: Simulator,
) -> None:
    pacer = IpPacer(rate=1.0, burst=1)
    async with logins(two_users, pacer, rate_per_second=100.0, rate_burst=5) as (a, b):
        await asyncio.sleep(1.1)
        await a.accounts()  # A spends the one shared token
        own = b.stats().rate_tokens
        started = time.monotonic()
        with pytest.raises(UpstreamTimeout) as refused:
            await b.accounts(deadline=Deadline.after(0.3))
        assert time.monotonic() - started < 0.2  # refused at once, not at the deadline
        assert "shared per-IP rate limit" in refused.value.message
        assert pacer.refused == 1
        after = b.stats().rate_tokens
        assert own is not None and after is not None and after >= own - 0.01  # refunded
        # A deadline that covers the wait is served once the token accrues.
        started = time.monotonic()
        assert len(await b.accounts(deadline=Deadline.after(3.0))) == 2
        waited = time.monotonic() - started
        print(f"\nwaited {waited:.2f} s for a shared token")
        assert 0.4 <= waited <= 1.5
        assert pacer.delayed >= 1


async def test_a_caller_cancelled_while_waiting_returns_both_tokens(
    two_users: Simulator,
) -> None:
    pacer = IpPacer(rate=0.5, burst=1)
    async with logins(two_users, pacer, rate_per_second=100.0, rate_burst=5) as (a, b):
        await asyncio.sleep(0.1)
        await a.accounts()
        shared_before = pacer.available()
        own_before = b.stats().rate_tokens
        waiting = asyncio.create_task(b.accounts(deadline=Deadline.after(10.0)))
        await asyncio.sleep(0.2)
        assert pacer.available() < shared_before - 0.5  # its reservation is taken
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
        assert pacer.available() >= shared_before - 0.01
        own_after = b.stats().rate_tokens
        assert own_before is not None and own_after is not None
        assert own_after >= own_before - 0.01
