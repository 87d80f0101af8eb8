"""The seeded initial state: one user (or several), each with its accounts; each account with
cash, open positions, working orders, filled orders with fills (sometimes a cancelled order).

Everything is built through the engine, so fills, positions and cash agree from the start.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from trading_gateway.simulator.catalog import ContractSpec, build_contracts, static_entities
from trading_gateway.simulator.clock import iso, today
from trading_gateway.simulator.config import SimConfig, SimUser
from trading_gateway.simulator.engine import TradingEngine
from trading_gateway.simulator.market import Market
from trading_gateway.simulator.store import Store

ACCOUNT_ID_BASE = 101_000
CASH_ID_BASE = 5_200_000
STARTING_CASH = (25_000, 50_000, 100_000, 150_000, 250_000)
FAR_TICKS = (300, 600)  # working orders rest this far from the market


def seeded(seed: int, purpose: str) -> random.Random:
    """An independent, reproducible random stream per purpose."""
    return random.Random(f"tradovate-sim:{seed}:{purpose}")


@dataclass(slots=True)
class World:
    store: Store
    market: Market
    engine: TradingEngine
    user: dict[str, Any]  # the first (default) user
    users: dict[int, dict[str, Any]]  # every user entity by id
    passwords: dict[str, tuple[str, int]]  # login name -> (password, user id)
    owners: dict[int, int]  # account id -> user id


def user_entity(user: SimUser, stamp: str) -> dict[str, Any]:
    return {
        "id": user.user_id,
        "name": user.name,
        "timestamp": stamp,
        "email": f"{user.name}@example.invalid",
        "status": "Active",
        "professional": False,
    }


def build_world(config: SimConfig) -> World:
    now = time.time()
    stamp = iso(now)
    store = Store()
    contracts = build_contracts(today())
    market = Market(contracts, seeded(config.seed, "market"))
    engine = TradingEngine(store, market)
    for entity_type, entities in static_entities(contracts, today(), stamp).items():
        table = store.table(entity_type)
        for entity in entities:
            table.put(entity)
    rng = seeded(config.seed, "init")
    fronts = market.front_contracts()
    users: dict[int, dict[str, Any]] = {}
    passwords: dict[str, tuple[str, int]] = {}
    owners: dict[int, int] = {}
    index = 0  # account numbering runs on across users, so ids never collide
    for sim_user in config.all_users():
        entity = user_entity(sim_user, stamp)
        store.table("user").put(entity)
        users[sim_user.user_id] = entity
        passwords[sim_user.name] = (sim_user.password, sim_user.user_id)
        for _ in range(sim_user.accounts):
            owners[_seed_account(engine, rng, fronts, sim_user.user_id, index, now)] = (
                sim_user.user_id
            )
            index += 1
    first = next(iter(users.values()))
    return World(
        store=store,
        market=market,
        engine=engine,
        user=first,
        users=users,
        passwords=passwords,
        owners=owners,
    )


def _seed_account(
    engine: TradingEngine,
    rng: random.Random,
    fronts: list[ContractSpec],
    user_id: int,
    index: int,
    now: float,
) -> int:
    market = engine.market
    account_id = ACCOUNT_ID_BASE + index + 1
    account = {
        "id": account_id,
        "name": f"DEMO{account_id}",
        "userId": user_id,
        "accountType": "Customer",
        "active": True,
        "clearingHouseId": 2,
        "riskCategoryId": 2,
        "autoLiqProfileId": 2,
        "marginAccountType": "Speculator",
        "legalStatus": "Individual",
        "archived": False,
        "readonly": False,
        "timestamp": iso(now - 86_400 * rng.randint(30, 900)),
    }
    engine.open_account(account, CASH_ID_BASE + index + 1, Fraction(rng.choice(STARTING_CASH)), now)
    held = rng.sample(fronts, 2)
    for contract in held:
        prev_pos = rng.choice((-3, -2, -1, 1, 2, 3))
        ticks = market.books[contract.contract_id].last + rng.randint(-40, 40)
        engine.seed_position(account_id, contract, prev_pos, ticks * contract.tick)
    for _ in range(2):
        contract = rng.choice([*held, rng.choice(fronts)])
        buy = rng.random() < 0.5
        last = market.books[contract.contract_id].last
        ticks = last - rng.randint(0, 6) if buy else last + 1 + rng.randint(0, 6)
        order_id = engine.place_order(
            account_id, contract, "Buy" if buy else "Sell", rng.randint(1, 2), "Limit",
            price=ticks * contract.tick,
        )  # fmt: skip
        engine.fill(order_id)
    for _ in range(2):
        _far_order(engine, rng, rng.choice(fronts), account_id)
    if rng.random() < 0.5:
        engine.cancel(_far_order(engine, rng, rng.choice(fronts), account_id))
    return account_id


def _far_order(
    engine: TradingEngine, rng: random.Random, contract: ContractSpec, account_id: int
) -> int:
    buy = rng.random() < 0.5
    last = engine.market.books[contract.contract_id].last
    away = rng.randint(*FAR_TICKS)
    ticks = max(1, last - away) if buy else last + away
    return engine.place_order(
        account_id,
        contract,
        "Buy" if buy else "Sell",
        rng.randint(1, 3),
        "Limit",
        price=ticks * contract.tick,
        time_in_force="GTC",
    )
