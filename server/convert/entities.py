"""Broker entities (accounts, positions, orders, balances, totals) as proto fields and messages."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import Final

from tradovate_gateway.v1 import trading_pb2 as pb

from trading_gateway.server import rounding
from trading_gateway.server.broker import enums
from trading_gateway.server.broker.schemas import Account, Position
from trading_gateway.server.convert.scalars import (
    Fields,
    date_fields,
    epoch_fields,
    money_fields,
    price_fields,
    timestamp_fields,
)
from trading_gateway.server.convert.tables import (
    ACCOUNT_TYPES,
    SIDES,
    WORKING_STATUSES,
    mapped,
    order_status,
    order_type,
    time_in_force,
)
from trading_gateway.server.reads.records import (
    AccountRead,
    BalanceData,
    ContractRef,
    OrderDetail,
)

# ---------------------------------------------------------------- entities


def account_fields(value: Account) -> Fields:
    account_type = enums.parse(enums.ACCOUNT_TYPES, value.account_type)
    return {
        "id": value.id,
        "name": value.name,
        "user_id": value.user_id or 0,
        "account_type": mapped(ACCOUNT_TYPES, account_type, pb.ACCOUNT_TYPE_UNSPECIFIED),
        "active": value.active,
        "readonly": bool(value.readonly),
        "margin_account_type": value.margin_account_type or "",
        "legal_status": value.legal_status or "",
        "timestamp": timestamp_fields(value.timestamp),
    }


def account(value: Account) -> pb.Account:
    return pb.Account(**account_fields(value))


def position_fields(value: Position, account_name: str, contract: ContractRef | None) -> Fields:
    tick = contract.tick_size if contract else None
    return {
        "id": value.id,
        "account_id": value.account_id,
        "account_name": account_name,
        "contract_id": value.contract_id,
        "symbol": contract.symbol if contract else "",
        "net_pos": value.net_pos,
        "net_price": price_fields(value.net_price, tick) if value.net_pos else None,
        "bought": value.bought,
        "bought_value": price_fields(value.bought_value, tick),
        "sold": value.sold,
        "sold_value": price_fields(value.sold_value, tick),
        "prev_pos": value.prev_pos,
        "prev_price": price_fields(value.prev_price, tick),
        "trade_date": date_fields(value.trade_date),
        "timestamp": timestamp_fields(value.timestamp),
        "value_per_point": price_fields(contract.value_per_point) if contract else None,
    }


def position(value: Position, account_name: str, contract: ContractRef | None) -> pb.Position:
    return pb.Position(**position_fields(value, account_name, contract))


def order_fields(detail: OrderDetail, account_name: str, contract: ContractRef | None) -> Fields:
    value, version = detail.order, detail.version
    status = order_status(value.ord_status)
    tick = contract.tick_size if contract else None
    fills = [f for f in detail.fills if f.active]
    priced = [(f.price, f.qty) for f in fills if f.price is not None and f.qty]
    avg = None
    if priced:
        total = sum(qty for _, qty in priced)
        avg = rounding.average(sum((price * qty for price, qty in priced), Decimal(0)), total)
    times = [t for t in (value.timestamp, *(f.timestamp for f in detail.fills)) if t is not None]
    return {
        "id": value.id,
        "account_id": value.account_id,
        "account_name": account_name,
        "contract_id": value.contract_id or 0,
        "symbol": contract.symbol if contract else "",
        "side": mapped(SIDES, enums.parse(enums.ACTIONS, value.action), pb.SIDE_UNSPECIFIED),
        "qty": (version.order_qty or 0) if version else 0,
        "filled_qty": sum(f.qty for f in fills),
        "order_type": order_type(version.order_type if version else None),
        "limit_price": price_fields(version.price, tick) if version else None,
        "stop_price": price_fields(version.stop_price, tick) if version else None,
        "status": status,
        "time_in_force": time_in_force(version.time_in_force if version else None),
        "avg_fill_price": price_fields(avg, tick),
        "created_time": timestamp_fields(value.timestamp),
        "updated_time": timestamp_fields(max(times)) if times else None,
        "version_id": version.id if version else 0,
        "working": status in WORKING_STATUSES,
        "text": (version.text or "") if version else "",
    }


def order(detail: OrderDetail, account_name: str, contract: ContractRef | None) -> pb.Order:
    return pb.Order(**order_fields(detail, account_name, contract))


#: Tradovate's balance figures: proto field → CashBalanceSnapshot attribute.
TRADOVATE_FIGURES: Final[dict[str, str]] = {
    "cash": "total_cash_value",
    "net_liquidation": "net_liq",
    "open_pnl": "open_pnl",
    "realized_pnl": "realized_pnl",
    "week_realized_pnl": "week_realized_pnl",
    "total_pnl": "total_pnl",
    "initial_margin": "initial_margin",
    "maintenance_margin": "maintenance_margin",
}
#: The gateway's mark-to-market: proto field → MarkFigures attribute.
MARK_FIGURES: Final[dict[str, str]] = {
    "mark_open_pnl": "open_pnl",
    "mark_total_pnl": "total_pnl",
    "mark_net_liquidation": "net_liquidation",
}
#: UnknownFigure.reason → the sentence that goes with it.
UNKNOWN_MESSAGES: Final[dict[str, str]] = {
    "NOT_FETCHED_YET": "the gateway has not fetched this figure from Tradovate yet; retry shortly",
    "FETCH_FAILED": "fetching this figure from Tradovate failed and no earlier value is known; "
    "retry shortly or read with READ_POLICY_UPSTREAM",
    "NOT_REPORTED": "Tradovate's answer did not include this figure",
    "NO_USD_CASH_ROW": "the account has cash balances in several currencies and none in USD",
    "NO_PRICE": "an open position has no quote yet, so the gateway cannot mark it",
}


def _time_fields(seconds: float | None) -> Fields | None:
    return epoch_fields(seconds) if seconds is not None else None


def unknown_figures(data: BalanceData) -> dict[str, str]:
    """Every figure the balance lacks, with its reason: the ones ``data.unknown`` names, and
    any other unset Tradovate figure as NOT_REPORTED (so none is ever unset silently)."""
    out = dict(data.unknown)
    snap = data.snapshot
    for name, attribute in TRADOVATE_FIGURES.items():
        if getattr(snap, attribute) is None:
            out.setdefault(name, "NOT_REPORTED")
    return out


def balance_fields(data: BalanceData, owner: Account) -> Fields:
    snap, currency = data.snapshot, data.currency
    fields: Fields = {
        "account_id": owner.id,
        "account_name": owner.name,
        "currency": currency,
        "tradovate_pnl_time": _time_fields(data.pnl_as_of),
        "margin_time": _time_fields(data.margin_as_of),
    }
    for name, attribute in TRADOVATE_FIGURES.items():
        fields[name] = money_fields(getattr(snap, attribute), currency)
    mark = data.mark
    if mark is not None:
        for name, attribute in MARK_FIGURES.items():
            fields[name] = money_fields(getattr(mark, attribute), currency)
        fields["mark_time"] = _time_fields(mark.as_of)
    fields["unknown_figures"] = [
        {"figure": figure, "reason": reason, "message": UNKNOWN_MESSAGES.get(reason, reason)}
        for figure, reason in sorted(unknown_figures(data).items())
    ]
    return fields


def balance(data: BalanceData, owner: Account) -> pb.Balance:
    return pb.Balance(**balance_fields(data, owner))


#: BalanceTotals fields: the Tradovate figures it sums (week realized PnL has no total).
_TOTALLED: Final = tuple(n for n in TRADOVATE_FIGURES if n != "week_realized_pnl")


def totals_fields(
    reads: Sequence[AccountRead[BalanceData]], missing_logins: Sequence[str] = ()
) -> Fields:
    """Sums over the accounts whose status is OK (``accounts_included``).

    A total is set only when every included account knows the figure. Otherwise it is
    left unset and ``gaps`` names the figure and the accounts that lack it: a partial sum
    that looks whole is never reported. A total adds the figures as each account shows
    them (rounded to its currency, ``rounding.total``), so it equals the sum of the shown
    parts. Mark totals need a mark on every included account
    (LIVE): an included account without one (read from UPSTREAM or the cache) is a gap; with
    no mark on any account the mark totals are absent, as they are on each account.
    ``missing_logins`` (logins whose accounts could not be listed) leave every total
    unset, each with a gap that names no account ids: their accounts are unknown."""
    ok = [(r.account.id, r.data) for r in reads if r.error is None and r.data is not None]
    fields: Fields = {"accounts_included": len(ok), "accounts_failed": len(reads) - len(ok)}
    gaps: list[Fields] = []
    for name in _TOTALLED:
        attribute = TRADOVATE_FIGURES[name]
        values = [(a, getattr(d.snapshot, attribute), d.currency) for a, d in ok]
        fields[name] = _total(name, values, gaps)
    marks = [(a, d.mark, d.currency) for a, d in ok]
    any_mark = any(m is not None for _, m, _ in marks)
    if any_mark:
        for name, attribute in MARK_FIGURES.items():
            values = [
                (a, getattr(m, attribute) if m is not None else None, currency)
                for a, m, currency in marks
            ]
            fields[name] = _total(name, values, gaps)
    if missing_logins:
        # Accounts of these logins are not in the answer at all: no total is whole.
        for name in (*_TOTALLED, *(MARK_FIGURES if any_mark else ())):
            if fields.get(name) is not None or not any(g["figure"] == name for g in gaps):
                fields[name] = None
                gaps.append({"figure": name, "account_ids": []})
    fields["gaps"] = gaps
    return fields


def _total(
    name: str, values: list[tuple[int, Decimal | None, str]], gaps: list[Fields]
) -> Fields | None:
    missing = sorted(a for a, v, _ in values if v is None)
    if missing:
        gaps.append({"figure": name, "account_ids": missing})
        return None
    return {"value": rounding.total((v, currency) for _, v, currency in values)}


def totals(reads: Sequence[AccountRead[BalanceData]]) -> pb.BalanceTotals:
    return pb.BalanceTotals(**totals_fields(reads))
