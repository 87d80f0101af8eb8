"""Position and cash arithmetic, exact (Fractions), turned into Tradovate entities at the edge."""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

from server.simulator.clock import iso, trade_date


def price_out(value: Fraction) -> float:
    """A price for the wire: the nearest double, printed in its shortest form."""
    return float(value)


def money_out(value: Fraction) -> float:
    """Dollars for the wire, to the cent."""
    return round(float(value), 2)


@dataclass(slots=True)
class PositionState:
    """One account's position in one contract, with average-cost entry price."""

    position_id: int
    account_id: int
    contract_id: int
    value_per_point: Fraction
    net: int = 0
    cost: Fraction = field(default_factory=Fraction)  # entry value of the open quantity
    bought: int = 0
    bought_value: Fraction = field(default_factory=Fraction)
    sold: int = 0
    sold_value: Fraction = field(default_factory=Fraction)
    prev_pos: int = 0
    prev_price: Fraction | None = None
    updated: float = 0.0

    @property
    def net_price(self) -> Fraction | None:
        return None if self.net == 0 else self.cost / abs(self.net)

    def apply_fill(self, buy: bool, qty: int, price: Fraction, ts: float) -> Fraction:
        """Book a fill; return the realized PnL in dollars."""
        self.updated = ts
        if buy:
            self.bought += qty
            self.bought_value += price * qty
        else:
            self.sold += qty
            self.sold_value += price * qty
        signed = qty if buy else -qty
        realized = Fraction(0)
        if self.net == 0 or (self.net > 0) == buy:
            self.cost += price * qty
            self.net += signed
            return realized
        closing = min(qty, abs(self.net))
        entry = self.cost / abs(self.net)
        direction = 1 if self.net > 0 else -1
        realized = (price - entry) * closing * direction * self.value_per_point
        self.cost -= entry * closing
        self.net += signed
        opening = qty - closing
        if opening:
            self.cost = price * opening
        if self.net == 0:
            self.cost = Fraction(0)
        return realized

    def open_pnl(self, last: Fraction) -> Fraction:
        entry = self.net_price
        if entry is None:
            return Fraction(0)
        return (last - entry) * self.net * self.value_per_point

    def entity(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.position_id,
            "accountId": self.account_id,
            "contractId": self.contract_id,
            "timestamp": iso(self.updated),
            "tradeDate": trade_date(self.updated),
            "netPos": self.net,
            "bought": self.bought,
            "boughtValue": price_out(self.bought_value),
            "sold": self.sold,
            "soldValue": price_out(self.sold_value),
            "prevPos": self.prev_pos,
        }
        net_price = self.net_price
        if net_price is not None:
            out["netPrice"] = price_out(net_price)
        if self.prev_price is not None:
            out["prevPrice"] = price_out(self.prev_price)
        return out


@dataclass(slots=True)
class CashState:
    """One account's USD cash balance row."""

    cash_id: int
    account_id: int
    amount: Fraction
    realized: Fraction = field(default_factory=Fraction)
    week_realized: Fraction = field(default_factory=Fraction)
    updated: float = 0.0

    def book(self, pnl: Fraction, ts: float) -> None:
        self.amount += pnl
        self.realized += pnl
        self.week_realized += pnl
        self.updated = ts

    def entity(self, currency_id: int) -> dict[str, Any]:
        return {
            "id": self.cash_id,
            "accountId": self.account_id,
            "timestamp": iso(self.updated),
            "tradeDate": trade_date(self.updated),
            "currencyId": currency_id,
            "amount": money_out(self.amount),
            "realizedPnL": money_out(self.realized),
            "weekRealizedPnL": money_out(self.week_realized),
        }
