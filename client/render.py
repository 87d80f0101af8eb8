"""Responses as aligned text tables or JSON. Pure functions: message in, string out.

A reply that covers accounts of more than one login shows which login each account is
under: a ``login NAME`` line above each run of rows of that login (the columns keep their
one-login widths, so the tables fit the same terminal), and ``login/name`` in the lines
below a table. Logins whose accounts could not be listed (``unavailable_logins``) are
listed under the table. A reply of one login looks exactly as it always has.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass

from google.protobuf import json_format, timestamp_pb2
from google.protobuf.message import Message
from google.rpc import code_pb2
from tradovate_gateway.v1 import trading_pb2

from trading_gateway.client.values import enum_label, to_datetime

Row = Sequence[str]
NONE = "-"


@dataclass(frozen=True)
class Heading:
    """A line of its own inside a table (a login's name above its rows): not a row of
    cells, so it sets no column's width."""

    text: str


def render_json(message: Message) -> str:
    """The response as JSON with the .proto field names (snake_case)."""
    return json_format.MessageToJson(message, preserving_proto_field_name=True)


def format_table(headers: Row, rows: Iterable[Row | Heading], right: Collection[int] = ()) -> str:
    """Columns padded to their widest cell, two spaces apart; `right` columns right-aligned.
    A Heading is written as it is, on its own line."""
    body = list(rows)
    widths = [len(h) for h in headers]
    for row in body:
        if isinstance(row, Heading):
            continue
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], len(cell))

    def line(cells: Row) -> str:
        padded = [
            cell.rjust(widths[i]) if i in right else cell.ljust(widths[i])
            for i, cell in enumerate(cells)
        ]
        return "  ".join(padded).rstrip()

    def text(row: Row | Heading) -> str:
        return row.text if isinstance(row, Heading) else line(row)

    return "\n".join([line(headers), *(text(row) for row in body)])


# ---------------------------------------------------------------- logins


def several_logins(logins: Iterable[str], unavailable: Sequence[trading_pb2.LoginStatus]) -> bool:
    """Does a reply cover more than one login (its accounts' and its unavailable ones)?"""
    return len({*logins, *(u.login for u in unavailable)}) > 1


def by_login(rows: Iterable[tuple[str, Row]], several: bool) -> list[Row | Heading]:
    """The rows, each tagged with its login; with ``several``, a ``login NAME`` heading
    above each run of one login's rows (rows stay in the reply's order)."""
    out: list[Row | Heading] = []
    last: str | None = None
    for login, row in rows:
        if several and login != last:
            out.append(Heading(f"login {login or NONE}"))
            last = login
        out.append(row)
    return out


def unavailable_text(text: str, unavailable: Sequence[trading_pb2.LoginStatus]) -> str:
    """``text`` and, when any login could not list its accounts, those logins under it."""
    if not unavailable:
        return text
    lines = [f"  {_status_text(u.login, u.status)}" for u in unavailable]
    return "\n".join([text, "", "logins not available (their accounts are missing):", *lines])


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


def account_label(meta: trading_pb2.AccountMeta, qualified: bool = False) -> str:
    """The account's name (its id when it has none); ``qualified``: as ``login/name``."""
    label = meta.account_name or str(meta.account_id)
    return f"{meta.login}/{label}" if qualified and meta.login else label


def status_line(meta: trading_pb2.AccountMeta, qualified: bool = False) -> str | None:
    """`DEMO2  DEADLINE_EXCEEDED: <message>` for an account whose part failed; else None.
    ``qualified`` names the account as ``login/name``."""
    if meta.status.code == code_pb2.OK:
        return None
    return _status_text(account_label(meta, qualified), meta.status)


def _status_text(label: str, status: trading_pb2.AccountStatus) -> str:
    text = f"{label}  {code_name(status.code)}"
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


def unavailable_logins(response: Message) -> int:
    """How many logins a response names as unable to list their accounts."""
    statuses = getattr(response, "unavailable_logins", None)
    return 0 if statuses is None else len(statuses)


