"""A thousand accounts, and reproducibility: the same seed builds the same world."""

from __future__ import annotations

from typing import Any

import aiohttp

from tests.sim.conftest import config
from tests.sim.helpers import get, login, open_socket
from trading_gateway.simulator import Simulator

VOLATILE = {"timestamp", "adminTimestamp"}


def _stable(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in e.items() if k not in VOLATILE} for e in items]


async def test_a_thousand_accounts(http: aiohttp.ClientSession) -> None:
    async with Simulator(config(accounts=1000)).running() as sim:
        token = await login(http, sim)
        status, accounts = await get(http, sim, "account/list", token)
        assert status == 200 and len(accounts) == 1000
        ids = [a["id"] for a in accounts]
        assert len(set(ids)) == 1000
        batch = ",".join(map(str, ids[:200]))
        status, positions = await get(http, sim, "position/ldeps", token, masterids=batch)
        assert status == 200 and {p["accountId"] for p in positions} == set(ids[:200])
        sock = await open_socket(http, sim.ws_url, token["accessToken"])
        snapshot = await sock.request("user/syncrequest", body={"users": [token["userId"]]})
        assert len(snapshot["d"]["accounts"]) == 1000
        assert len(snapshot["d"]["cashBalances"]) == 1000
        assert len(snapshot["d"]["positions"]) == len(
            (await get(http, sim, "position/list", token))[1]
        )
        await sock.ws.close()


async def test_same_seed_same_world_other_seed_other_world() -> None:
    worlds = []
    for seed in (11, 11, 12):
        sim = Simulator(config(seed=seed, accounts=6))
        store = sim.core.store
        sim.control.random_activity(40)
        worlds.append(
            {
                kind: _stable(store.table(kind).values())
                for kind in ("account", "position", "order", "orderVersion", "fill", "cashBalance")
            }
        )
    assert worlds[0] == worlds[1]
    assert worlds[0]["position"] != worlds[2]["position"]


async def test_initial_state_per_account(http: aiohttp.ClientSession, sim: Simulator) -> None:
    token = await login(http, sim)
    for account_id in sim.control.account_ids():
        positions = (await get(http, sim, "position/deps", token, masterid=account_id))[1]
        assert sum(1 for p in positions if p["netPos"] != 0) >= 1
        orders = (await get(http, sim, "order/deps", token, masterid=account_id))[1]
        statuses = [o["ordStatus"] for o in orders]
        assert statuses.count("Working") >= 2 and statuses.count("Filled") >= 2
        cash = (await get(http, sim, "cashBalance/deps", token, masterid=account_id))[1]
        assert cash[0]["amount"] >= 25_000 - 10_000
