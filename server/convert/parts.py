"""Per-account parts and the responses built here: a meta, positions, orders, a balance.

``status_of`` (server/api/status.account_status) maps each per-account exception, so
the one exception → status table stays in the API layer.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from decimal import Decimal
from typing import Any, TypeVar

from google.protobuf.message import Message
from tradovate_gateway.v1 import trading_pb2 as pb

from trading_gateway.server.broker.schemas import Position
from trading_gateway.server.convert.entities import (
    account_fields,
    balance_fields,
    order_fields,
    position_fields,
)
from trading_gateway.server.convert.scalars import (
    Fields,
    epoch_fields,
    money_fields,
    now,
    price_fields,
)
from trading_gateway.server.convert.tables import SOURCES, WORKING_STATUSES, order_status
from trading_gateway.server.mark import position_open_pnl
from trading_gateway.server.reads.records import (
    AccountList,
    AccountRead,
    BalanceData,
    ContractRef,
    LoginProblem,
    OrdersData,
    PositionsData,
    Source,
)

StatusOf = Callable[[BaseException | None], pb.AccountStatus]
M = TypeVar("M", bound=Message)


def meta_fields(read: AccountRead[Any], status_of: StatusOf) -> Fields:
    return {
        "account_id": read.account.id,
        "account_name": read.account.name,
        "status": status_of(read.error),
        "source": SOURCES[read.source] if read.source else pb.SOURCE_UNSPECIFIED,
        "as_of": epoch_fields(read.as_of) if read.as_of is not None else None,
        "login": read.login,
    }


def login_statuses(problems: Iterable[LoginProblem], status_of: StatusOf) -> list[Fields]:
    """``unavailable_logins``: each login a call could not list, with why."""
    return [{"login": p.login, "status": status_of(p.error)} for p in problems]


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


def list_accounts_response(
    listing: AccountList, status_of: StatusOf | None = None
) -> pb.ListAccountsResponse:
    accounts = [account_fields(a) for a in listing.accounts]
    for fields, login in zip(accounts, listing.logins, strict=False):
        fields["login"] = login
    fields = {
        "accounts": accounts,
        "source": SOURCES[listing.source],
        "as_of": epoch_fields(listing.as_of),
    }
    if listing.unavailable and status_of is not None:
        fields["unavailable_logins"] = login_statuses(listing.unavailable, status_of)
    return _build(pb.ListAccountsResponse, fields)


def pending_ids_response(
    reads: Sequence[AccountRead[OrdersData]],
    status_of: StatusOf,
    unavailable: Iterable[LoginProblem] = (),
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
    fields: Fields = {"accounts": parts, "server_time": now()}
    if missing := login_statuses(unavailable, status_of):
        fields["unavailable_logins"] = missing
    return _build(pb.ListPendingOrderIdsResponse, fields)
