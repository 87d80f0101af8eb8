"""The only module that knows both the broker's structs and the gateway's protos.

Entity conversions use explicit enum tables (unknown values map to *_UNSPECIFIED);
money and prices stay Decimal end to end and are written by the rounding rule
(server/rounding.py): ``money_fields`` for money, ``price_fields`` for prices.
Response builders take ``status_of`` (server/api/status.account_status) so that the one
exception → status table stays in the API layer.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from decimal import Decimal
from typing import Any, Final, TypeVar

from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp
from tradovate_gateway.v1 import trading_pb2 as pb

from server import rounding
from server.broker import enums
from server.broker.schemas import Account, Position, TradeDate
from server.mark import position_open_pnl
from server.records import (
    AccountList,
    AccountRead,
    BalanceData,
    ContractRef,
    OrderDetail,
    OrdersData,
    PositionsData,
    Snapshot,
    Source,
)

StatusOf = Callable[[BaseException | None], pb.AccountStatus]
K = TypeVar("K")
V = TypeVar("V")
M = TypeVar("M", bound=Message)

SOURCES: Final[dict[Source, pb.Source.ValueType]] = {
    Source.UPSTREAM: pb.SOURCE_UPSTREAM,
    Source.CACHE: pb.SOURCE_CACHE,
    Source.LIVE: pb.SOURCE_LIVE,
}
ACCOUNT_TYPES: Final[dict[enums.AccountType, pb.AccountType.ValueType]] = {
    enums.AccountType.CUSTOMER: pb.ACCOUNT_TYPE_CUSTOMER,
    enums.AccountType.GIVEUP: pb.ACCOUNT_TYPE_GIVEUP,
    enums.AccountType.HOUSE: pb.ACCOUNT_TYPE_HOUSE,
    enums.AccountType.OMNIBUS: pb.ACCOUNT_TYPE_OMNIBUS,
    enums.AccountType.WASH: pb.ACCOUNT_TYPE_WASH,
    enums.AccountType.EMPLOYEE: pb.ACCOUNT_TYPE_EMPLOYEE,
}
SIDES: Final[dict[enums.Action, pb.Side.ValueType]] = {
    enums.Action.BUY: pb.SIDE_BUY,
    enums.Action.SELL: pb.SIDE_SELL,
}
ORDER_TYPES: Final[dict[enums.OrderType, pb.OrderType.ValueType]] = {
    enums.OrderType.MARKET: pb.ORDER_TYPE_MARKET,
    enums.OrderType.LIMIT: pb.ORDER_TYPE_LIMIT,
    enums.OrderType.STOP: pb.ORDER_TYPE_STOP,
    enums.OrderType.STOP_LIMIT: pb.ORDER_TYPE_STOP_LIMIT,
    enums.OrderType.MIT: pb.ORDER_TYPE_MIT,
    enums.OrderType.QTS: pb.ORDER_TYPE_QTS,
    enums.OrderType.TRAILING_STOP: pb.ORDER_TYPE_TRAILING_STOP,
    enums.OrderType.TRAILING_STOP_LIMIT: pb.ORDER_TYPE_TRAILING_STOP_LIMIT,
    enums.OrderType.LIMIT_IF_TOUCHED: pb.ORDER_TYPE_LIMIT_IF_TOUCHED,
}
ORDER_STATUSES: Final[dict[enums.OrdStatus, pb.OrderStatus.ValueType]] = {
    enums.OrdStatus.PENDING_NEW: pb.ORDER_STATUS_PENDING_NEW,
    enums.OrdStatus.WORKING: pb.ORDER_STATUS_WORKING,
    enums.OrdStatus.PENDING_REPLACE: pb.ORDER_STATUS_PENDING_REPLACE,
    enums.OrdStatus.PENDING_CANCEL: pb.ORDER_STATUS_PENDING_CANCEL,
    enums.OrdStatus.SUSPENDED: pb.ORDER_STATUS_SUSPENDED,
    enums.OrdStatus.FILLED: pb.ORDER_STATUS_FILLED,
    enums.OrdStatus.CANCELED: pb.ORDER_STATUS_CANCELED,
    enums.OrdStatus.REJECTED: pb.ORDER_STATUS_REJECTED,
    enums.OrdStatus.EXPIRED: pb.ORDER_STATUS_EXPIRED,
    enums.OrdStatus.COMPLETED: pb.ORDER_STATUS_COMPLETED,
    enums.OrdStatus.UNKNOWN: pb.ORDER_STATUS_UNKNOWN,
}
TIMES_IN_FORCE: Final[dict[enums.TimeInForce, pb.TimeInForce.ValueType]] = {
    enums.TimeInForce.DAY: pb.TIME_IN_FORCE_DAY,
    enums.TimeInForce.GTC: pb.TIME_IN_FORCE_GTC,
    enums.TimeInForce.GTD: pb.TIME_IN_FORCE_GTD,
    enums.TimeInForce.IOC: pb.TIME_IN_FORCE_IOC,
    enums.TimeInForce.FOK: pb.TIME_IN_FORCE_FOK,
}
WORKING_STATUSES: Final = frozenset(ORDER_STATUSES[s] for s in enums.WORKING_ORD_STATUSES)


def _mapped(table: Mapping[K, V], parsed: K | None, unspecified: V) -> V:
    return table.get(parsed, unspecified) if parsed is not None else unspecified


# ---------------------------------------------------------------- scalars
#
# The ``*_fields`` functions return plain dicts of proto fields: a response is built
# from nested dicts in one constructor call, which protobuf (upb) does about 2.5x faster
# than building each sub-message and copying it into its parent. The entity functions
# (``position``, ``order``, ...) wrap them for callers that want a message.

Fields = dict[str, Any]
_EPOCH: Final = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def money_fields(value: Decimal | None, currency: str = "USD") -> Fields | None:
    """Money at the currency's precision, half-even (server/rounding.py). None stays unset."""
    return None if value is None else {"value": rounding.money_text(value, currency)}


