"""Position and cash arithmetic, kept twice: exactly (Fractions), and in doubles the way a
double-based Tradovate keeps it.

The doubles are what the wire carries, so averages show residue such as 71.63333333333334
and money such as 529.99999999998, as Tradovate's JSON does. The exact values are the
ledger's truth (``simulator/ledger.py``): the oracle tests round them and compare.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

from trading_gateway.simulator.clock import iso, trade_date


def price_out(value: Fraction) -> float:
    """A price for the wire: the nearest double, printed in its shortest form."""
    return float(value)


def money_out(value: Fraction) -> float:
    """Dollars for the wire, to the cent (settings that are not engine figures)."""
    return round(float(value), 2)


@dataclass(slots=True)
class PositionState:
    """One account's position in one contract, with average-cost entry price.

    ``cost`` is the entry value of the open quantity, exact; ``cost_f`` is the same figure as
    the double-based engine carries it (fills added and averages subtracted in doubles).
    """

    position_id: int
    account_id: int
    contract_id: int
    value_per_point: Fraction
    net: int = 0
    cost: Fraction = field(default_factory=Fraction)
    cost_f: float = 0.0
    bought: int = 0
    bought_value: Fraction = field(default_factory=Fraction)
    bought_value_f: float = 0.0
    sold: int = 0
    sold_value: Fraction = field(default_factory=Fraction)
    sold_value_f: float = 0.0
    prev_pos: int = 0
    prev_price: Fraction | None = None
    updated: float = 0.0

    @property
    def net_price(self) -> Fraction | None:
        """The exact average entry price of the open quantity."""
        return None if self.net == 0 else self.cost / abs(self.net)

    @property
    def net_price_f(self) -> float | None:
        """The average entry price as the double-based engine reports it (``netPrice``)."""
        return None if self.net == 0 else self.cost_f / abs(self.net)

    def carry(self, prev_pos: int, prev_price: Fraction, ts: float) -> None:
        """A position carried over from the previous trade date (prevPos, prevPrice)."""
        self.prev_pos = prev_pos
        self.prev_price = prev_price
        self.net = prev_pos
        self.cost = prev_price * abs(prev_pos)
        self.cost_f = float(prev_price) * abs(prev_pos)
        self.updated = ts

    def apply_fill(self, buy: bool, qty: int, price: Fraction, ts: float) -> tuple[Fraction, float]:
        """Book a fill; return the realized PnL in dollars, exact and as the doubles give it."""
        self.updated = ts
        price_f = float(price)
        if buy:
            self.bought += qty
            self.bought_value += price * qty
            self.bought_value_f += price_f * qty
        else:
            self.sold += qty
            self.sold_value += price * qty
            self.sold_value_f += price_f * qty
        signed = qty if buy else -qty
        if self.net == 0 or (self.net > 0) == buy:
            self.cost += price * qty
            self.cost_f += price_f * qty
            self.net += signed
            return Fraction(0), 0.0
        closing = min(qty, abs(self.net))
        entry = self.cost / abs(self.net)
        entry_f = self.cost_f / abs(self.net)
        direction = 1 if self.net > 0 else -1
        realized = (price - entry) * closing * direction * self.value_per_point
        realized_f = (price_f - entry_f) * closing * direction * float(self.value_per_point)
        self.cost -= entry * closing
        self.cost_f -= entry_f * closing
        self.net += signed
        opening = qty - closing
        if opening:
            self.cost = price * opening
            self.cost_f = price_f * opening
        if self.net == 0:
            self.cost = Fraction(0)
            self.cost_f = 0.0
        return realized, realized_f

    def open_pnl(self, mark: Fraction) -> Fraction:
        """Exact open PnL of the position marked at ``mark``."""
        entry = self.net_price
        if entry is None:
            return Fraction(0)
        return (mark - entry) * self.net * self.value_per_point

    def open_pnl_f(self, mark: Fraction) -> float:
        """Open PnL marked at ``mark`` as the double-based engine computes it."""
        entry = self.net_price_f
        if entry is None:
            return 0.0
        return (float(mark) - entry) * self.net * float(self.value_per_point)

    def entity(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.position_id,
            "accountId": self.account_id,
            "contractId": self.contract_id,
            "timestamp": iso(self.updated),
            "tradeDate": trade_date(self.updated),
            "netPos": self.net,
            "bought": self.bought,
            "boughtValue": self.bought_value_f,
            "sold": self.sold,
            "soldValue": self.sold_value_f,
            "prevPos": self.prev_pos,
        }
        net_price = self.net_price_f
        if net_price is not None:
            out["netPrice"] = net_price
        if self.prev_price is not None:
            out["prevPrice"] = price_out(self.prev_price)
        return out


@dataclass(slots=True)
class CashState:
    """One account's USD cash balance row, exact and as doubles (``*_f``, what the wire says)."""

    cash_id: int
    account_id: int
    amount: Fraction
    realized: Fraction = field(default_factory=Fraction)
    week_realized: Fraction = field(default_factory=Fraction)
    amount_f: float = 0.0
    realized_f: float = 0.0
    week_realized_f: float = 0.0
    updated: float = 0.0

    def __post_init__(self) -> None:
        self.amount_f = float(self.amount)

    def book(self, pnl: Fraction, pnl_f: float, ts: float) -> None:
        self.amount += pnl
        self.realized += pnl
        self.week_realized += pnl
        self.amount_f += pnl_f
        self.realized_f += pnl_f
        self.week_realized_f += pnl_f
        self.updated = ts

    def entity(self, currency_id: int) -> dict[str, Any]:
        return {
            "id": self.cash_id,
            "accountId": self.account_id,
            "timestamp": iso(self.updated),
            "tradeDate": trade_date(self.updated),
            "currencyId": currency_id,
            "amount": self.amount_f,
            "realizedPnL": self.realized_f,
            "weekRealizedPnL": self.week_realized_f,
        }
