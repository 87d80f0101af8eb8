"""One account's live balance: Tradovate's figures from sync and REST, the gateway's mark apart.

Where each figure comes from on the live path:

- cash, realized PnL, week realized PnL: the account's USD cash-balance row from the sync
  socket (``usd_cash_row``); with no cash row at all, Tradovate's cash-balance snapshot.
- initial and maintenance margin: the margin snapshot from the sync socket; when the sync
  data has none, the one the background refresh fetched (server/live/figures.py).
- open PnL, net liquidation, total PnL: Tradovate's cash-balance snapshot, fetched by the
  background refresh (the sync socket never carries them).
- mark_*: the gateway's own mark-to-market from quotes (server/live/pnl.py).

A figure that is not known is None and named in ``BalanceData.unknown`` with its reason;
never 0.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal

from trading_gateway.server.broker.schemas import CashBalance, CashBalanceSnapshot, MarginSnapshot
from trading_gateway.server.live.figures import NOT_FETCHED_YET, AccountFigures
from trading_gateway.server.live.pnl import AccountPnl, usd_cash_row
from trading_gateway.server.reads.records import BalanceData, MarkFigures

#: Why a figure is unknown.
NO_USD_CASH_ROW = "NO_USD_CASH_ROW"
NO_PRICE = "NO_PRICE"
NOT_REPORTED = "NOT_REPORTED"

CASH_FIGURES = ("cash", "realized_pnl", "week_realized_pnl")
SNAPSHOT_FIGURES = ("open_pnl", "net_liquidation", "total_pnl")
MARGIN_FIGURES = ("initial_margin", "maintenance_margin")
MARK_FIGURES = ("mark_open_pnl", "mark_total_pnl", "mark_net_liquidation")


def live_balance(
    cash_rows: Sequence[CashBalance],
    sync_margin: MarginSnapshot | None,
    fetched: AccountFigures | None,
    pnl: AccountPnl,
    mark_as_of: float | None,
) -> BalanceData:
    fetched = fetched or AccountFigures()
    unknown: dict[str, str] = {}
    cash, realized, week = _cash_figures(cash_rows, fetched, unknown)
    snap = fetched.snapshot
    if snap is None:
        for figure in SNAPSHOT_FIGURES:
            unknown[figure] = fetched.snapshot_error or NOT_FETCHED_YET
    margin = sync_margin or fetched.margin
    if margin is None:
        for figure in MARGIN_FIGURES:
            unknown[figure] = fetched.margin_error or NOT_FETCHED_YET
        margin_as_of = None
    elif margin is sync_margin:
        margin_as_of = margin.timestamp.timestamp() if margin.timestamp is not None else None
    else:
        margin_as_of = fetched.margin_as_of
    mark = _mark(pnl, cash, realized, mark_as_of, unknown)
    snapshot = CashBalanceSnapshot(
        total_cash_value=cash,
        realized_pnl=realized,
        week_realized_pnl=week,
        open_pnl=snap.open_pnl if snap is not None else None,
        net_liq=snap.net_liq if snap is not None else None,
        total_pnl=snap.total_pnl if snap is not None else None,
        initial_margin=margin.initial_margin if margin is not None else None,
        maintenance_margin=margin.maintenance_margin if margin is not None else None,
    )
    return BalanceData(
        snapshot=snapshot,
        pnl_as_of=fetched.snapshot_as_of if snap is not None else None,
        margin_as_of=margin_as_of,
        unknown=unknown,
        mark=mark,
    )


def _cash_figures(
    cash_rows: Sequence[CashBalance], fetched: AccountFigures, unknown: dict[str, str]
) -> tuple[Decimal | None, Decimal | None, Decimal | None]:
    """Cash, realized and week realized PnL: from one USD cash row, never a sum of currencies."""
    row = usd_cash_row(cash_rows)
    if row is not None:
        figures = (row.amount, row.realized_pnl, row.week_realized_pnl)
        for figure, value in zip(CASH_FIGURES, figures, strict=True):
            if value is None:  # a row that leaves a figure out: unknown, never 0
                unknown[figure] = NOT_REPORTED
        return figures
    if cash_rows:  # several currencies, none of them USD
        for figure in CASH_FIGURES:
            unknown[figure] = NO_USD_CASH_ROW
        return None, None, None
    snap = fetched.snapshot
    if snap is None:
        for figure in CASH_FIGURES:
            unknown[figure] = fetched.snapshot_error or NOT_FETCHED_YET
        return None, None, None
    return snap.total_cash_value, snap.realized_pnl, snap.week_realized_pnl


def _mark(
    pnl: AccountPnl,
    cash: Decimal | None,
    realized: Decimal | None,
    as_of: float | None,
    unknown: dict[str, str],
) -> MarkFigures:
    if not pnl.complete:
        for figure in MARK_FIGURES:
            unknown[figure] = NO_PRICE
        return MarkFigures(as_of=as_of)
    open_pnl = pnl.open_pnl
    if realized is None:
        unknown["mark_total_pnl"] = unknown.get("realized_pnl", NO_USD_CASH_ROW)
    if cash is None:
        unknown["mark_net_liquidation"] = unknown.get("cash", NO_USD_CASH_ROW)
    return MarkFigures(
        open_pnl=open_pnl,
        total_pnl=realized + open_pnl if realized is not None else None,
        net_liquidation=cash + open_pnl if cash is not None else None,
        as_of=as_of,
    )
