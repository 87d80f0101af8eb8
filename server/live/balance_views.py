"""Each account's balance view and PnL update: the views that move with its cash
balances, margins, Tradovate's fetched figures (server/live/figures.py) and quotes.

A balance is published when its inputs change; the gateway's mark-to-market goes out as a
``PnlUpdate`` (paced by server/live/views.py's throttle), and only when it differs from the
last one sent. ``memo`` holds each account's PnL while a refresh runs, so a balance and its
PnL update compute it once.
"""

from __future__ import annotations

from collections.abc import Callable

from tradovate_gateway.v1 import trading_pb2 as pb

from trading_gateway.server import convert
from trading_gateway.server.broker.schemas import Account, CashBalance, MarginSnapshot
from trading_gateway.server.live.balances import live_balance
from trading_gateway.server.live.entity_views import Publish
from trading_gateway.server.live.figures import AccountFigures
from trading_gateway.server.live.kinds import UpdateKind
from trading_gateway.server.live.pnl import AccountPnl, PriceBook, account_pnl
from trading_gateway.server.live.state import LiveState
from trading_gateway.server.reads.records import BalanceData

BalanceInputs = tuple[
    Account, tuple[CashBalance, ...], MarginSnapshot | None, AccountFigures | None
]
FiguresOf = Callable[[int], AccountFigures | None]


class BalanceViews:
    """The current balance inputs per account and the PnL update last sent."""

    def __init__(
        self, state: LiveState, prices: PriceBook, figures: FiguresOf, publish: Publish
    ) -> None:
        self.state = state
        self._prices = prices
        self._figures = figures
        self._publish = publish
        self._balances: dict[int, BalanceInputs] = {}
        self._pnl_sent: dict[int, bytes] = {}
        self.memo: dict[int, AccountPnl] | None = None  # set while a refresh runs

    def forget(self, account_id: int) -> None:
        """The account is gone: its next PnL update, if it comes back, is sent."""
        self._pnl_sent.pop(account_id, None)

    def forget_sent(self) -> None:
        """Every account's next PnL update is sent, whatever was sent before."""
        self._pnl_sent.clear()

    def _inputs(self, account_id: int) -> BalanceInputs | None:
        account = self.state.accounts.get(account_id)
        if account is None:
            return None
        return (
            account,
            tuple(self.state.cash_of(account_id)),
            self.state.margins.get(account_id),
            self._figures(account_id),
        )

    def refresh(self, account_id: int, received_ns: int) -> bool:
        inputs = self._inputs(account_id)
        old = self._balances.get(account_id)
        if inputs is None:
            self._balances.pop(account_id, None)
            return False
        if old == inputs:
            return False
        self._balances[account_id] = inputs
        fields = self.fields(account_id)
        if fields is None:
            return False
        payload = {"balance": {"balance": fields}}
        self._publish(UpdateKind.BALANCES, account_id, account_id, payload, received_ns, 0)
        return True

    def pnl(self, account_id: int) -> AccountPnl:
        memo = self.memo
        found = memo.get(account_id) if memo is not None else None
        if found is None:
            found = account_pnl(
                self.state.positions_of(account_id),
                self.state.cash_of(account_id),
                self._prices.last.get,
                self.state.value_per_point,
            )
            if memo is not None:
                memo[account_id] = found
        return found

    def balance_data(self, account_id: int) -> BalanceData | None:
        """The account's balance in the read records' shape: Tradovate's figures, with the
        gateway's mark-to-market apart (server/live/balances.py)."""
        if account_id not in self.state.accounts:
            return None
        return live_balance(
            self.state.cash_of(account_id),
            self.state.margins.get(account_id),
            self._figures(account_id),
            self.pnl(account_id),
            self.mark_time(account_id),
        )

    def mark_time(self, account_id: int) -> float | None:
        """When the account's mark was true: its newest quote (None with no open position)."""
        changed = self._prices.changed_at
        times = [
            changed[p.contract_id]
            for p in self.state.positions_of(account_id)
            if p.net_pos and p.contract_id in changed
        ]
        return max(times) if times else None

    def balance(self, account_id: int) -> pb.Balance | None:
        fields = self.fields(account_id)
        return None if fields is None else pb.Balance(**fields)

    def fields(self, account_id: int) -> convert.Fields | None:
        account = self.state.accounts.get(account_id)
        data = self.balance_data(account_id)
        if account is None or data is None:
            return None
        return convert.balance_fields(data, account)

    def pnl_update(self, account_id: int) -> pb.PnlUpdate:
        pnl = self.pnl(account_id)
        money = convert.money_fields
        positions = []
        for row in pnl.positions:
            ref = self.state.contract_ref(row.position.contract_id)
            positions.append(
                {
                    "position_id": row.position.id,
                    "contract_id": row.position.contract_id,
                    "symbol": ref.symbol if ref is not None else "",
                    "net_pos": row.position.net_pos,
                    "last_price": convert.price_fields(
                        row.last_price, ref.tick_size if ref is not None else None
                    ),
                    "open_pnl": money(row.open_pnl),
                }
            )
        fields: convert.Fields = {
            "account_id": account_id,
            "account_name": self.state.account_name(account_id),
            "realized_pnl": money(pnl.realized_pnl),
            "open_pnl": money(pnl.open_pnl) if pnl.complete else None,
            "total_pnl": money(pnl.total_pnl) if pnl.complete else None,
            "mark_open_pnl": money(pnl.open_pnl) if pnl.complete else None,
            "mark_total_pnl": money(pnl.total_pnl) if pnl.complete else None,
            "positions": positions,
        }
        marked = self.mark_time(account_id)
        if marked is not None:
            fields["mark_time"] = convert.epoch_fields(marked)
        return pb.PnlUpdate(**fields)

    def publish_pnl(self, account_id: int) -> None:
        if account_id not in self.state.accounts:
            return
        update = self.pnl_update(account_id)
        encoded = update.SerializeToString(deterministic=True)
        if self._pnl_sent.get(account_id) == encoded:
            return
        self._pnl_sent[account_id] = encoded
        # Paced and caused by many quotes: an event time (now), but no received_time.
        self._publish(UpdateKind.PNL, account_id, account_id, {"pnl": update}, 0, 0)
