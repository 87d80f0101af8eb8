"""Fixtures: a running simulator (frozen prices, no random activity) and an HTTP session."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from tests.sim.helpers import login
from trading_gateway.simulator import SimConfig, Simulator


def config(**overrides: Any) -> SimConfig:
    base: dict[str, Any] = {"accounts": 4, "seed": 7, "price_interval": 0.0}
    base.update(overrides)
    return SimConfig(**base)


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    async with Simulator(config()).running() as running:
        yield running


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
async def token(http: aiohttp.ClientSession, sim: Simulator) -> dict[str, Any]:
    return await login(http, sim)
