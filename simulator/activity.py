"""Background life: the price random walk and random trading activity at a set rate.

Each step is synchronous (store change and publication together); the loops only sleep.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from fractions import Fraction

from trading_gateway.simulator.core import SimCore
from trading_gateway.simulator.md import publish_quotes
from trading_gateway.simulator.orders import EngineError

logger = logging.getLogger(__name__)

MAX_WORKING_PER_ACCOUNT = 8
MIN_TICK_S = 0.01
MAX_ACTIONS_PER_TICK = 1000


def market_step(core: SimCore) -> list[int]:
    """One random-walk step; fills the working orders it trades through; publishes quotes."""
    moved = core.market.step()
    core.engine.on_prices(moved)
    publish_quotes(core, list(core.md_subscribers))
    return moved


def move_price(core: SimCore, contract_id: int, price: Fraction) -> Fraction:
    market = core.market
    ticks = market.to_ticks(contract_id, price)
    market.set_last(contract_id, ticks)
    core.engine.on_prices([contract_id])
    publish_quotes(core, [contract_id])
    return market.last(contract_id)


class RandomTrader:
    """Seeded random orders, fills and cancels across all accounts."""

    def __init__(self, core: SimCore, rng: random.Random) -> None:
        self.core = core
        self._rng = rng

    def act(self) -> str:
        core, rng = self.core, self._rng
        engine = core.engine
        accounts = list(engine.positions)
        account_id = accounts[rng.randrange(len(accounts))]
        working = list(engine.working_by_account[account_id])
        roll = rng.random()
        try:
            if working and (roll < 0.25 or len(working) >= MAX_WORKING_PER_ACCOUNT):
                engine.cancel(working[rng.randrange(len(working))])
                return "cancel"
            if working and roll < 0.5:
                engine.fill(working[rng.randrange(len(working))])
                return "fill"
            if roll < 0.65:
                self._place(account_id, market=True)
                return "market"
            self._place(account_id, market=False)
            return "limit"
        except EngineError as exc:
            logger.debug("random action rejected: %s", exc.text)
            return "rejected"

    def _place(self, account_id: int, market: bool) -> None:
        rng, engine = self._rng, self.core.engine
        fronts = self.core.market.front_contracts()
        contract = fronts[rng.randrange(len(fronts))]
        buy = rng.random() < 0.5
        action = "Buy" if buy else "Sell"
        qty = rng.randint(1, 3)
        if market:
            engine.place_order(account_id, contract, action, qty, "Market")
            return
        book = self.core.market.books[contract.contract_id]
        away = rng.randint(0, 6)
        ticks = book.bid - away if buy else book.bid + 1 + away
        engine.place_order(
            account_id, contract, action, qty, "Limit", price=max(1, ticks) * contract.tick
        )


class Drivers:
    """Owns the two background loops; aclose() cancels and awaits them."""

    def __init__(self, core: SimCore, trader: RandomTrader) -> None:
        self.core = core
        self.trader = trader
        self.rate = core.config.activity_rate
        self.price_interval = core.config.price_interval
        self.actions = 0
        self._rate_changed = asyncio.Event()
        self._interval_changed = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()

    def start(self) -> None:
        for coro in (self._activity_loop(), self._market_loop()):
            task = asyncio.create_task(coro)
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    def set_rate(self, rate: float) -> None:
        self.rate = max(0.0, rate)
        self._rate_changed.set()

    def set_price_interval(self, seconds: float) -> None:
        self.price_interval = max(0.0, seconds)
        self._interval_changed.set()

    def step(self, count: int) -> dict[str, int]:
        done: dict[str, int] = {}
        for _ in range(count):
            kind = self.trader.act()
            done[kind] = done.get(kind, 0) + 1
        self.actions += count
        return done

    @staticmethod
    async def _idle(changed: asyncio.Event, limit: float | None) -> None:
        """Sleep up to `limit` seconds (None: forever), waking early when `changed` is set."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(limit):
                await changed.wait()
        changed.clear()

    async def _activity_loop(self) -> None:
        budget = 0.0
        last = time.monotonic()
        while True:
            if self.rate <= 0:
                await self._idle(self._rate_changed, None)
                budget, last = 0.0, time.monotonic()
                continue
            await self._idle(self._rate_changed, max(1.0 / self.rate, MIN_TICK_S))
            now = time.monotonic()
            budget += (now - last) * self.rate
            last = now
            count = min(int(budget), MAX_ACTIONS_PER_TICK)
            budget -= int(budget)
            try:
                self.step(count)
            except Exception:
                logger.exception("random activity step failed")

    async def _market_loop(self) -> None:
        while True:
            if self.price_interval <= 0:
                await self._idle(self._interval_changed, None)
                continue
            await self._idle(self._interval_changed, self.price_interval)
            try:
                market_step(self.core)
            except Exception:
                logger.exception("market step failed")

    async def aclose(self) -> None:
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