def price_fields(value: Decimal | None, tick: Decimal | None = None) -> Fields | None:
    """A price as sent, snapped to the tick where a double's residue is off it, at most 8
    places (server/rounding.py). None stays unset."""
    return None if value is None else {"value": rounding.price_text(value, tick)}


def timestamp_fields(value: dt.datetime | None) -> Fields | None:
    """Exact seconds and nanos of a datetime (naive ones are taken as UTC)."""
    if value is None:
        return None
    delta = (value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)) - _EPOCH
    return {"seconds": delta.days * 86_400 + delta.seconds, "nanos": delta.microseconds * 1000}


def timestamp(value: dt.datetime | None) -> Timestamp | None:
    fields = timestamp_fields(value)
    return None if fields is None else Timestamp(**fields)


def epoch_fields(seconds: float) -> Fields:
    """Epoch seconds (time.time()) to the microsecond."""
    micros = round(seconds * 1_000_000)
    return {"seconds": micros // 1_000_000, "nanos": (micros % 1_000_000) * 1000}


def epoch_ns_fields(ns: int) -> Fields:
    """Epoch nanoseconds (time.time_ns()), exactly."""
    seconds, nanos = divmod(ns, 1_000_000_000)
    return {"seconds": seconds, "nanos": nanos}


def fields_ns(fields: Fields | None) -> int:
    """Epoch nanoseconds of timestamp fields (``timestamp_fields``); 0 when unset."""
    return 0 if fields is None else fields["seconds"] * 1_000_000_000 + fields["nanos"]


def epoch(seconds: float) -> Timestamp:
    return Timestamp(**epoch_fields(seconds))


def now() -> Fields:
    return epoch_fields(time.time())


def date_fields(value: TradeDate | None) -> Fields | None:
    if value is None:
        return None
    return {"year": value.year, "month": value.month, "day": value.day}


# ---------------------------------------------------------------- enums


def order_status(wire: str | None) -> pb.OrderStatus.ValueType:
    parsed = enums.parse(enums.ORD_STATUSES, wire)
    return _mapped(ORDER_STATUSES, parsed, pb.ORDER_STATUS_UNSPECIFIED)


def _order_type(wire: str | None) -> pb.OrderType.ValueType:
    parsed = enums.parse(enums.ORDER_TYPES, wire)
    return _mapped(ORDER_TYPES, parsed, pb.ORDER_TYPE_UNSPECIFIED)


def _tif(wire: str | None) -> pb.TimeInForce.ValueType:
    parsed = enums.parse(enums.TIMES_IN_FORCE, wire)
    return _mapped(TIMES_IN_FORCE, parsed, pb.TIME_IN_FORCE_UNSPECIFIED)


# ---------------------------------------------------------------- entities


def account_fields(value: Account) -> Fields:
    account_type = enums.parse(enums.ACCOUNT_TYPES, value.account_type)
    return {
        "id": value.id,
        "name": value.name,
        "user_id": value.user_id or 0,
        "account_type": _mapped(ACCOUNT_TYPES, account_type, pb.ACCOUNT_TYPE_UNSPECIFIED),
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
        "side": _mapped(SIDES, enums.parse(enums.ACTIONS, value.action), pb.SIDE_UNSPECIFIED),
        "qty": (version.order_qty or 0) if version else 0,
        "filled_qty": sum(f.qty for f in fills),
        "order_type": _order_type(version.order_type if version else None),
        "limit_price": price_fields(version.price, tick) if version else None,
        "stop_price": price_fields(version.stop_price, tick) if version else None,
        "status": status,
        "time_in_force": _tif(version.time_in_force if version else None),
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


def totals_fields(reads: Sequence[AccountRead[BalanceData]]) -> Fields:
    """Sums over the accounts whose status is OK (``accounts_included``).

    A total is set only when every included account knows the figure. Otherwise it is
    left unset and ``gaps`` names the figure and the accounts that lack it: a partial sum
    that looks whole is never reported. A total adds the figures as each account shows
    them (rounded to its currency, ``rounding.total``), so it equals the sum of the shown
    parts. Mark totals need a mark on every included account
    (LIVE): an included account without one (read from UPSTREAM or the cache) is a gap; with
    no mark on any account the mark totals are absent, as they are on each account."""
    ok = [(r.account.id, r.data) for r in reads if r.error is None and r.data is not None]
    fields: Fields = {"accounts_included": len(ok), "accounts_failed": len(reads) - len(ok)}
    gaps: list[Fields] = []
    for name in _TOTALLED:
        attribute = TRADOVATE_FIGURES[name]
        values = [(a, getattr(d.snapshot, attribute), d.currency) for a, d in ok]
        fields[name] = _total(name, values, gaps)
    marks = [(a, d.mark, d.currency) for a, d in ok]
    if any(m is not None for _, m, _ in marks):
        for name, attribute in MARK_FIGURES.items():
            values = [
                (a, getattr(m, attribute) if m is not None else None, currency)
                for a, m, currency in marks
            ]
            fields[name] = _total(name, values, gaps)
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


def meta_fields(read: AccountRead[Any], status_of: StatusOf) -> Fields:
    return {
        "account_id": read.account.id,
        "account_name": read.account.name,
        "status": status_of(read.error),
        "source": SOURCES[read.source] if read.source else pb.SOURCE_UNSPECIFIED,
        "as_of": epoch_fields(read.as_of) if read.as_of is not None else None,
    }


def meta(read: AccountRead[Any], status_of: StatusOf) -> pb.AccountMeta:
    return pb.AccountMeta(**meta_fields(read, status_of))


# ---------------------------------------------------------------- per-account parts


def positions_part(
    read: AccountRead[PositionsData], status_of: StatusOf, *, include_flat: bool
) -> Fields:
    items: list[Fields] = []
    if read.data is not None:
        contracts = read.data.contracts
        name = read.account.name
        items = [
            position_fields(p, name, contracts.get(p.contract_id))
            for p in read.data.positions
            if include_flat or p.net_pos != 0
        ]
        if read.source is Source.LIVE:  # the gateway's mark is LIVE data only
            shown = [p for p in read.data.positions if include_flat or p.net_pos != 0]
            for fields, p in zip(items, shown, strict=True):
                add_open_pnl(fields, p, contracts.get(p.contract_id), read.data.last_prices)
    return {"meta": meta_fields(read, status_of), "positions": items}


def add_open_pnl(
    fields: Fields,
    value: Position,
    contract: ContractRef | None,
    last_prices: Mapping[int, Decimal],
) -> None:
    """Last price and open PnL (server/mark.py's rule), each when known."""
    last = last_prices.get(value.contract_id)
    if last is not None:
        fields["last_price"] = price_fields(last, contract.tick_size if contract else None)
    pnl = position_open_pnl(value, last, contract.value_per_point if contract else None)
    if pnl is not None:
        fields["open_pnl"] = money_fields(pnl)


def order_selector(order_filter: int, statuses: Iterable[int]) -> Callable[[Fields], bool]:
    """ORDER_FILTER_WORKING (default) or ALL, then optionally only these statuses."""
    wanted = frozenset(statuses)
    working_only = order_filter != pb.ORDER_FILTER_ALL

    def keep(item: Fields) -> bool:
        if working_only and not item["working"]:
            return False
        return not wanted or item["status"] in wanted

    return keep


def orders_part(
    read: AccountRead[OrdersData], status_of: StatusOf, keep: Callable[[Fields], bool]
) -> Fields:
    items: list[Fields] = []
    if read.data is not None:
        contracts = read.data.contracts
        name = read.account.name
        converted = (
            order_fields(d, name, contracts.get(d.order.contract_id or 0)) for d in read.data.orders
        )
        items = [o for o in converted if keep(o)]
    return {"meta": meta_fields(read, status_of), "orders": items}


def balance_part(read: AccountRead[BalanceData], status_of: StatusOf) -> Fields:
    ok = read.error is None and read.data is not None
    return {
        "meta": meta_fields(read, status_of),
        "balance": balance_fields(read.data, read.account) if ok and read.data else None,
    }


# ---------------------------------------------------------------- responses


def _build(message: type[M], fields: Fields) -> M:
    """One constructor call for the whole nested response (see the note on ``Fields``)."""
    return message(**fields)


def list_accounts_response(listing: AccountList) -> pb.ListAccountsResponse:
    fields = {
        "accounts": [account_fields(a) for a in listing.accounts],
        "source": SOURCES[listing.source],
        "as_of": epoch_fields(listing.as_of),
    }
    return _build(pb.ListAccountsResponse, fields)


def positions_response(
    reads: Sequence[AccountRead[PositionsData]], status_of: StatusOf, *, include_flat: bool
) -> pb.GetPositionsResponse:
    parts = [positions_part(r, status_of, include_flat=include_flat) for r in reads]
    return _build(pb.GetPositionsResponse, {"accounts": parts, "server_time": now()})


def orders_response(
    reads: Sequence[AccountRead[OrdersData]],
    status_of: StatusOf,
    *,
    order_filter: int,
    statuses: Iterable[int],
) -> pb.GetOrdersResponse:
    keep = order_selector(order_filter, statuses)
    parts = [orders_part(r, status_of, keep) for r in reads]
    return _build(pb.GetOrdersResponse, {"accounts": parts, "server_time": now()})


def pending_ids_response(
    reads: Sequence[AccountRead[OrdersData]], status_of: StatusOf
) -> pb.ListPendingOrderIdsResponse:
    parts: list[Fields] = []
    for read in reads:
        ids: list[int] = []
        if read.data is not None:
            ids = sorted(
                d.order.id
                for d in read.data.orders
                if order_status(d.order.ord_status) in WORKING_STATUSES
            )
        parts.append({"meta": meta_fields(read, status_of), "order_ids": ids})
    return _build(pb.ListPendingOrderIdsResponse, {"accounts": parts, "server_time": now()})


def balances_response(
    reads: Sequence[AccountRead[BalanceData]], status_of: StatusOf
) -> pb.GetBalancesResponse:
    fields = {
        "accounts": [balance_part(r, status_of) for r in reads],
        "totals": totals_fields(reads),
        "server_time": now(),
    }
    return _build(pb.GetBalancesResponse, fields)


def snapshot_response(
    snap: Snapshot, status_of: StatusOf, *, include_flat: bool, order_filter: int
) -> pb.GetSnapshotResponse:
    keep = order_selector(order_filter, ())
    parts = [
        {
            "account": account_fields(acc),
            "positions": positions_part(pos, status_of, include_flat=include_flat),
            "orders": orders_part(ords, status_of, keep),
            "balance": balance_part(bal, status_of),
        }
        for acc, pos, ords, bal in zip(
            snap.accounts, snap.positions, snap.orders, snap.balances, strict=True
        )
    ]
    fields = {"accounts": parts, "totals": totals_fields(snap.balances), "server_time": now()}
    return _build(pb.GetSnapshotResponse, fields)
