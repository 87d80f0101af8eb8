"""Prices: a seeded, mean-reverting random walk on each contract's tick grid, and md quotes."""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from trading_gateway.simulator.catalog import ContractSpec
from trading_gateway.simulator.clock import iso

REVERSION_BAND_TICKS = 120


@dataclass(slots=True)
class Book:
    """Top of book for one contract: offer is one tick above bid; `last` is the last trade."""

    contract: ContractSpec
    anchor: int
    bid: int
    last: int
    bid_size: int
    offer_size: int
    trade_size: int
    volume: int
    open: int
    high: int
    low: int
    settle: int
    open_interest: int
    updated: float


class Market:
    """Every contract's book, keyed by contract id, plus name lookup."""

    def __init__(self, contracts: list[ContractSpec], rng: random.Random) -> None:
        self._rng = rng
        self.contracts: dict[int, ContractSpec] = {c.contract_id: c for c in contracts}
        self.by_name: dict[str, ContractSpec] = {c.name.upper(): c for c in contracts}
        now = time.time()
        self.books: dict[int, Book] = {}
        for c in contracts:
            start = c.start_ticks
            opening = start + rng.randint(-40, 40)
            self.books[c.contract_id] = Book(
                contract=c,
                anchor=start,
                bid=start,
                last=start,
                bid_size=rng.randint(5, 60),
                offer_size=rng.randint(5, 60),
                trade_size=1,
                volume=rng.randint(10_000, 900_000),
                open=opening,
                high=max(start, opening) + rng.randint(5, 80),
                low=min(start, opening) - rng.randint(5, 80),
                settle=start - rng.randint(-30, 30),
                open_interest=rng.randint(50_000, 2_500_000),
                updated=now,
            )

    def resolve(self, symbol: str | int) -> ContractSpec | None:
        """A contract by name (ESZ6, any case) or by id (int or digit string)."""
        if isinstance(symbol, bool):
            return None
        if isinstance(symbol, int):
            return self.contracts.get(symbol)
        text = symbol.strip()
        if text.isdigit():
            return self.contracts.get(int(text))
        return self.by_name.get(text.upper())

    def front_contracts(self) -> list[ContractSpec]:
        return [c for c in self.contracts.values() if c.is_front]

    def last(self, contract_id: int) -> Fraction:
        book = self.books[contract_id]
        return book.last * book.contract.tick

    def bid(self, contract_id: int) -> Fraction:
        book = self.books[contract_id]
        return book.bid * book.contract.tick

    def offer(self, contract_id: int) -> Fraction:
        book = self.books[contract_id]
        return (book.bid + 1) * book.contract.tick

    def mark(self, contract_id: int) -> Fraction:
        """The mid price, (bid + offer) / 2: where the engine marks open positions."""
        book = self.books[contract_id]
        return (2 * book.bid + 1) * book.contract.tick / 2

    def to_ticks(self, contract_id: int, price: Fraction) -> int:
        """Price on the tick grid (nearest tick)."""
        tick = self.contracts[contract_id].tick
        return round(price / tick)

    def on_grid(self, contract_id: int, price: Fraction) -> bool:
        tick = self.contracts[contract_id].tick
        return (price / tick).denominator == 1

    def set_last(self, contract_id: int, ticks: int, size: int = 1) -> None:
        """A trade at `ticks`: the book re-centres on it."""
        book = self.books[contract_id]
        ticks = max(ticks, 1)
        book.last = ticks
        book.bid = ticks
        book.trade_size = size
        book.volume += size
        book.high = max(book.high, ticks)
        book.low = min(book.low, ticks)
        book.updated = time.time()

    def step(self) -> list[int]:
        """One random-walk step for every contract; returns the ids whose last price changed."""
        rng = self._rng
        moved: list[int] = []
        for cid, book in self.books.items():
            drift = (book.last - book.anchor) / (4 * REVERSION_BAND_TICKS)
            up = 0.5 - max(-0.25, min(0.25, drift))
            roll = rng.random()
            book.bid_size = max(1, book.bid_size + rng.randint(-3, 3))
            book.offer_size = max(1, book.offer_size + rng.randint(-3, 3))
            if roll < 0.4:
                continue
            move = 1 if rng.random() < up else -1
            self.set_last(cid, book.last + move, rng.randint(1, 5))
            moved.append(cid)
        return moved

    def quote(self, contract_id: int) -> dict[str, Any]:
        """The md quote shape: {timestamp, contractId, entries: {Bid, Offer, Trade, ...}}."""
        book = self.books[contract_id]
        tick = book.contract.tick

        def px(ticks: int) -> float:
            return float(ticks * tick)

        return {
            "timestamp": iso(book.updated),
            "contractId": contract_id,
            "entries": {
                "Bid": {"price": px(book.bid), "size": float(book.bid_size)},
                "Offer": {"price": px(book.bid + 1), "size": float(book.offer_size)},
                "Trade": {"price": px(book.last), "size": float(book.trade_size)},
                "TotalTradeVolume": {"size": float(book.volume)},
                "OpenInterest": {"size": float(book.open_interest)},
                "OpeningPrice": {"price": px(book.open)},
                "HighPrice": {"price": px(book.high)},
                "LowPrice": {"price": px(book.low)},
                "SettlementPrice": {"price": px(book.settle)},
            },
        }
