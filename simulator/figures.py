"""An account's Tradovate figures (the cash-balance snapshot), computed twice from the same
state: exactly, and in doubles as a double-based Tradovate computes and sends them.

Both come from one function so the snapshot endpoint and the ledger can never disagree.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from trading_gateway.simulator.positions import CashState, PositionState

#: The snapshot's fields in Tradovate's order (tradovate-api.md, CashBalanceSnapshot).
SNAPSHOT_FIELDS = (
    "totalCashValue",
    "totalPnL",
    "initialMargin",
    "maintenanceMargin",
    "netLiq",
    "openPnL",
    "realizedPnL",
    "weekRealizedPnL",
)
EXACT_PLACES = 20


def exact_text(value: Fraction) -> str:
    """A Fraction as decimal text, exact to 20 places (round half-even beyond that)."""
    scaled = round(value * 10**EXACT_PLACES)  # Fraction.__round__ is half-even
    sign = "-" if scaled < 0 else ""
    digits = str(abs(scaled)).rjust(EXACT_PLACES + 1, "0")
    whole, frac = digits[:-EXACT_PLACES], digits[-EXACT_PLACES:].rstrip("0")
    return f"{sign}{whole}.{frac}" if frac else f"{sign}{whole}"


@dataclass(frozen=True, slots=True)
class AccountFigures:
    """One value per snapshot field: ``exact`` (Fractions) and ``doubles`` (the wire's)."""

    exact_values: dict[str, Fraction]
    doubles: dict[str, float]

    def reported(self) -> dict[str, Any]:
        """The getcashbalancesnapshot body: doubles, with whatever residue they carry."""
        return {name: self.doubles[name] for name in SNAPSHOT_FIELDS}

    def exact(self) -> dict[str, str]:
        return {name: exact_text(self.exact_values[name]) for name in SNAPSHOT_FIELDS}


def account_figures(
    cash: CashState,
    positions: Iterable[PositionState],
    mark: Callable[[int], Fraction],
    margins: tuple[int, int],
) -> AccountFigures:
    """Cash and realized PnL from the cash row; open PnL of every open position at its mark;
    net liquidation = cash + open PnL; total PnL = realized + open PnL; margins as given."""
    open_pnl = Fraction(0)
    open_pnl_f = 0.0
    for state in positions:
        if state.net == 0:
            continue
        price = mark(state.contract_id)
        open_pnl += state.open_pnl(price)
        open_pnl_f += state.open_pnl_f(price)
    initial, maintenance = margins
    exact = {
        "totalCashValue": cash.amount,
        "totalPnL": cash.realized + open_pnl,
        "initialMargin": Fraction(initial),
        "maintenanceMargin": Fraction(maintenance),
        "netLiq": cash.amount + open_pnl,
        "openPnL": open_pnl,
        "realizedPnL": cash.realized,
        "weekRealizedPnL": cash.week_realized,
    }
    doubles = {
        "totalCashValue": cash.amount_f,
        "totalPnL": cash.realized_f + open_pnl_f,
        "initialMargin": float(initial),
        "maintenanceMargin": float(maintenance),
        "netLiq": cash.amount_f + open_pnl_f,
        "openPnL": open_pnl_f,
        "realizedPnL": cash.realized_f,
        "weekRealizedPnL": cash.week_realized_f,
    }
    return AccountFigures(exact, doubles)
