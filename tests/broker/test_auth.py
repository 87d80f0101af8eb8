"""Login, renewal and the two-session cap, against the simulator."""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
import logging
import time

import pytest

from tests.broker.conftest import ClientFactory, SimFactory, client_settings, eventually
from trading_gateway.server.broker import (
    AuthError,
    CaptchaRequired,
    EntityChange,
    SyncSnapshot,
    SyncStatus,
    TradovateClient,
)
from trading_gateway.server.broker.events import SyncEvent
from trading_gateway.simulator import Simulator


def calls(sim: Simulator, endpoint: str) -> int:
    return int(sim.control.counters()["calls"].get(endpoint, 0))


async def test_login_once_with_exact_fields(sim: Simulator, client: TradovateClient) -> None:
    assert client.user_id == sim.config.user_id
    expires = client.token_expires_at
    assert expires is not None
    lifetime = (expires - dt.datetime.now(dt.UTC)).total_seconds()
    assert sim.config.token_ttl - 5 < lifetime <= sim.config.token_ttl + 1
    assert calls(sim, "auth/accesstokenrequest") == 1
    assert sim.control.counters()["sessions"] == 1


async def test_bad_password_names_the_settings_and_hides_the_secret(
    sim: Simulator, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    wrong = "not-the-password-123"
    client = TradovateClient(client_settings(sim, password=wrong))
    with pytest.raises(AuthError) as info:
        await client.start()
    await client.aclose()
    assert info.value.setting == "TRADOVATE_USERNAME/TRADOVATE_PASSWORD"
    assert str(info.value).startswith("TRADOVATE_USERNAME/TRADOVATE_PASSWORD rejected: Incorrect")
    assert wrong not in str(info.value) and wrong not in caplog.text
    assert "sim-secret" not in caplog.text
    assert calls(sim, "auth/accesstokenrequest") == 1


async def test_captcha_on_login_stops_without_retrying(sim: Simulator) -> None:
    sim.control.penalize("auth/accesstokenrequest", count=5, p_time=1.0, captcha=True)
    client = TradovateClient(client_settings(sim))
    with pytest.raises(CaptchaRequired) as info:
        await client.start()
    assert "captcha" in str(info.value)
    await asyncio.sleep(0.3)
    await client.aclose()
    assert calls(sim, "auth/accesstokenrequest") == 1
    assert sim.control.counters()["sessions"] == 0


async def test_login_penalty_without_captcha_is_sat_out(
    sim: Simulator, make_client: ClientFactory
) -> None:
    sim.control.penalize("auth/accesstokenrequest", count=1, p_time=1.0)
    started = time.monotonic()
    client = await make_client(sim)
    assert time.monotonic() - started >= 0.9
    assert client.user_id == sim.config.user_id
    assert calls(sim, "auth/accesstokenrequest") == 2  # the penalty, then the ticket
    assert sim.control.counters()["sessions"] == 1


async def test_dead_token_recovery_is_single_flight(
    sim: Simulator, client: TradovateClient
) -> None:
    accounts = await client.accounts()
    sim.control.expire_tokens()  # Tradovate-side: every token dead, our clock says alive
    sim.control.reset_counters()
    results = await asyncio.gather(*(client.positions([a.id]) for a in accounts * 3))
    assert len(results) == len(accounts) * 3
    assert calls(sim, "auth/renewaccesstoken") == 1  # one shared check (401: token dead)
    assert calls(sim, "auth/accesstokenrequest") == 1  # then one shared login
    assert client.token_manager.logins == 2


async def test_renewal_under_load_with_a_four_second_token(
    make_sim: SimFactory, make_client: ClientFactory
) -> None:
    sim = await make_sim(token_ttl=4.0)
    client = await make_client(sim)
    first_expiry = client.token_expires_at
    sync = client.user_sync()
    await sync.start()
    md = client.market_data()
    await md.start()
    contract = sim.control.contracts()[0]
    await md.subscribe(contract["id"])
    accounts = [a.id for a in await client.accounts()]
    errors: list[BaseException] = []
    done = asyncio.Event()
    rest_calls = 0

    async def hammer() -> None:
        nonlocal rest_calls
        while not done.is_set():
            try:
                await client.positions(accounts)
                await client.cash_balances(accounts[:1])
                rest_calls += 2
            except Exception as exc:
                errors.append(exc)
            await asyncio.sleep(0.01)

    events: list[SyncEvent] = []

    async def consume() -> None:
        async for event in sync.events():
            events.append(event)

    workers = [asyncio.create_task(hammer()) for _ in range(4)]
    consumer = asyncio.create_task(consume())
    await asyncio.sleep(9.0)  # more than two token lifetimes
    done.set()
    await asyncio.gather(*workers)
    order_id = sim.control.place_order(accounts[0], contract["name"], "Buy", 1)

    def order_arrived() -> bool:
        return any(
            isinstance(e, EntityChange) and e.entity_type == "order" and e.entity.id == order_id
            for e in events
        ) or any(
            isinstance(e, SyncSnapshot) and order_id in {o.id for o in e.orders} for e in events
        )

    # Waits, rather than a fixed sleep: a token rotation may be mid-reconnect right now.
    await eventually(order_arrived)
    await eventually(lambda: sync.connected and md.connected)
    consumer.cancel()
    await asyncio.gather(consumer, return_exceptions=True)

    assert errors == []
    assert rest_calls > 100
    manager = client.token_manager
    assert manager.renewals >= 3 and manager.logins == 1
    assert calls(sim, "auth/accesstokenrequest") == 1
    assert sim.control.counters()["sessions"] == 1
    assert client.token_expires_at is not None and first_expiry is not None
    assert client.token_expires_at > first_expiry + dt.timedelta(seconds=5)
    # The sync stream stayed whole: every outage was followed by a fresh snapshot, and
    # the order placed at the end arrived as a change.
    assert isinstance(events[0], SyncSnapshot)
    for before, after in itertools.pairwise(events):
        if isinstance(before, SyncStatus):
            assert isinstance(after, SyncSnapshot) and after.reconnect
    # Chosen behaviour: after each renewal both sockets re-authorize on the open
    # connection; neither reconnects, and the sync stream never resyncs.
    assert [e for e in events if isinstance(e, SyncStatus | SyncSnapshot)] == events[:1]
    assert sync.socket.connects == 1 and md.socket.connects == 1
    assert sync.socket.reauthorizations >= 3 and md.socket.reauthorizations >= 3
    assert calls(sim, "ws:user/syncrequest") == 1
    assert order_arrived()
    assert md.subscriptions == {contract["id"]: 1}


async def test_two_session_cap_never_evicts_ourselves(
    sim: Simulator, client: TradovateClient
) -> None:
    first_token = client.token_manager.current
    assert first_token is not None
    sync = client.user_sync()
    await sync.start()
    md = client.market_data()
    await md.start()
    for round_ in range(1, 4):
        sim.control.drop_sockets()
        await eventually(lambda: min(sync.socket.connects, md.socket.connects) > round_)  # noqa: B023
    sim.control.send_shutdown("Maintenance")
    await eventually(lambda: sync.socket.connects > 4 and md.socket.connects > 4)
    await client.accounts()
    assert calls(sim, "auth/accesstokenrequest") == 1
    assert sim.control.counters()["sessions"] == 1
    assert sync.connected and md.connected
    # The very first token is still the one in use, and Tradovate still honours it.
    assert client.token_manager.current is first_token
    assert sim.core.sessions.lookup(first_token.access_token) is not None
