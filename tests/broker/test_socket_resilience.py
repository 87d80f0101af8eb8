"""Sockets under drops and token renewal, against the simulator.

Run with ``-s`` to see the outage after each drop and the other figures.
"""

from __future__ import annotations

import asyncio
import logging
import time

import pytest

from tests.broker.conftest import ClientFactory, SimFactory, eventually
from trading_gateway.server.broker import SyncSnapshot, TradovateClient, UserSync
from trading_gateway.simulator import Simulator

pytestmark = pytest.mark.timeout(90)

#: The production reconnect settings (tests elsewhere shorten them).
PRODUCTION_BACKOFF = {
    "reconnect_initial": 0.5,
    "reconnect_max": 30.0,
    "reconnect_stable_after": 30.0,
}


def calls(sim: Simulator, endpoint: str) -> int:
    return int(sim.control.counters()["calls"].get(endpoint, 0))


async def _outage_after_drop(sim: Simulator, sync: UserSync) -> float:
    """Drop the user socket once it is synced; seconds until it is synced again."""
    await eventually(lambda: sync.connected)
    dropped = time.monotonic()
    sim.control.drop_sockets("user")
    await eventually(lambda: not sync.connected, within=5.0)
    await eventually(lambda: sync.connected, within=60.0)
    return time.monotonic() - dropped


async def test_the_outage_after_each_of_10_drops_stays_short(
    sim: Simulator, make_client: ClientFactory
) -> None:
    client = await make_client(sim, **PRODUCTION_BACKOFF)
    sync = client.user_sync()
    await sync.start()
    outages = [await _outage_after_drop(sim, sync) for _ in range(10)]
    shown = " ".join(f"{o:.2f}" for o in outages)
    print(f"\noutage per drop over 10 drops (s): {shown}; max {max(outages):.2f}")
    assert max(outages) < 2.0  # the p99 of 10 is their maximum
    assert not sync.socket.flapping
    assert calls(sim, "ws:user/syncrequest") == 11


async def test_a_server_that_drops_us_right_after_each_sync_gets_a_growing_backoff(
    sim: Simulator, make_client: ClientFactory
) -> None:
    client = await make_client(
        sim,
        reconnect_initial=0.05,
        reconnect_max=0.8,
        reconnect_stable_after=30.0,
        reconnect_flap_window=30.0,
        reconnect_flap_limit=3,
    )
    sync = client.user_sync()
    await sync.start()
    outages = [await _outage_after_drop(sim, sync) for _ in range(8)]
    print("\nflapping server, outage per drop (s): " + " ".join(f"{o:.2f}" for o in outages))
    assert sync.socket.flapping
    assert max(outages[:3]) < 0.4  # before it counts as flapping: short waits
    assert outages[-1] >= 0.4  # then the back-off grows (0.05 -> 0.1 -> ... -> 0.8 s ceiling)


async def test_renewal_keeps_both_sockets_and_live_state(
    make_sim: SimFactory, make_client: ClientFactory
) -> None:
    sim = await make_sim(token_ttl=3.0)
    client = await make_client(sim)
    sync = client.user_sync()
    events: list[object] = []
    sync.deliver_to(events.extend, lambda _: None)
    await sync.start()
    md = client.market_data()
    await md.start()
    manager = client.token_manager
    samples = 0
    unhealthy = 0
    until = time.monotonic() + 4.0  # at least two renewals
    while time.monotonic() < until:
        samples += 1
        unhealthy += not (sync.connected and md.socket.connected)
        await asyncio.sleep(0.01)
    print(
        f"\n{manager.renewals} renewals in 4 s: live state unhealthy in {unhealthy} of "
        f"{samples} samples; user socket connects {sync.socket.connects}"
    )
    assert manager.renewals >= 2 and manager.logins == 1
    assert unhealthy == 0
    assert sync.socket.connects == 1 and md.socket.connects == 1
    assert sync.socket.reauthorizations == manager.renewals
    assert calls(sim, "ws:user/syncrequest") == 1  # no resync
    assert calls(sim, "ws:authorize") == 1 + manager.renewals
    assert [type(e) for e in events] == [SyncSnapshot]


async def test_a_penalized_renewal_is_sat_out_before_the_token_expires(
    make_sim: SimFactory, make_client: ClientFactory, caplog: pytest.LogCaptureFixture
) -> None:
    sim = await make_sim(token_ttl=8.0)
    # One request may take 1 s, the ticket 2 s: it still fits the token's 4 s left.
    client: TradovateClient = await make_client(sim, request_timeout=1.0)
    manager = client.token_manager
    first = manager.current
    assert first is not None
    sim.control.penalize("auth/renewaccesstoken", count=1, p_time=2.0)
    caplog.set_level(logging.WARNING, logger="trading_gateway.server.broker.auth")
    await eventually(lambda: manager.renewals == 1, within=10.0)
    renewed = manager.current
    assert renewed is not None and renewed is not first
    print(f"\npenalized renewal done {first.left():.2f} s before the old token expired")
    assert first.alive()  # renewed before the old token expired
    assert manager.logins == 1
    assert calls(sim, "auth/renewaccesstoken") == 2  # the penalized call and its re-send
    assert not [r for r in caplog.records if "token refresh failed" in r.getMessage()]
