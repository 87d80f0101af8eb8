"""Responses as aligned text tables or JSON. Pure functions: message in, string out."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence

from google.protobuf import json_format, timestamp_pb2
from google.protobuf.message import Message
from google.rpc import code_pb2
from tradovate_gateway.v1 import trading_pb2

from trading_gateway.client.values import enum_label, to_datetime

Row = Sequence[str]
NONE = "-"


def render_json(message: Message) -> str:
    """The response as JSON with the .proto field names (snake_case)."""
    return json_format.MessageToJson(message, preserving_proto_field_name=True)


def format_table(headers: Row, rows: Iterable[Row], right: Collection[int] = ()) -> str:
    """Columns padded to their widest cell, two spaces apart; `right` columns right-aligned."""
    body = [list(row) for row in rows]
    widths = [len(h) for h in headers]
    for row in body:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], len(cell))

    def line(cells: Row) -> str:
        padded = [
            cell.rjust(widths[i]) if i in right else cell.ljust(widths[i])
            for i, cell in enumerate(cells)
        ]
        return "  ".join(padded).rstrip()

    return "\n".join([line(headers), *(line(row) for row in body)])


# ---------------------------------------------------------------- cells


def dec(value: trading_pb2.Decimal) -> str:
    """A Decimal's exact text, or "-" when unset."""
    return value.value or NONE


def when(value: timestamp_pb2.Timestamp) -> str:
    """A Timestamp as `YYYY-MM-DD HH:MM:SS` (UTC), or "-" when unset."""
    moment = to_datetime(value)
    return NONE if moment is None else f"{moment:%Y-%m-%d %H:%M:%S}"


def clock(value: timestamp_pb2.Timestamp) -> str:
    """A Timestamp's time of day `HH:MM:SS` (UTC), or "-" when unset: for live tables."""
    moment = to_datetime(value)
    return NONE if moment is None else f"{moment:%H:%M:%S}"


def account_label(meta: trading_pb2.AccountMeta) -> str:
    return meta.account_name or str(meta.account_id)


def status_line(meta: trading_pb2.AccountMeta) -> str | None:
    """`DEMO2  DEADLINE_EXCEEDED: <message>` for an account whose part failed; else None."""
    status = meta.status
    if status.code == code_pb2.OK:
        return None
    text = f"{account_label(meta)}  {code_name(status.code)}"
    if status.message:
        text += f": {status.message}"
    extras = []
    if status.reason:
        extras.append(status.reason)
    if status.HasField("retry_after"):
        seconds = status.retry_after.ToTimedelta().total_seconds()
        extras.append(f"retry after {seconds:g}s")
    return text + (f" [{', '.join(extras)}]" if extras else "")


def code_name(code: int) -> str:
    try:
        return str(code_pb2.Code.Name(code))
    except ValueError:
        return f"CODE_{code}"


def failed_accounts(response: Message) -> int:
    """How many accounts in a response answered with an error (in any part, for a snapshot)."""
    metas: list[trading_pb2.AccountMeta] = []
    if isinstance(response, trading_pb2.GetSnapshotResponse):
        for snap in response.accounts:
            metas += (snap.positions.meta, snap.orders.meta, snap.balance.meta)
    elif isinstance(
        response,
        trading_pb2.GetPositionsResponse
        | trading_pb2.GetOrdersResponse
        | trading_pb2.ListPendingOrderIdsResponse
        | trading_pb2.GetBalancesResponse,
    ):
        metas += (part.meta for part in response.accounts)
    return len({meta.account_id or meta.account_name for meta in metas if meta.status.code})


def _with_statuses(text: str, metas: Iterable[trading_pb2.AccountMeta]) -> str:
    problems = [line for line in map(status_line, metas) if line is not None]
    if not problems:
        return text
    return "\n".join([text, "", "accounts not OK:", *(f"  {line}" for line in problems)])


def _nothing(what: str, metas: Sequence[trading_pb2.AccountMeta]) -> str:
    """The line shown instead of an empty table."""
    if any(meta.status.code != code_pb2.OK for meta in metas):
        return f"no {what} in the accounts that answered"
    return f"no {what}"


# ---------------------------------------------------------------- accounts


def accounts_table(accounts: Sequence[trading_pb2.Account]) -> str:
    headers = ("ID", "NAME", "TYPE", "ACTIVE", "READONLY", "MARGIN TYPE", "LEGAL STATUS")
    rows = [
        (
            str(a.id),
            a.name,
            enum_label(trading_pb2.AccountType, a.account_type, "ACCOUNT_TYPE_"),
            "yes" if a.active else "no",
            "yes" if a.readonly else "no",
            a.margin_account_type or NONE,
            a.legal_status or NONE,
        )
        for a in accounts
    ]
    if not rows:
        return "no accounts"
    return format_table(headers, rows, right={0})


def render_accounts(response: trading_pb2.ListAccountsResponse) -> str:
    source = enum_label(trading_pb2.Source, response.source, "SOURCE_").lower()
    footer = f"{len(response.accounts)} accounts (source: {source}, as of {when(response.as_of)})"
    return "\n".join([accounts_table(response.accounts), footer])


# ---------------------------------------------------------------- positions


