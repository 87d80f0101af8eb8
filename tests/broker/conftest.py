"""Fixtures: a real simulator on loopback ports and a TradovateClient pointed at it."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from trading_gateway.server.broker import BrokerSettings, TradovateClient
from trading_gateway.simulator import SimConfig, Simulator

#: Fast reconnects and short deadlines so failure paths finish quickly in tests.
FAST: dict[str, Any] = {
    "request_timeout": 5.0,
    "connect_timeout": 5.0,
    "reconnect_initial": 0.05,
    "reconnect_max": 0.4,
    "rate_per_second": 0,
}


def client_settings(sim: Simulator, **overrides: Any) -> BrokerSettings:
    creds = sim.credentials
    values: dict[str, Any] = {
        "rest_url": sim.rest_url,
        "ws_url": sim.ws_url,
        "md_ws_url": sim.md_ws_url,
        "username": creds["name"],
        "password": creds["password"],
        "app_id": creds["appId"],
        "app_version": creds["appVersion"],
        "cid": creds["cid"],
        "secret": creds["sec"],
        **FAST,
    }
    values.update(overrides)
    return BrokerSettings(**values)


SimFactory = Callable[..., Awaitable[Simulator]]
ClientFactory = Callable[..., Awaitable[TradovateClient]]


@pytest.fixture
async def make_sim() -> AsyncIterator[SimFactory]:
    """Start simulators with any SimConfig fields; all are stopped after the test."""
    async with contextlib.AsyncExitStack() as stack:

        async def make(**config: Any) -> Simulator:
            config.setdefault("accounts", 4)
            config.setdefault("seed", 7)
            config.setdefault("price_interval", 0.0)
            sim = Simulator(SimConfig(**config))
            return await stack.enter_async_context(sim.running(host="127.0.0.1", port=0))

        yield make


@pytest.fixture
async def sim(make_sim: SimFactory) -> Simulator:
    return await make_sim()


@pytest.fixture
async def make_client() -> AsyncIterator[ClientFactory]:
    """Started clients for a simulator (settings overridable); all closed after the test."""
    clients: list[TradovateClient] = []

    async def make(simulator: Simulator, **overrides: Any) -> TradovateClient:
        client = TradovateClient(client_settings(simulator, **overrides))
        clients.append(client)
        await client.start()
        return client

    yield make
    for client in clients:
        await client.aclose()


@pytest.fixture
async def client(sim: Simulator, make_client: ClientFactory) -> TradovateClient:
    return await make_client(sim)


async def eventually(check: Callable[[], bool], within: float = 10.0) -> None:
    """Poll until ``check()`` is true (the generous limit only prevents hangs)."""
    async with asyncio.timeout(within):
        while not check():  # noqa: ASYNC110 - polls state owned by another component
            await asyncio.sleep(0.02)
