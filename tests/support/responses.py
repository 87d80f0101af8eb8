"""Whole read responses built as messages from server/convert's parts: the reference
that tests hold server/api/encoded.py's byte-assembled responses to. The gateway itself
never builds these (its reads return the encoder's bytes)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from tradovate_gateway.v1 import trading_pb2 as pb

from trading_gateway.server.convert import (
    StatusOf,
    account_fields,
    balance_part,
    now,
    order_selector,
    orders_part,
    positions_part,
    totals_fields,
)
from trading_gateway.server.reads.records import (
    AccountRead,
    BalanceData,
    OrdersData,
    PositionsData,
    Snapshot,
)


def positions_response(
    reads: Sequence[AccountRead[PositionsData]], status_of: StatusOf, *, include_flat: bool
) -> pb.GetPositionsResponse:
    fields: dict[str, Any] = {
        "accounts": [positions_part(r, status_of, include_flat=include_flat) for r in reads],
        "server_time": now(),
    }
    return pb.GetPositionsResponse(**fields)


def orders_response(
    reads: Sequence[AccountRead[OrdersData]],
    status_of: StatusOf,
    *,
    order_filter: int,
    statuses: Iterable[int],
) -> pb.GetOrdersResponse:
    keep = order_selector(order_filter, statuses)
    fields: dict[str, Any] = {
        "accounts": [orders_part(r, status_of, keep) for r in reads],
        "server_time": now(),
    }
    return pb.GetOrdersResponse(**fields)


def balances_response(
    reads: Sequence[AccountRead[BalanceData]], status_of: StatusOf
) -> pb.GetBalancesResponse:
    fields: dict[str, Any] = {
        "accounts": [balance_part(r, status_of) for r in reads],
        "totals": totals_fields(reads),
        "server_time": now(),
    }
    return pb.GetBalancesResponse(**fields)


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
    fields: dict[str, Any] = {
        "accounts": parts,
        "totals": totals_fields(snap.balances),
        "server_time": now(),
    }
    return pb.GetSnapshotResponse(**fields)