def _with_statuses(
    text: str, metas: Iterable[trading_pb2.AccountMeta], qualified: bool = False
) -> str:
    problems = [line for m in metas if (line := status_line(m, qualified)) is not None]
    if not problems:
        return text
    return "\n".join([text, "", "accounts not OK:", *(f"  {line}" for line in problems)])


def _nothing(what: str, metas: Sequence[trading_pb2.AccountMeta]) -> str:
    """The line shown instead of an empty table."""
    if any(meta.status.code != code_pb2.OK for meta in metas):
        return f"no {what} in the accounts that answered"
    return f"no {what}"


# ---------------------------------------------------------------- accounts


def accounts_table(accounts: Sequence[trading_pb2.Account], several: bool = False) -> str:
    headers = ("ID", "NAME", "TYPE", "ACTIVE", "READONLY", "MARGIN TYPE", "LEGAL STATUS")
    rows = [
        (
            a.login,
            (
                str(a.id),
                a.name,
                enum_label(trading_pb2.AccountType, a.account_type, "ACCOUNT_TYPE_"),
                "yes" if a.active else "no",
                "yes" if a.readonly else "no",
                a.margin_account_type or NONE,
                a.legal_status or NONE,
            ),
        )
        for a in accounts
    ]
    if not rows:
        return "no accounts"
    return format_table(headers, by_login(rows, several), right={0})


def render_accounts(response: trading_pb2.ListAccountsResponse) -> str:
    several = several_logins((a.login for a in response.accounts), response.unavailable_logins)
    source = enum_label(trading_pb2.Source, response.source, "SOURCE_").lower()
    footer = f"{len(response.accounts)} accounts (source: {source}, as of {when(response.as_of)})"
    text = "\n".join([accounts_table(response.accounts, several), footer])
    return unavailable_text(text, response.unavailable_logins)


def _several(
    parts: Iterable[trading_pb2.AccountPositions]
    | Iterable[trading_pb2.AccountOrders]
    | Iterable[trading_pb2.AccountOrderIds]
    | Iterable[trading_pb2.AccountBalance],
    unavailable: Sequence[trading_pb2.LoginStatus],
) -> bool:
    return several_logins((part.meta.login for part in parts), unavailable)


# ---------------------------------------------------------------- positions


def positions_text(parts: Sequence[trading_pb2.AccountPositions], several: bool) -> str:
    headers = ("ACCOUNT", "SYMBOL", "NET POS", "NET PRICE", "OPEN PNL")
    rows = [
        (
            part.meta.login,
            (
                account_label(part.meta),
                p.symbol or str(p.contract_id),
                str(p.net_pos),
                dec(p.net_price),
                dec(p.open_pnl),
            ),
        )
        for part in parts
        for p in part.positions
    ]
    metas = [part.meta for part in parts]
    if not rows:
        return _with_statuses(_nothing("open positions", metas), metas, several)
    text = format_table(headers, by_login(rows, several), right={2, 3, 4})
    return _with_statuses(text, metas, several)


def render_positions(response: trading_pb2.GetPositionsResponse) -> str:
    several = _several(response.accounts, response.unavailable_logins)
    text = positions_text(response.accounts, several)
    return unavailable_text(text, response.unavailable_logins)


# ---------------------------------------------------------------- orders


def _price(order: trading_pb2.Order) -> str:
    prices = [dec(p) for p in (order.limit_price, order.stop_price) if p.value]
    return "/".join(prices) or NONE


def _order_time(order: trading_pb2.Order) -> str:
    if order.HasField("updated_time"):
        return when(order.updated_time)
    return when(order.created_time)


def orders_text(parts: Sequence[trading_pb2.AccountOrders], several: bool) -> str:
    headers = [
        *("ACCOUNT", "ID", "SYMBOL", "SIDE", "QTY", "FILLED", "TYPE", "LIMIT/STOP"),
        *("STATUS", "TIME (UTC)"),
    ]
    rows = [
        (
            part.meta.login,
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
            ),
        )
        for part in parts
        for o in part.orders
    ]
    metas = [part.meta for part in parts]
    if not rows:
        return _with_statuses(_nothing("orders", metas), metas, several)
    text = format_table(headers, by_login(rows, several), right={1, 4, 5, 7})
    return _with_statuses(text, metas, several)