def render_positions(response: trading_pb2.GetPositionsResponse) -> str:
    headers = ("ACCOUNT", "SYMBOL", "NET POS", "NET PRICE", "OPEN PNL")
    rows = [
        (
            account_label(part.meta),
            p.symbol or str(p.contract_id),
            str(p.net_pos),
            dec(p.net_price),
            dec(p.open_pnl),
        )
        for part in response.accounts
        for p in part.positions
    ]
    metas = [part.meta for part in response.accounts]
    text = (
        format_table(headers, rows, right={2, 3, 4}) if rows else _nothing("open positions", metas)
    )
    return _with_statuses(text, metas)


# ---------------------------------------------------------------- orders


def _price(order: trading_pb2.Order) -> str:
    prices = [dec(p) for p in (order.limit_price, order.stop_price) if p.value]
    return "/".join(prices) or NONE


def _order_time(order: trading_pb2.Order) -> str:
    if order.HasField("updated_time"):
        return when(order.updated_time)
    return when(order.created_time)


def render_orders(response: trading_pb2.GetOrdersResponse) -> str:
    headers = [
        *("ACCOUNT", "ID", "SYMBOL", "SIDE", "QTY", "FILLED", "TYPE", "LIMIT/STOP"),
        *("STATUS", "TIME (UTC)"),
    ]
    rows = [
        (
            account_label(part.meta),
            str(o.id),
            o.symbol or str(o.contract_id),
            enum_label(trading_pb2.Side, o.side, "SIDE_"),
            str(o.qty),
            str(o.filled_qty),
            enum_label(trading_pb2.OrderType, o.order_type, "ORDER_TYPE_"),
            _price(o),
            enum_label(trading_pb2.OrderStatus, o.status, "ORDER_STATUS_"),
            _order_time(o),
        )
        for part in response.accounts
        for o in part.orders
    ]
    metas = [part.meta for part in response.accounts]
    text = format_table(headers, rows, right={1, 4, 5, 7}) if rows else _nothing("orders", metas)
    return _with_statuses(text, metas)


def render_pending(response: trading_pb2.ListPendingOrderIdsResponse) -> str:
    headers = ("ACCOUNT", "COUNT", "ORDER IDS")
    rows = [
        (account_label(part.meta), str(len(part.order_ids)), ",".join(map(str, part.order_ids)))
        for part in response.accounts
        if part.meta.status.code == code_pb2.OK
    ]
    metas = [part.meta for part in response.accounts]
    text = format_table(headers, rows, right={1}) if rows else _nothing("pending orders", metas)
    return _with_statuses(text, metas)


# ---------------------------------------------------------------- balances


#: The BalanceTotals fields the balances table shows, in its column order.
_BALANCE_COLUMNS = (
    *("cash", "net_liquidation", "open_pnl", "realized_pnl"),
    *("initial_margin", "maintenance_margin"),
)


def _balance_cells(b: trading_pb2.Balance | trading_pb2.BalanceTotals) -> tuple[str, ...]:
    return tuple(dec(getattr(b, name)) for name in _BALANCE_COLUMNS)


def balances_text(
    parts: Sequence[trading_pb2.AccountBalance], totals: trading_pb2.BalanceTotals
) -> str:
    # Short headers: with Tradovate-sized figures the table fits 80 columns.
    headers = [
        *("ACCOUNT", "CCY", "CASH", "NET LIQ", "OPEN PNL", "REALIZED"),
        *("INIT MRG", "MAINT MRG"),
    ]
    rows = [
        (account_label(part.meta), part.balance.currency or NONE, *_balance_cells(part.balance))
        for part in parts
        if part.HasField("balance")
    ]
    if not rows:
        metas = [part.meta for part in parts]
        return _with_statuses(_nothing("balances", metas), metas)
    counted = f"{totals.accounts_included} ok"
    if totals.accounts_failed:
        counted += f", {totals.accounts_failed} failed"
    rows.append((f"TOTAL ({counted})", "", *_balance_cells(totals)))
    text = format_table(headers, rows, right=set(range(2, len(headers))))
    # A total some account cannot give is left out, never summed as if it were 0.
    for gap in totals.gaps:
        if gap.figure not in _BALANCE_COLUMNS:
            continue
        ids = ", ".join(str(a) for a in gap.account_ids)
        text += f"\nno total {gap.figure}: unknown for account(s) {ids}"
    return _with_statuses(text, (part.meta for part in parts))


def render_balances(response: trading_pb2.GetBalancesResponse) -> str:
    return balances_text(response.accounts, response.totals)


# ---------------------------------------------------------------- snapshot


def render_snapshot(response: trading_pb2.GetSnapshotResponse) -> str:
    parts = response.accounts
    positions = trading_pb2.GetPositionsResponse(accounts=[s.positions for s in parts])
    orders = trading_pb2.GetOrdersResponse(accounts=[s.orders for s in parts])
    sections = [
        ("ACCOUNTS", accounts_table([s.account for s in parts if s.HasField("account")])),
        ("POSITIONS", render_positions(positions)),
        ("ORDERS", render_orders(orders)),
        ("BALANCES", balances_text([s.balance for s in parts], response.totals)),
    ]
    return "\n\n".join(f"== {title}\n{body}" for title, body in sections)
