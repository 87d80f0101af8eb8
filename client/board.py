"""WatchBoard: the state a `watch` builds from StreamUpdates, rendered as live tables.

It applies snapshots (a resync replaces the accounts it covers) and deltas, and renders
positions, working orders and PnL per account with the table helpers of client/render.py.
A stream over several logins has a sequence and an upstream health per login: the status
line then shows each login's sequence and names the logins whose upstream is down.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation

from tradovate_gateway.v1 import trading_pb2

from trading_gateway.client.render import NONE, clock, dec, format_table, status_line
from trading_gateway.client.values import enum_label


@dataclass
class AccountBoard:
    account_id: int
    name: str = ""
    positions: dict[int, trading_pb2.Position] = field(default_factory=dict)
    orders: dict[int, trading_pb2.Order] = field(default_factory=dict)
    balance: trading_pb2.Balance | None = None
    pnl: trading_pb2.PnlUpdate | None = None
    problem: str | None = None


@dataclass
class LoginLine:
    """One login's part of the status line."""

    sequence: int = 0
    upstream_healthy: bool = True


class WatchBoard:
    """Positions, orders, balances and PnL per account, kept current from a stream."""

    def __init__(self) -> None:
        self.accounts: dict[int, AccountBoard] = {}
        self.epoch = ""
        self.sequence = 0
        self.upstream_healthy = True
        self.resyncs = 0
        #: Per login (StreamUpdate.login) seen on the stream.
        self.logins: dict[str, LoginLine] = {}

    def _board(self, account_id: int, name: str = "") -> AccountBoard:
        board = self.accounts.get(account_id)
        if board is None:
            board = self.accounts[account_id] = AccountBoard(account_id, name)
        elif name:
            board.name = name
        return board

    def apply(self, update: trading_pb2.StreamUpdate) -> None:
        payload = update.WhichOneof("payload")
        self.epoch = update.epoch or self.epoch
        line = self.logins.setdefault(update.login, LoginLine()) if update.login else None
        if payload == "subscription":
            for item in update.subscription.accounts:
                board = self._board(item.meta.account_id, item.meta.account_name)
                board.problem = status_line(item.meta)
        elif payload == "snapshot":
            self._apply_snapshot(update.snapshot)
        elif payload == "snapshot_complete":
            self.sequence = update.snapshot_complete.sequence
            self.resyncs += int(update.snapshot_complete.resync)
            if line is not None:
                line.sequence = update.snapshot_complete.sequence
        elif payload == "heartbeat":
            if line is not None:
                line.upstream_healthy = update.heartbeat.upstream_healthy
                self.upstream_healthy = all(x.upstream_healthy for x in self.logins.values())
            else:
                self.upstream_healthy = update.heartbeat.upstream_healthy
        else:
            self.sequence = max(self.sequence, update.sequence)
            if line is not None:
                line.sequence = max(line.sequence, update.sequence)
            self._apply_delta(update, payload)

    def _apply_snapshot(self, chunk: trading_pb2.SnapshotChunk) -> None:
        snap = chunk.account
        account_id = (
            snap.account.id or snap.positions.meta.account_id or snap.balance.meta.account_id
        )
        board = self._board(account_id, snap.account.name)
        board.positions = {p.id: p for p in snap.positions.positions}
        board.orders = {o.id: o for o in snap.orders.orders}
        board.balance = snap.balance.balance if snap.balance.HasField("balance") else None

    def _apply_delta(self, update: trading_pb2.StreamUpdate, payload: str | None) -> None:
        board = self._board(update.account_id)
        deleted = trading_pb2.CHANGE_TYPE_DELETED
        if payload == "position":
            position = update.position.position
            if update.position.change == deleted:
                board.positions.pop(position.id, None)
            else:
                board.positions[position.id] = position
        elif payload == "order":
            order = update.order.order
            if update.order.change == deleted:
                board.orders.pop(order.id, None)
            else:
                board.orders[order.id] = order
        elif payload == "balance":
            board.balance = update.balance.balance
        elif payload == "pnl":
            board.pnl = update.pnl
            board.name = board.name or update.pnl.account_name
        elif payload == "account":
            board.name = update.account.account.name
            if update.account.change == deleted:
                self.accounts.pop(update.account_id, None)

    # ------------------------------------------------------------------ rendering
    def problems(self) -> list[str]:
        """One line per account the stream could not follow (its subscription status)."""
        return [b.problem for b in self.accounts.values() if b.problem]

    def status(self) -> str:
        if len(self.logins) > 1:
            # Several sequence spaces: each login's sequence, and which are down.
            down = [name for name, line in self.logins.items() if not line.upstream_healthy]
            health = f"DOWN: {', '.join(down)} (last known state)" if down else "live"
            where = " ".join(f"{name}@{line.sequence}" for name, line in self.logins.items())
            return f"{len(self.logins)} logins {where}  {health}"
        health = "live" if self.upstream_healthy else "UPSTREAM DOWN (last known state)"
        return f"sequence {self.sequence}  epoch {self.epoch or NONE}  {health}"

    def render(self, width: int | None = None, height: int | None = None) -> str:
        """The board; with a size, it fits: no line wraps, at most ``height`` lines.

        Fitted, the status line and the PnL table's TOTAL row always show; account rows,
        positions, working orders and problems are cut to what fits, each with "+N more".
        """
        if width is None or height is None:
            parts = [self.status(), self._pnl_table()]
            parts += [t for t in (self._positions_table(), self._orders_table()) if t]
            parts.extend(self.problems())
            return "\n\n".join(parts)
        return "\n".join(line[:width] for line in self._fitted(max(height, 4)))

    def _fitted(self, height: int) -> list[str]:
        pnl = self._pnl_table().split("\n")  # header, one row per account, TOTAL
        header, rows, total = pnl[0], pnl[1:-1], pnl[-1]
        problems = self.problems()
        sections = [t.split("\n") for t in (self._positions_table(), self._orders_table()) if t]
        if problems:
            sections.append(problems)
        # The status line, the PnL header and TOTAL are fixed; the rest share what is left.
        left = height - 3
        # Accounts take at most half of it when positions, orders or problems wait.
        shown_rows = _cut(rows, max(1, left // 2) if sections else left)
        left -= len(shown_rows)
        lines = [self.status(), header, *shown_rows, total]
        # Then positions, orders and problems share the rest fairly: none starves another.
        for section, room in zip(
            sections, _shares([len(x) + 1 for x in sections], left), strict=True
        ):
            if section is problems:
                if room >= 2:  # a blank line and one problem at least
                    lines += ["", *_cut(section, room - 1)]
            elif room >= 3:  # a blank line, the header and one row at least
                lines += ["", section[0], *_cut(section[1:], room - 2)]
        return lines

    def _pnl_table(self) -> str:
        rows = []
        totals: list[Decimal | None] = [Decimal(0)] * 4
        for board in sorted(self.accounts.values(), key=lambda b: b.name or str(b.account_id)):
            pnl, balance = board.pnl, board.balance
            # The gateway's mark-to-market (live), as PnlUpdate and Balance.mark_* carry it.
            values = [
                balance.cash if balance else None,
                pnl.mark_open_pnl if pnl else (balance.mark_open_pnl if balance else None),
                pnl.realized_pnl if pnl else (balance.realized_pnl if balance else None),
                pnl.mark_total_pnl if pnl else (balance.mark_total_pnl if balance else None),
            ]
            cells = [dec(v) if v is not None else NONE for v in values]
            for i, value in enumerate(values):
                number = _number(value)
                # A column with an unknown figure has no total (never a partial sum).
                held = totals[i]
                totals[i] = None if number is None or held is None else held + number
            rows.append([board.name or str(board.account_id), *cells])
        rows.append([f"TOTAL ({len(rows)})", *(NONE if t is None else _text(t) for t in totals)])
        return format_table(
            ["ACCOUNT", "CASH", "OPEN PNL", "REALIZED", "TOTAL PNL"], rows, right={1, 2, 3, 4}
        )

    def _positions_table(self) -> str:
        rows = []
        for board in self.accounts.values():
            live = {p.position_id: p for p in board.pnl.positions} if board.pnl else {}
            for position in sorted(board.positions.values(), key=lambda p: p.id):
                if position.net_pos == 0:
                    continue
                row = live.get(position.id)
                last = dec(row.last_price) if row else dec(position.last_price)
                open_pnl = dec(row.open_pnl) if row else dec(position.open_pnl)
                rows.append(
                    [
                        board.name or str(board.account_id),
                        position.symbol or str(position.contract_id),
                        str(position.net_pos),
                        dec(position.net_price),
                        last,
                        open_pnl,
                    ]
                )
        if not rows:
            return ""
        return format_table(
            ["ACCOUNT", "SYMBOL", "NET", "AVG PRICE", "LAST", "OPEN PNL"], rows, right={2, 3, 4, 5}
        )

    def _orders_table(self) -> str:
        rows = []
        for board in self.accounts.values():
            for order in sorted(board.orders.values(), key=lambda o: o.id):
                if not order.working:
                    continue
                rows.append(
                    [
                        board.name or str(board.account_id),
                        str(order.id),
                        order.symbol or str(order.contract_id),
                        enum_label(trading_pb2.Side, order.side, "SIDE_"),
                        f"{order.filled_qty}/{order.qty}",
                        dec(order.limit_price),
                        enum_label(trading_pb2.OrderStatus, order.status, "ORDER_STATUS_"),
                        clock(order.updated_time),
                    ]
                )
        if not rows:
            return ""
        return format_table(
            ["ACCOUNT", "ORDER", "SYMBOL", "SIDE", "FILLED", "PRICE", "STATUS", "UPDATED"],
            rows,
            right={1, 4, 5},
        )


def _shares(needs: list[int], room: int) -> list[int]:
    """Split ``room`` lines among sections needing ``needs``: the small ones get all they
    need, the rest an equal part of what is left."""
    shares = [0] * len(needs)
    order = sorted(range(len(needs)), key=lambda i: needs[i])
    for done, i in enumerate(order):
        fair = room // (len(needs) - done)
        shares[i] = min(needs[i], fair)
        room -= shares[i]
    return shares


def _cut(lines: list[str], room: int) -> list[str]:
    """``lines`` when they fit in ``room``; else the first ones and "+N more"."""
    if len(lines) <= room:
        return lines
    if room <= 0:
        return []
    kept = room - 1
    return [*lines[:kept], f"+{len(lines) - kept} more"]


def _text(value: Decimal) -> str:
    """A sum written like the gateway writes decimals: no exponent, no trailing zeros."""
    return format(value.normalize(), "f") if value else "0"


def _number(value: trading_pb2.Decimal | None) -> Decimal | None:
    if value is None or not value.value:
        return None
    try:
        return Decimal(value.value)
    except InvalidOperation:
        return None