def render_orders(response: trading_pb2.GetOrdersResponse) -> str:
    several = _several(response.accounts, response.unavailable_logins)
    text = orders_text(response.accounts, several)
    return unavailable_text(text, response.unavailable_logins)


def render_pending(response: trading_pb2.ListPendingOrderIdsResponse) -> str:
    several = _several(response.accounts, response.unavailable_logins)
    headers = ("ACCOUNT", "COUNT", "ORDER IDS")
    rows = [
        (
            part.meta.login,
            (
                account_label(part.meta),
                str(len(part.order_ids)),
                ",".join(map(str, part.order_ids)),
            ),
        )
        for part in response.accounts
        if part.meta.status.code == code_pb2.OK
    ]
    metas = [part.meta for part in response.accounts]
    if rows:
        text = format_table(headers, by_login(rows, several), right={1})
    else:
        text = _nothing("pending orders", metas)
    return unavailable_text(_with_statuses(text, metas, several), response.unavailable_logins)


# ---------------------------------------------------------------- balances


#: The BalanceTotals fields the balances table shows, in its column order.
_BALANCE_COLUMNS = (
    *("cash", "net_liquidation", "open_pnl", "realized_pnl"),
    *("initial_margin", "maintenance_margin"),
)


def _balance_cells(b: trading_pb2.Balance | trading_pb2.BalanceTotals) -> tuple[str, ...]:
    return tuple(dec(getattr(b, name)) for name in _BALANCE_COLUMNS)


def balances_text(
    parts: Sequence[trading_pb2.AccountBalance],
    totals: trading_pb2.BalanceTotals,
    several: bool = False,
) -> str:
    # Short headers: with Tradovate-sized figures the table fits 80 columns.
    headers = [
        *("ACCOUNT", "CCY", "CASH", "NET LIQ", "OPEN PNL", "REALIZED"),
        *("INIT MRG", "MAINT MRG"),
    ]
    rows = [
        (
            part.meta.login,
            (
                account_label(part.meta),
                part.balance.currency or NONE,
                *_balance_cells(part.balance),
            ),
        )
        for part in parts
        if part.HasField("balance")
    ]
    metas = [part.meta for part in parts]
    if not rows:
        return _with_statuses(_nothing("balances", metas), metas, several)
    counted = f"{totals.accounts_included} ok"
    if totals.accounts_failed:
        counted += f", {totals.accounts_failed} failed"
    total = (f"TOTAL ({counted})", "", *_balance_cells(totals))
    body = [*by_login(rows, several), total]
    text = format_table(headers, body, right=set(range(2, len(headers))))
    # A total some account cannot give is left out, never summed as if it were 0.
    for gap in totals.gaps:
        if gap.figure not in _BALANCE_COLUMNS:
            continue
        ids = ", ".join(str(a) for a in gap.account_ids)
        text += f"\nno total {gap.figure}: unknown for account(s) {ids}"
    return _with_statuses(text, metas, several)


def render_balances(response: trading_pb2.GetBalancesResponse) -> str:
    several = _several(response.accounts, response.unavailable_logins)
    text = balances_text(response.accounts, response.totals, several)
    return unavailable_text(text, response.unavailable_logins)


# ---------------------------------------------------------------- snapshot


def render_snapshot(response: trading_pb2.GetSnapshotResponse) -> str:
    parts = response.accounts
    several = several_logins((s.positions.meta.login for s in parts), response.unavailable_logins)
    sections = [
        ("ACCOUNTS", accounts_table([s.account for s in parts if s.HasField("account")], several)),
        ("POSITIONS", positions_text([s.positions for s in parts], several)),
        ("ORDERS", orders_text([s.orders for s in parts], several)),
        ("BALANCES", balances_text([s.balance for s in parts], response.totals, several)),
    ]
    text = "\n\n".join(f"== {title}\n{body}" for title, body in sections)
    return unavailable_text(text, response.unavailable_logins)
