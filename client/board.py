"""WatchBoard: the state a `watch` builds from StreamUpdates, rendered as live tables.

It applies snapshots (a resync replaces the accounts it covers) and deltas, and renders
positions, working orders and PnL per account with the table helpers of client/render.py.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from tradovate_gateway.v1 import trading_pb2

from client.render import NONE, dec, format_table, status_line, when
from client.values import enum_label


@dataclass
class AccountBoard:
    account_id: int
    name: str = ""
    positions: dict[int, trading_pb2.Position] = field(default_factory=dict)
    orders: dict[int, trading_pb2.Order] = field(default_factory=dict)
    balance: trading_pb2.Balance | None = None
    pnl: trading_pb2.PnlUpdate | None = None
    problem: str | None = None


class WatchBoard:
    """Positions, orders, balances and PnL per account, kept current from a stream."""

    def __init__(self) -> None:
        self.accounts: dict[int, AccountBoard] = {}
        self.epoch = ""
        self.sequence = 0
        self.upstream_healthy = True
        self.resyncs = 0

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
        if payload == "subscription":
            for item in update.subscription.accounts:
                board = self._board(item.meta.account_id, item.meta.account_name)
                board.problem = status_line(item.meta)
        elif payload == "snapshot":
            self._apply_snapshot(update.snapshot)
        elif payload == "snapshot_complete":
            self.sequence = update.snapshot_complete.sequence
            self.resyncs += int(update.snapshot_complete.resync)
        elif payload == "heartbeat":
            self.upstream_healthy = update.heartbeat.upstream_healthy
        else:
            self.sequence = max(self.sequence, update.sequence)
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
    def render(self) -> str:
        health = "live" if self.upstream_healthy else "UPSTREAM DOWN (last known state)"
        parts = [f"sequence {self.sequence}  epoch {self.epoch or NONE}  {health}"]
        parts.append(self._pnl_table())
        positions = self._positions_table()
        if positions:
            parts.append(positions)
        orders = self._orders_table()
        if orders:
            parts.append(orders)
        problems = [b.problem for b in self.accounts.values() if b.problem]
        parts.extend(problems)
        return "\n\n".join(parts)

    def _pnl_table(self) -> str:
        rows = []
        for board in sorted(self.accounts.values(), key=lambda b: b.name or str(b.account_id)):
            pnl, balance = board.pnl, board.balance
            # The gateway's mark-to-market (live), as PnlUpdate and Balance.mark_* carry it.
            open_pnl = (
                dec(pnl.mark_open_pnl) if pnl else (dec(balance.mark_open_pnl) if balance else NONE)
            )
            realized = (
                dec(pnl.realized_pnl) if pnl else (dec(balance.realized_pnl) if balance else NONE)
            )
            total = (
                dec(pnl.mark_total_pnl)
                if pnl
                else (dec(balance.mark_total_pnl) if balance else NONE)
            )
            cash = dec(balance.cash) if balance else NONE
            rows.append([board.name or str(board.account_id), cash, open_pnl, realized, total])
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
                        when(order.updated_time),
                    ]
                )
        if not rows:
            return ""
        return format_table(
            ["ACCOUNT", "ORDER", "SYMBOL", "SIDE", "FILLED", "PRICE", "STATUS", "UPDATED"],
            rows,
            right={1, 4, 5},
        )
