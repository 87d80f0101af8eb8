"""A USD cash row that leaves a figure out: the live balance and PnL call it unknown, never 0."""

from __future__ import annotations

from decimal import Decimal

from trading_gateway.server.broker.schemas import CashBalance
from trading_gateway.server.live.balances import NOT_REPORTED, live_balance
from trading_gateway.server.live.pnl import account_pnl


def _no_price(_contract_id: int) -> Decimal | None:
    return None


def test_a_row_without_realized_pnl_leaves_it_unknown() -> None:
    row = CashBalance(id=1, account_id=7, currency_id=1, amount=Decimal("50000"))
    pnl = account_pnl([], [row], _no_price, _no_price)
    assert pnl.realized_pnl is None and pnl.total_pnl is None
    balance = live_balance([row], None, None, pnl, mark_as_of=None)
    snap = balance.snapshot
    assert snap.total_cash_value == Decimal("50000")
    assert snap.realized_pnl is None and snap.week_realized_pnl is None
    assert balance.unknown["realized_pnl"] == NOT_REPORTED
    assert balance.unknown["week_realized_pnl"] == NOT_REPORTED
    assert balance.mark is not None and balance.mark.total_pnl is None
    assert balance.unknown["mark_total_pnl"] == NOT_REPORTED


def test_a_complete_row_is_reported_as_sent() -> None:
    row = CashBalance(
        id=1,
        account_id=7,
        currency_id=1,
        amount=Decimal("50000"),
        realized_pnl=Decimal("0"),
        week_realized_pnl=Decimal("-12.5"),
    )
    pnl = account_pnl([], [row], _no_price, _no_price)
    assert pnl.realized_pnl == 0 and pnl.total_pnl == 0
    balance = live_balance([row], None, None, pnl, mark_as_of=None)
    assert balance.snapshot.realized_pnl == 0
    assert balance.snapshot.week_realized_pnl == Decimal("-12.5")
    assert "realized_pnl" not in balance.unknown
