"""Proto views of the live state, kept current and published to the hub when they change.

A view is recomputed for every entity a change touches; it is published only when the
inputs it is built from really changed (structs compare by value). So a resync that
brings the same state again publishes nothing, and one that brings changes publishes
exactly those. Each change is converted once, to the field dicts of server/convert/,
which the hub builds into a StreamUpdate and serializes once. A view's own proto, for
reads and snapshots, is made when first asked for after a change.

The gateway's mark-to-market (PnL from quotes) is not part of the position and balance
views: it changes with every quote. It goes out as PnlUpdate, throttled per account, and
is filled into positions (open_pnl) and balances (mark_*) whenever they are sent or read.
Tradovate's own balance figures that the sync socket lacks come from the background
refresh (server/live/figures.py, passed in as ``figures``) and are balance-view inputs.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Iterable

from tradovate_gateway.v1 import trading_pb2 as pb

from trading_gateway.server import convert
from trading_gateway.server.broker.events import EntityChange, SyncSnapshot
from trading_gateway.server.broker.schemas import (
    Account,
    Position,
    Quote,
)
from trading_gateway.server.live.balance_views import BalanceViews, FiguresOf
from trading_gateway.server.live.entity_views import (
    ACCOUNT_VIEWS,
    ORDER_VIEWS,
    POSITION_VIEWS,
    EntityViews,
    OrderInputs,
    PositionInputs,
)
from trading_gateway.server.live.figures import AccountFigures
from trading_gateway.server.live.hub import StreamHub
from trading_gateway.server.live.kinds import Touch, UpdateKind
from trading_gateway.server.live.open_positions import OpenPositions
from trading_gateway.server.live.pnl import (
    AccountPnl,
    PriceBook,
    Throttle,
    position_pnl,
)
from trading_gateway.server.live.state import ACCOUNTS, BALANCES, ORDERS, POSITIONS, LiveState
from trading_gateway.server.reads.records import BalanceData, OrderDetail

logger = logging.getLogger(__name__)

PNL = UpdateKind.PNL

# Publication order inside one batch of touches.
_RANK: dict[UpdateKind, int] = {ACCOUNTS: 0, ORDERS: 1, POSITIONS: 2, BALANCES: 3}
# The kinds whose change can move the account's PnL update.
_MOVES_PNL = frozenset({POSITIONS, BALANCES})


class LiveViews:
    """Current proto views per entity; publishes real changes to the hub."""

    def __init__(
        self,
        state: LiveState,
        hub: StreamHub,
        *,
        pnl_interval: float = 0.1,
        on_contracts: Callable[[frozenset[int]], None] | None = None,
        on_unknown_contracts: Callable[[set[int]], None] | None = None,
        figures: FiguresOf | None = None,
    ) -> None:
        self.state = state
        self.hub = hub
        self.prices = PriceBook()
        self.healthy = False
        self._on_unknown_contracts = on_unknown_contracts
        self._accounts = EntityViews(ACCOUNT_VIEWS, self._account_inputs, self._publish)
        self._positions = EntityViews(
            POSITION_VIEWS,
            self._position_inputs,
            self._publish,
            extra_fields=lambda inputs: self._pnl_fields(inputs[0]),
        )
        self._orders = EntityViews(ORDER_VIEWS, self._order_inputs, self._publish)
        self._balances = BalanceViews(state, self.prices, figures or _no_figures, self._publish)
        self._open = OpenPositions(on_contracts)
        self._throttle = Throttle(pnl_interval, self._balances.publish_pnl)
        self.last_change_ns = 0
        # Per account: bumped whenever anything its views are made of may have changed
        # (every touch goes through refresh()), so reads can reuse what they built.
        self._generations: dict[int, int] = {}

    # ------------------------------------------------------------------ inputs
    @property
    def synced(self) -> bool:
        return self.state.synced

    @property
    def open_contracts(self) -> frozenset[int]:
        return self._open.contracts

    def apply(self, event: SyncSnapshot | EntityChange) -> int:
        """Apply a snapshot or a change; returns how many deltas were published."""
        return self.apply_all((event,))

    def apply_all(self, events: Iterable[SyncSnapshot | EntityChange]) -> int:
        """Apply events that arrived together, then publish each touched view once.

        An order's update, version and fill from one upstream frame become one delta with
        the final state. Applying and publishing are one synchronous step, so no read can
        see state that a stream has not been sent.
        """
        # First-touch order: coalescing merges repeats but never reorders what Tradovate
        # sent (a later change to another account must not overtake an earlier one).
        touches: dict[Touch, None] = {}
        received_ns = 0
        received_at = None
        for event in events:
            if isinstance(event, SyncSnapshot):
                touched = self.state.apply_snapshot(event)
            else:
                touched = self.state.apply_change(event)
            for touch in _ranked(touched):
                touches.setdefault(touch, None)
            # The events of one frame share one read time: compare, do not convert each.
            if event.received_at is not received_at:
                received_at = event.received_at
                received_ns = max(received_ns, int(received_at.timestamp() * 1e9))
        return self.refresh(list(touches), received_ns)

    def on_quote(self, quote: Quote, at: float | None = None) -> None:
        """A quote read at ``at`` (epoch seconds; None: now)."""
        if not self.prices.update(quote, at):
            return
        for position_id in self._open.holders(quote.contract_id):
            position = self.state.positions.get(position_id)
            if position is not None:
                self._throttle.mark(position.account_id)

    def holders(self, contract_id: int) -> set[int]:
        """The accounts with an open position in the contract."""
        positions = self.state.positions
        return {
            position.account_id
            for position_id in self._open.holders(contract_id)
            if (position := positions.get(position_id)) is not None
        }

    def generation(self, account_id: int) -> int:
        """Changes whenever the account's positions, orders, balance or names may have."""
        return self._generations.get(account_id, 0)

    def refresh(self, touches: Collection[Touch], received_ns: int) -> int:
        generations = self._generations
        for touch in touches:
            generations[touch.account_id] = generations.get(touch.account_id, 0) + 1
        published = 0
        pnl_accounts: set[int] = set()
        # Nothing changes state while a refresh runs: an account's PnL, wanted by its
        # balance and by its PnL update, is computed once.
        self._balances.memo = {}
        try:
            published = self._refresh_touches(touches, received_ns, pnl_accounts)
            if published and received_ns:
                self.last_change_ns = received_ns
            self._report_unknown_contracts(touches)
            self._open.settle()
            for account_id in sorted(pnl_accounts):
                self._throttle.mark(account_id)
        finally:
            self._balances.memo = None
        return published

    def _refresh_touches(
        self, touches: Collection[Touch], received_ns: int, pnl_accounts: set[int]
    ) -> int:
        published = 0
        # A list keeps its (arrival) order; an unordered collection is ranked.
        for touch in touches if isinstance(touches, list) else _ranked(touches):
            if touch.kind == POSITIONS:
                changed = self._refresh_position(touch.entity_id, received_ns)
            elif touch.kind == ORDERS:
                changed = self._orders.refresh(touch.entity_id, received_ns)
            elif touch.kind == BALANCES:
                changed = self._balances.refresh(touch.account_id, received_ns)
            else:
                changed = self._refresh_account(touch.account_id, received_ns)
            if changed:
                published += 1
                if touch.kind in _MOVES_PNL:
                    pnl_accounts.add(touch.account_id)
        return published

    def close(self) -> None:
        self._throttle.close()

    def _report_unknown_contracts(self, touches: Collection[Touch]) -> None:
        if self._on_unknown_contracts is None:
            return
        ids: list[int | None] = []
        for touch in touches:
            if touch.kind == POSITIONS:
                position = self.state.positions.get(touch.entity_id)
                ids.append(position.contract_id if position is not None else None)
            elif touch.kind == ORDERS:
                order = self.state.orders.get(touch.entity_id)
                ids.append(order.contract_id if order is not None else None)
        unknown = self.state.unknown_contracts(ids)
        if unknown:
            self._on_unknown_contracts(unknown)

    def has_account(self, account_id: int) -> bool:
        return account_id in self.state.accounts

    # ------------------------------------------------------------------ positions
    def _position_inputs(self, position_id: int) -> PositionInputs | None:
        position = self.state.positions.get(position_id)
        if position is None:
            return None
        account_id = position.account_id
        return (
            position,
            self.state.account_name(account_id),
            self.state.contract_ref(position.contract_id),
        )

    def _refresh_position(self, position_id: int, received_ns: int) -> bool:
        position = self.state.positions.get(position_id)
        open_in = position.contract_id if position is not None and position.net_pos else None
        self._open.track(position_id, open_in)
        return self._positions.refresh(position_id, received_ns)

    def position(self, position_id: int) -> pb.Position:
        """The position's proto with its current open PnL and last price."""
        base = self._positions.proto(self._positions.views[position_id])
        out = pb.Position()
        out.CopyFrom(base)
        position = self.state.positions.get(position_id)
        if position is not None:
            pnl = self._pnl_fields(position)
            if pnl["last_price"] is not None:
                out.last_price.value = pnl["last_price"]["value"]
            if pnl["open_pnl"] is not None:
                out.open_pnl.value = pnl["open_pnl"]["value"]
        return out

    def _pnl_fields(self, position: Position) -> convert.Fields:
        """A position's last price and open PnL as proto fields (None: unknown)."""
        row = position_pnl(
            position,
            self.prices.last.get(position.contract_id),
            self.state.value_per_point(position.contract_id),
        )
        return {
            "last_price": convert.price_fields(
                row.last_price, self.state.tick_size(position.contract_id)
            ),
            "open_pnl": convert.money_fields(row.open_pnl),
        }

    def positions_of(self, account_id: int, *, include_flat: bool = True) -> list[pb.Position]:
        out = []
        for position in self.state.positions_of(account_id):
            if position.id not in self._positions:
                continue
            if include_flat or position.net_pos != 0:
                out.append(self.position(position.id))
        return out

    # ------------------------------------------------------------------ orders
    def _order_inputs(self, order_id: int) -> OrderInputs | None:
        parts = self.state.order_parts(order_id)
        if parts is None:
            return None
        order = parts.order
        detail = OrderDetail(order=order, version=parts.version, fills=list(parts.fills))
        return (
            detail,
            self.state.account_name(order.account_id),
            self.state.contract_ref(order.contract_id),
        )

    def orders_of(self, account_id: int) -> list[pb.Order]:
        views = self._orders.views
        return [
            self._orders.proto(views[i]) for i in self.state.order_ids_of(account_id) if i in views
        ]

    # ------------------------------------------------------------------ balances, pnl
    def figures_changed(self, account_ids: Iterable[int]) -> int:
        """The background refresh fetched these accounts' figures: publish their balances."""
        touches = [Touch(BALANCES, a, a) for a in account_ids if a in self.state.accounts]
        # No socket frame behind them: their deltas have no received_time.
        return self.refresh(touches, 0) if touches else 0

    def pnl_again(self) -> None:
        """Send every account's PnL update once more, soon (a new holder: which ones the
        last holder sent is not known here, its own throttle ran on another clock)."""
        self._balances.forget_sent()
        for account_id in self.state.accounts:
            self._throttle.mark(account_id)

    def pnl(self, account_id: int) -> AccountPnl:
        return self._balances.pnl(account_id)

    def balance_data(self, account_id: int) -> BalanceData | None:
        return self._balances.balance_data(account_id)

    def balance(self, account_id: int) -> pb.Balance | None:
        return self._balances.balance(account_id)

    # ------------------------------------------------------------------ accounts
    def _refresh_account(self, account_id: int, received_ns: int) -> bool:
        changed = self._accounts.refresh(account_id, received_ns)
        if changed and account_id not in self.state.accounts:
            self._balances.forget(account_id)
        return changed

    def _account_inputs(self, account_id: int) -> Account | None:
        return self.state.accounts.get(account_id)

    def account(self, account_id: int) -> pb.Account | None:
        return self._accounts.get(account_id)

    # ------------------------------------------------------------------ snapshots
    def account_snapshot(self, account_id: int, kinds: frozenset[UpdateKind]) -> pb.AccountSnapshot:
        """One account's part of a stream snapshot (PNL implies positions and balance)."""
        out = pb.AccountSnapshot()
        account = self.account(account_id)
        if account is not None:
            out.account.CopyFrom(account)
        meta = pb.AccountMeta(
            account_id=account_id,
            account_name=self.state.account_name(account_id),
            source=pb.SOURCE_LIVE,
        )
        if self.last_change_ns:
            meta.as_of.FromNanoseconds(self.last_change_ns)
        if POSITIONS in kinds or PNL in kinds:
            out.positions.meta.CopyFrom(meta)
            out.positions.positions.extend(self.positions_of(account_id))
        if ORDERS in kinds:
            out.orders.meta.CopyFrom(meta)
            out.orders.orders.extend(self.orders_of(account_id))
        if BALANCES in kinds or PNL in kinds:
            out.balance.meta.CopyFrom(meta)
            balance = self.balance(account_id)
            if balance is not None:
                out.balance.balance.CopyFrom(balance)
        return out

    # ------------------------------------------------------------------ publishing
    def _publish(
        self,
        kind: UpdateKind,
        account_id: int,
        entity_id: int,
        payload: convert.Fields,
        received_ns: int,
        event_ns: int = 0,
    ) -> None:
        """``payload``: the StreamUpdate's payload field. ``received_ns``: when the upstream
        message that caused the change was read (0: no single message did). ``event_ns``:
        the entity's own time; without one, the read time, else the publish time."""
        self.hub.publish(
            account_id=account_id,
            kind=kind,
            entity_id=entity_id,
            payload=payload,
            event_ns=event_ns or received_ns,
            received_ns=received_ns,
        )


def _no_figures(account_id: int) -> AccountFigures | None:
    return None


def _ranked(touches: Collection[Touch]) -> list[Touch]:
    """A deterministic order for touches that arrived together: by kind, account, entity."""
    if len(touches) < 2:
        return list(touches)
    return sorted(touches, key=lambda t: (_RANK[t.kind], t.account_id, t.entity_id))
