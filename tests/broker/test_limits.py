"""Rate-limit discipline against the simulator: p-tickets, 429, 423, the client bucket."""

from __future__ import annotations

import asyncio
import time
from decimal import Decimal

import pytest

from tests.broker.conftest import ClientFactory, eventually
from trading_gateway.server.broker import (
    CaptchaRequired,
    LockedOutError,
    PenaltyError,
    RateLimitedError,
    TradovateClient,
    UpstreamTimeout,
)
from trading_gateway.server.broker.errors import is_fatal
from trading_gateway.server.deadline import Deadline
from trading_gateway.simulator import Simulator


def calls(sim: Simulator, endpoint: str) -> int:
    return int(sim.control.counters()["calls"].get(endpoint, 0))


async def first_account(client: TradovateClient) -> int:
    return (await client.accounts())[0].id


async def test_get_penalty_is_sat_out_then_resent(sim: Simulator, client: TradovateClient) -> None:
    account = await first_account(client)
    expected = await client.positions([account])
    sim.control.reset_counters()
    sim.control.penalize("position/deps", count=1, p_time=1.0)
    started = time.monotonic()
    assert await client.positions([account]) == expected
    assert time.monotonic() - started >= 0.9
    assert calls(sim, "position/deps") == 2


async def test_penalty_longer_than_the_deadline_fails_at_once(
    sim: Simulator, client: TradovateClient
) -> None:
    account = await first_account(client)
    sim.control.penalize("position/deps", count=1, p_time=3.0)
    started = time.monotonic()
    with pytest.raises(PenaltyError) as info:
        await client.positions([account], deadline=Deadline.after(1.0))
    assert time.monotonic() - started < 0.9  # did not sleep into the deadline
    assert 2.0 <= info.value.retry_after <= 3.0
    assert info.value.reason == "BROKER_PENALTY"


async def test_post_penalty_is_resent_with_the_ticket(
    sim: Simulator, client: TradovateClient
) -> None:
    account = (await client.accounts())[0]
    contract = sim.control.contracts()[0]
    price = Decimal(str(contract["price"])) - 50 * Decimal(str(contract["tickSize"]))
    before = len(await client.orders([account.id]))
    sim.control.penalize("order/placeorder", count=1, p_time=1.0)
    result = await client.place_order(
        account.id, account.name, contract["name"], "Sell", 1, "Limit", price=price
    )
    assert result.order_id is not None
    assert calls(sim, "order/placeorder") == 2
    assert len(await client.orders([account.id])) == before + 1  # placed exactly once


async def test_captcha_penalty_on_an_endpoint_is_typed(
    sim: Simulator, client: TradovateClient
) -> None:
    account = await first_account(client)
    sim.control.penalize("cashbalance/deps", count=1, p_time=1.0, captcha=True)
    with pytest.raises(CaptchaRequired):
        await client.cash_balances([account])


async def test_429_opens_the_circuit_and_fails_fast(
    sim: Simulator, make_client: ClientFactory
) -> None:
    client = await make_client(sim, rate_limited_backoff=0.5)
    account = await first_account(client)
    sim.control.burst_429(1, endpoint="position/deps")
    with pytest.raises(RateLimitedError) as info:
        await client.positions([account])
    assert 0 < info.value.retry_after <= 0.5
    assert info.value.reason == "BROKER_RATE_LIMITED"
    sim.control.reset_counters()
    for call in (client.accounts(), client.orders([account]), client.positions([account])):
        with pytest.raises(RateLimitedError) as fast:
            await call
        assert 0 < fast.value.retry_after <= 0.5
    assert sim.control.counters()["total"] == 0  # nothing reached Tradovate
    assert client.rate_limited_for > 0
    await asyncio.sleep(0.55)
    assert await client.positions([account]) is not None
    sim.control.burst_429(1, endpoint="position/deps")
    with pytest.raises(RateLimitedError) as again:
        await client.positions([account])
    assert again.value.retry_after <= 0.5  # a success in between reset the back-off


async def test_423_stops_every_call(sim: Simulator, make_client: ClientFactory) -> None:
    client = await make_client(sim, locked_out_backoff=30.0)
    account = await first_account(client)
    sim.control.set_error_rate(1.0, status=423, endpoint="order/deps")
    with pytest.raises(LockedOutError):
        await client.orders([account])
    sim.control.set_error_rate(0.0, endpoint="order/deps")
    sim.control.reset_counters()
    with pytest.raises(LockedOutError) as info:
        await client.accounts()
    assert info.value.retry_after is not None and info.value.retry_after > 25
    assert sim.control.counters()["total"] == 0


async def test_client_bucket_fails_fast_when_the_slot_is_past_the_deadline(
    sim: Simulator, make_client: ClientFactory
) -> None:
    client = await make_client(sim, rate_per_second=1.0, rate_burst=1)
    await client.accounts()
    sim.control.reset_counters()
    started = time.monotonic()
    with pytest.raises(UpstreamTimeout):
        await client.accounts(deadline=Deadline.after(0.2))
    assert time.monotonic() - started < 0.5  # the next slot is ~1 s away: no waiting for it
    assert sim.control.counters()["total"] == 0


async def test_no_other_call_goes_to_an_endpoint_sitting_out_a_ticket(
    sim: Simulator, client: TradovateClient
) -> None:
    account = await first_account(client)
    expected = await client.positions([account])
    sim.control.reset_counters()
    sim.control.penalize("position/deps", count=1, p_time=1.0)
    holder = asyncio.create_task(client.positions([account]))
    await eventually(lambda: calls(sim, "position/deps") == 1)
    others = [asyncio.create_task(client.positions([account])) for _ in range(3)]
    started = time.monotonic()
    with pytest.raises(PenaltyError) as short:  # cannot wait that long: fails at once
        await client.positions([account], deadline=Deadline.after(0.3))
    assert time.monotonic() - started < 0.2
    assert 0.3 <= short.value.retry_after <= 1.0
    await asyncio.sleep(0.5)
    during = calls(sim, "position/deps")
    print(f"\n4 callers, 1 p-ticket of 1 s: {during} call(s) while it was sat out")
    assert during == 1  # nothing else went while the ticket ran
    assert await holder == expected
    for other in others:
        assert await other == expected
    assert calls(sim, "position/deps") == 2 + 3  # the ticket's re-send, then the others


async def test_a_captcha_on_a_data_endpoint_stops_every_call(
    sim: Simulator, make_client: ClientFactory
) -> None:
    client = await make_client(sim, captcha_backoff=30.0)
    account = await first_account(client)
    sim.control.penalize("cashbalance/deps", count=1, p_time=1.0, captcha=True)
    with pytest.raises(CaptchaRequired) as first:
        await client.cash_balances([account])
    assert first.value.retry_after is not None and 29 < first.value.retry_after <= 30
    assert not is_fatal(first.value)  # time-bounded: the circuit enforces the wait
    sim.control.reset_counters()
    for call in (client.accounts(), client.positions([account]), client.cash_balances([account])):
        with pytest.raises(CaptchaRequired) as again:
            await call
        assert again.value.retry_after is not None and again.value.retry_after > 25
    after = sim.control.counters()["total"]
    print(f"\ncaptcha on cashBalance/deps: {after} upstream call(s) for 3 reads after it")
    assert after == 0  # nothing reached Tradovate
    circuit = client.circuit()
    assert circuit is not None and circuit.reason == "BROKER_CAPTCHA_REQUIRED"
    assert client.rate_limited_for > 25
