"""The gateway's mark-to-market: last prices from market data, open PnL per position, throttling.

Open PnL of a position follows the one rule in server/mark.py; an account's total is its
open PnL plus the realized PnL of its cash balances. These are the gateway's figures
(``mark_*`` on the wire), never Tradovate's open PnL.
Everything is Decimal: a price never passes through a float.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from decimal import Decimal

from trading_gateway.server.broker.schemas import CashBalance, Position, Quote
from trading_gateway.server.mark import ZERO, position_open_pnl

logger = logging.getLogger(__name__)

#: Quote entries tried for the last price, best first.
_PRICE_ENTRIES = ("Trade", "SettlementPrice")


def quote_price(quote: Quote) -> Decimal | None:
    """The last trade price of a quote (settlement when no trade is known)."""
    for name in _PRICE_ENTRIES:
        entry = quote.entries.get(name)
        if entry is not None and entry.price is not None:
            return entry.price
    return None


class PriceBook:
    """The last known price per contract."""

    def __init__(self) -> None:
        self.last: dict[int, Decimal] = {}
        #: When each contract's last price changed (epoch seconds): the mark's own time.
        self.changed_at: dict[int, float] = {}
        #: How many times each contract's last price changed (read memos compare it).
        self.changes: dict[int, int] = {}
        self.total_changes = 0

    def update(self, quote: Quote, at: float | None = None) -> bool:
        """Record the quote's price (read at ``at``, epoch seconds; None: now); True when it
        changed the contract's last price."""
        price = quote_price(quote)
        if price is None or self.last.get(quote.contract_id) == price:
            return False
        self.put(quote.contract_id, price, time.time() if at is None else at)
        return True

    def put(self, contract_id: int, price: Decimal, at: float) -> None:
        """Set a contract's last price (a replica loading another's state)."""
        self.last[contract_id] = price
        self.changed_at[contract_id] = at
        self.changes[contract_id] = self.changes.get(contract_id, 0) + 1
        self.total_changes += 1


@dataclass(frozen=True, slots=True)
class PositionPnl:
    position: Position
    last_price: Decimal | None
    open_pnl: Decimal | None


@dataclass(frozen=True, slots=True)
class AccountPnl:
    """One account's PnL; ``complete`` is False when an open position has no price yet."""

    open_pnl: Decimal
    #: Tradovate's realized PnL from the account's USD cash row; None when no row gives it
    #: (unknown, never 0).
    realized_pnl: Decimal | None
    positions: tuple[PositionPnl, ...]
    complete: bool

    @property
    def total_pnl(self) -> Decimal | None:
        return None if self.realized_pnl is None else self.open_pnl + self.realized_pnl


def position_pnl(
    position: Position, last: Decimal | None, value_per_point: Decimal | None
) -> PositionPnl:
    return PositionPnl(position, last, position_open_pnl(position, last, value_per_point))


def account_pnl(
    positions: Iterable[Position],
    cash_balances: Iterable[CashBalance],
    last: Callable[[int], Decimal | None],
    value_per_point: Callable[[int], Decimal | None],
) -> AccountPnl:
    """PnL of one account from its positions (open ones count) and cash balances."""
    rows: list[PositionPnl] = []
    total_open = ZERO
    complete = True
    for position in positions:
        if position.net_pos == 0:
            continue
        row = position_pnl(
            position, last(position.contract_id), value_per_point(position.contract_id)
        )
        rows.append(row)
        if row.open_pnl is None:
            complete = False
        else:
            total_open += row.open_pnl
    cash = usd_cash_row(cash_balances)
    realized = cash.realized_pnl if cash is not None else None
    return AccountPnl(total_open, realized, tuple(rows), complete)


#: Tradovate's currency id for USD.
USD_CURRENCY_ID = 1


def usd_cash_row(cash_balances: Iterable[CashBalance]) -> CashBalance | None:
    """The one cash-balance row the USD figures come from, or None.

    An account can have several rows (per currency, per trade date). Per currency only the
    latest trade date (then the latest timestamp, then the highest id) counts; the USD row
    (currency 1) is used when present, else the only currency there is. Several currencies
    and no USD: None (amounts in different currencies are never summed).
    """
    latest: dict[int | None, CashBalance] = {}
    for row in cash_balances:
        held = latest.get(row.currency_id)
        if held is None or _recency(row) > _recency(held):
            latest[row.currency_id] = row
    if USD_CURRENCY_ID in latest:
        return latest[USD_CURRENCY_ID]
    if len(latest) == 1:
        return next(iter(latest.values()))
    return None


def _recency(row: CashBalance) -> tuple[tuple[int, int, int], float, int]:
    day = row.trade_date
    date = (day.year, day.month, day.day) if day is not None else (0, 0, 0)
    stamp = row.timestamp.timestamp() if row.timestamp is not None else float("-inf")
    return date, stamp, row.id


class Throttle:
    """Calls ``emit(account_id)`` at most once per ``interval`` per account.

    The first mark after a quiet interval emits at once (no added latency); marks inside
    the interval collapse into one emit at its end, so the latest state always goes out.
    """

    def __init__(self, interval: float, emit: Callable[[int], None]) -> None:
        self._interval = interval
        self._emit = emit
        self._last: dict[int, float] = {}
        self._pending: dict[int, asyncio.TimerHandle] = {}
        self._closed = False

    def mark(self, account_id: int) -> None:
        if self._closed or account_id in self._pending:
            return
        loop = asyncio.get_running_loop()
        now = loop.time()
        due = self._last.get(account_id, -self._interval) + self._interval
        if now >= due:
            self._fire(account_id)
        else:
            self._pending[account_id] = loop.call_at(due, self._fire, account_id)

    def _fire(self, account_id: int) -> None:
        self._pending.pop(account_id, None)
        self._last[account_id] = asyncio.get_running_loop().time()
        try:
            self._emit(account_id)
        except Exception:
            logger.exception("publishing PnL of account %s failed", account_id)

    def close(self) -> None:
        self._closed = True
        for handle in self._pending.values():
            handle.cancel()
        self._pending.clear()
