"""Comparisons of one settle point: a path (LIVE or UPSTREAM) against the simulator's ledger,
and LIVE against UPSTREAM. Each yields ``(account_id, "figure: what differs")``.

Tradovate's figure is the double it sends (the ledger's ``reported``). The expectation is
that double rounded by the documented rule; the ledger's exact value must agree with it to
within double residue, so a wrong engine figure fails as well as a wrong gateway one.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from tradovate_gateway.v1 import trading_pb2 as pb

from tests.oracle import rounding

Mismatch = tuple[int, str]
Ledger = Mapping[int, dict[str, Any]]

#: Balance fields of the cash row and margins: LIVE reads them from the sync socket.
ACCOUNT_FIGURES = {
    "cash": "totalCashValue",
    "realized_pnl": "realizedPnL",
    "week_realized_pnl": "weekRealizedPnL",
    "initial_margin": "initialMargin",
    "maintenance_margin": "maintenanceMargin",
}
#: Tradovate's marked figures: only getcashbalancesnapshot carries them.
MARKED_FIGURES = {
    "open_pnl": "openPnL",
    "net_liquidation": "netLiq",
    "total_pnl": "totalPnL",
}
ALL_FIGURES = {**ACCOUNT_FIGURES, **MARKED_FIGURES}
RESIDUE = Decimal("1e-6")
STATUSES = {
    "Working": pb.ORDER_STATUS_WORKING,
    "Filled": pb.ORDER_STATUS_FILLED,
    "Canceled": pb.ORDER_STATUS_CANCELED,
}


@dataclass(frozen=True, slots=True)
class Reads:
    """One path's answers for the settle point's accounts."""

    balances: pb.GetBalancesResponse
    positions: pb.GetPositionsResponse
    orders: pb.GetOrdersResponse


def _text(message: Any, field: str) -> str | None:
    return getattr(message, field).value if message.HasField(field) else None


def sources(reads: Reads, expected: pb.Source.ValueType) -> Iterator[Mismatch]:
    """Every account answered OK, from the source the policy promises."""
    parts: list[pb.AccountBalance | pb.AccountPositions | pb.AccountOrders] = [
        *reads.balances.accounts,
        *reads.positions.accounts,
        *reads.orders.accounts,
    ]
    for part in parts:
        meta = part.meta
        if meta.status.code != 0:
            yield meta.account_id, f"status {meta.status.code} {meta.status.message!r}"
        elif meta.source != expected:
            name = pb.Source.Name(meta.source)
            yield meta.account_id, f"source {name}, expected {pb.Source.Name(expected)}"


def covers(reads: Reads, account_ids: Sequence[int]) -> Iterator[Mismatch]:
    """Every asked account is in each part, once (an empty answer would compare nothing)."""
    for kind, parts in (
        ("balances", reads.balances.accounts),
        ("positions", reads.positions.accounts),
        ("orders", reads.orders.accounts),
    ):
        got = sorted(p.meta.account_id for p in parts)
        if got != sorted(account_ids):
            for account_id in sorted(set(account_ids) ^ set(got)) or account_ids[:1]:
                yield account_id, f"{kind}: answered for {len(got)} of {len(account_ids)} accounts"


def balances_vs_ledger(
    reads: Reads, ledger: Ledger, figures: Mapping[str, str]
) -> Iterator[Mismatch]:
    for part in reads.balances.accounts:
        account_id = part.meta.account_id
        row = ledger[account_id]
        for field, key in figures.items():
            got = _text(part.balance, field)
            reported = rounding.wire(row["reported"][key])
            exact = Decimal(row["exact"][key])
            if abs(reported - exact) > RESIDUE:
                yield account_id, f"{field}: the simulator sends {reported}, its exact is {exact}"
            if got is None:
                yield account_id, f"{field}: unset, ledger {rounding.money(reported)}"
            elif rounding.money(Decimal(got)) != rounding.money(reported):
                yield account_id, f"{field}: {got}, ledger {rounding.money(reported)} ({exact})"


def balances_across(live: Reads, upstream: Reads, fields: Sequence[str]) -> Iterator[Mismatch]:
    """LIVE and UPSTREAM give byte-identical strings."""
    up = {p.meta.account_id: p.balance for p in upstream.balances.accounts}
    for part in live.balances.accounts:
        account_id = part.meta.account_id
        for field in fields:
            a, b = _text(part.balance, field), _text(up[account_id], field)
            if a != b:
                yield account_id, f"{field}: LIVE {a}, UPSTREAM {b}"


def _positions(reads: Reads) -> dict[int, dict[int, pb.Position]]:
    return {p.meta.account_id: {x.id: x for x in p.positions} for p in reads.positions.accounts}


def positions_vs_ledger(reads: Reads, ledger: Ledger) -> Iterator[Mismatch]:
    for account_id, got in _positions(reads).items():
        truth = {p["id"]: p for p in ledger[account_id]["positions"]}
        if set(got) != set(truth):
            yield account_id, f"position ids {sorted(got)}, ledger {sorted(truth)}"
            continue
        for position_id, row in truth.items():
            position = got[position_id]
            where = f"position {position_id} ({row['symbol']})"
            if position.net_pos != row["netPos"]:
                yield account_id, f"{where} net_pos: {position.net_pos}, ledger {row['netPos']}"
            net_price = _text(position, "net_price")
            if row["netPrice"] is None:
                if net_price is not None:
                    yield account_id, f"{where} net_price: {net_price} on a flat position"
                continue
            reported = rounding.wire(row["netPrice"])
            exact = Decimal(row["netPriceExact"])
            if abs(reported - exact) > RESIDUE:
                yield account_id, f"{where} netPrice: simulator sends {reported}, exact {exact}"
            want = rounding.average(reported)
            if net_price is None or rounding.average(Decimal(net_price)) != want:
                yield account_id, f"{where} net_price: {net_price}, ledger {want} ({exact})"


POSITION_FIELDS = ("net_pos", "net_price", "bought", "bought_value", "sold", "sold_value")


def positions_across(live: Reads, upstream: Reads) -> Iterator[Mismatch]:
    up = _positions(upstream)
    for account_id, got in _positions(live).items():
        if set(got) != set(up[account_id]):
            yield account_id, f"position ids LIVE {sorted(got)}, UPSTREAM {sorted(up[account_id])}"
            continue
        for position_id, position in got.items():
            other = up[account_id][position_id]
            for field in POSITION_FIELDS:
                a, b = _field_text(position, field), _field_text(other, field)
                if a != b:
                    yield account_id, f"position {position_id} {field}: LIVE {a}, UPSTREAM {b}"


def _field_text(message: Any, field: str) -> str | None:
    value = getattr(message, field)
    if isinstance(value, pb.Decimal):
        return _text(message, field)
    return str(value)


def _orders(reads: Reads) -> dict[int, dict[int, pb.Order]]:
    return {p.meta.account_id: {x.id: x for x in p.orders} for p in reads.orders.accounts}


def orders_vs_ledger(reads: Reads, ledger: Ledger) -> Iterator[Mismatch]:
    for account_id, got in _orders(reads).items():
        truth = {o["id"]: o for o in ledger[account_id]["orders"]}
        if set(got) != set(truth):
            missing, extra = sorted(set(truth) - set(got)), sorted(set(got) - set(truth))
            yield account_id, f"orders missing {missing}, unknown {extra}"
            continue
        for order_id, row in truth.items():
            order = got[order_id]
            where = f"order {order_id}"
            if order.status != STATUSES[row["status"]]:
                status = pb.OrderStatus.Name(order.status)
                yield account_id, f"{where} status: {status}, ledger {row['status']}"
            if (order.qty, order.filled_qty) != (row["qty"], row["filled"]):
                yield (
                    account_id,
                    (
                        f"{where} qty/filled: {order.qty}/{order.filled_qty}, "
                        f"ledger {row['qty']}/{row['filled']}"
                    ),
                )
            limit = _text(order, "limit_price")
            want_limit = None if row["price"] is None else rounding.wire(row["price"])
            if (None if limit is None else Decimal(limit)) != want_limit:
                yield account_id, f"{where} limit_price: {limit}, ledger {want_limit}"
            stop = _text(order, "stop_price")
            want_stop = None if row["stopPrice"] is None else rounding.wire(row["stopPrice"])
            if (None if stop is None else Decimal(stop)) != want_stop:
                yield account_id, f"{where} stop_price: {stop}, ledger {want_stop}"
            avg = _text(order, "avg_fill_price")
            exact = row["avgFillPriceExact"]
            want = None if exact is None else rounding.average(Decimal(exact))
            if (None if avg is None else rounding.average(Decimal(avg))) != want:
                yield account_id, f"{where} avg_fill_price: {avg}, ledger {want} ({exact})"


ORDER_FIELDS = (
    "status", "qty", "filled_qty", "limit_price", "stop_price", "avg_fill_price", "side",
    "order_type", "working", "contract_id", "symbol",
)  # fmt: skip


def orders_across(live: Reads, upstream: Reads) -> Iterator[Mismatch]:
    up = _orders(upstream)
    for account_id, got in _orders(live).items():
        if set(got) != set(up[account_id]):
            yield account_id, f"order ids LIVE {sorted(got)}, UPSTREAM {sorted(up[account_id])}"
            continue
        for order_id, order in got.items():
            for field in ORDER_FIELDS:
                a = _field_text(order, field)
                b = _field_text(up[account_id][order_id], field)
                if a != b:
                    yield account_id, f"order {order_id} {field}: LIVE {a}, UPSTREAM {b}"


def rounded_strings(reads: Reads, figures: Iterable[str]) -> Iterator[Mismatch]:
    """Money at most 2 decimal places, averages at most 8: no float residue in any string."""
    for part in reads.balances.accounts:
        for field in figures:
            text = _text(part.balance, field)
            if text is not None and rounding.places(text) > rounding.MONEY_PLACES:
                yield part.meta.account_id, f"{field}: {text} has more than cents"
    for account_id, positions in _positions(reads).items():
        for position in positions.values():
            text = _text(position, "net_price")
            if text is not None and rounding.places(text) > rounding.AVERAGE_PLACES:
                yield account_id, f"position {position.id} net_price: {text} has residue"
    for account_id, orders in _orders(reads).items():
        for order in orders.values():
            text = _text(order, "avg_fill_price")
            if text is not None and rounding.places(text) > rounding.AVERAGE_PLACES:
                yield account_id, f"order {order.id} avg_fill_price: {text} has residue"
