"""Read-only smoke tests against a real Tradovate (demo) account.

Run with ``pytest -m live`` and TRADOVATE_USERNAME / TRADOVATE_PASSWORD (and usually
TRADOVATE_CID / TRADOVATE_SECRET, TRADOVATE_ENV=demo) in the environment; skipped otherwise.
They log in once, read, and sync: they never place or cancel orders.
"""

from __future__ import annotations

import asyncio
import os

import pytest

from trading_gateway.server.broker import BrokerSettings, SyncSnapshot, TradovateClient
from trading_gateway.server.deadline import Deadline

pytestmark = [
    pytest.mark.live,
    pytest.mark.skipif(
        not (os.environ.get("TRADOVATE_USERNAME") and os.environ.get("TRADOVATE_PASSWORD")),
        reason="TRADOVATE_USERNAME/TRADOVATE_PASSWORD not set",
    ),
]


async def test_live_read_and_sync() -> None:
    settings = BrokerSettings.from_env(os.environ, rate_per_second=2.0, rate_burst=5)
    async with TradovateClient(settings) as client:
        assert client.user_id > 0 and client.token_expires_at is not None
        accounts = await client.accounts()
        assert accounts, "the login sees no accounts"
        ids = [a.id for a in accounts]
        positions = await client.positions(ids)
        await client.cash_balances(ids)
        await client.orders(ids)
        contract_ids = sorted({p.contract_id for p in positions})[:5]
        if contract_ids:
            infos = await client.contract_info(contract_ids)
            assert all(info.tick_size > 0 for info in infos.values())
        sync = client.user_sync()
        await sync.start(deadline=Deadline.after(20))
        events = sync.events()
        first = await asyncio.wait_for(anext(events), timeout=20)
        assert isinstance(first, SyncSnapshot)
        assert {a.id for a in first.accounts} >= set(ids)
        md = client.market_data()
        await md.start(deadline=Deadline.after(20))
        assert md.connected
