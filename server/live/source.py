"""The live state read by the unary RPCs: implements server/reads/service.py ``LiveReads``.

While the sync socket is connected and its snapshot applied, GetPositions, GetOrders,
GetBalances and GetSnapshot answer from memory with source LIVE and no upstream call
(a balance only once the background refresh has fetched the account's figures that the
sync socket lacks; before that its read falls through to the cache or upstream).
``as_of`` is when the account's data was last known true: its last event, or the last
snapshot when nothing happened since.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Final, TypeVar

import msgspec

from trading_gateway.server.broker.schemas import Account
from trading_gateway.server.live.figures import NOT_FETCHED_YET
from trading_gateway.server.live.hub import StreamHub
from trading_gateway.server.live.views import LiveViews
from trading_gateway.server.reads.records import (
    BalanceData,
    ContractRef,
    Fetched,
    OrderDetail,
    OrdersData,
    PositionsData,
)

_ENCODER: Final = msgspec.msgpack.Encoder()
R = TypeVar("R")


def _awaiting_refresh(data: BalanceData) -> bool:
    """True until the background refresh first answered for the account (server/live/
    figures.py): until then a read takes the balance from the cache or upstream, which
    has every figure, instead of a live one with Tradovate's PnL figures unknown."""
    return NOT_FETCHED_YET in data.unknown.values()


class LiveViewReads:
    """Implements trading_gateway.server.reads.service.LiveReads over the live views."""

    def __init__(self, views: LiveViews, hub: StreamHub) -> None:
        self._views = views
        self._state = views.state
        self._hub = hub
        #: Wall time (epoch seconds) of the last snapshot applied.
        self.synced_at = 0.0
        # Complete contract refs (value per point known), kept per snapshot: a contract's
        # symbol and its product's point value do not change while the session lasts.
        self._refs: dict[int, ContractRef] = {}
        self._refs_synced_at = 0.0
        # The last record built per account: handed out again (the same object) while
        # its entities are the same objects (state replaces an entity when it changes)
        # and its contracts and prices are equal, so its response part is reused as is.
        self._last_positions: dict[int, PositionsData] = {}
        self._last_orders: dict[int, OrdersData] = {}
        self._last_balances: dict[int, tuple[bytes, BalanceData]] = {}
        # What each record was built from: the account's view generation, the snapshot,
        # and the price changes of its contracts. While all are the same, the record is.
        self._positions_memo: dict[int, _Memo] = {}
        self._orders_memo: dict[int, _Memo] = {}
        self._balances_memo: dict[int, _Memo] = {}

    @property
    def healthy(self) -> bool:
        return self._views.healthy and self._state.synced

    def _as_of(self, account_id: int) -> float:
        last = self._hub.last_event_ns.get(account_id)
        return max(self.synced_at, last / 1e9 if last is not None else 0.0)

    def accounts(self) -> Fetched[list[Account]] | None:
        if not self._state.synced:
            return None
        return Fetched(list(self._state.accounts.values()), self.synced_at)

    def positions(self, account_ids: Sequence[int]) -> Mapping[int, Fetched[PositionsData]]:
        return self._records(account_ids, self._positions_memo, self._positions_record)

    def orders(self, account_ids: Sequence[int]) -> Mapping[int, Fetched[OrdersData]]:
        return self._records(account_ids, self._orders_memo, self._orders_record)

    def _records(
        self,
        account_ids: Sequence[int],
        memos: dict[int, _Memo],
        build: Callable[[int], tuple[R, Iterable[int | None]]],
    ) -> dict[int, Fetched[R]]:
        """Each known account's record: the memo's while nothing it was built from
        changed, else ``build``'s (the record and the contracts whose prices it holds)."""
        out: dict[int, Fetched[R]] = {}
        for account_id in account_ids:
            if account_id not in self._state.accounts:
                continue
            memo = memos.get(account_id)
            if memo is not None and self._still(memo, account_id):
                out[account_id] = Fetched(memo.record, self._as_of(account_id))
                continue
            data, priced = build(account_id)
            memos[account_id] = self._memo(account_id, data, priced)
            out[account_id] = Fetched(data, self._as_of(account_id))
        return out

    def _positions_record(self, account_id: int) -> tuple[PositionsData, Iterable[int | None]]:
        positions = self._state.positions_of(account_id)
        contracts = self._contracts(p.contract_id for p in positions)
        last = self._views.prices.last
        prices = {c: last[c] for c in contracts if c in last}
        data = self._last_positions.get(account_id)
        if (
            data is None
            or not _same(data.positions, positions)
            or not _same_refs(data.contracts, contracts)
            or not _same_prices(data.last_prices, prices)
        ):
            data = PositionsData(positions=positions, contracts=contracts, last_prices=prices)
            self._last_positions[account_id] = data
        return data, contracts

    def _orders_record(self, account_id: int) -> tuple[OrdersData, Iterable[int | None]]:
        details: list[OrderDetail] = []
        for order_id in self._state.order_ids_of(account_id):
            parts = self._state.order_parts(order_id)
            if parts is not None:
                details.append(
                    OrderDetail(order=parts.order, version=parts.version, fills=list(parts.fills))
                )
        contracts = self._contracts(d.order.contract_id for d in details)
        data = self._last_orders.get(account_id)
        if (
            data is None
            or len(data.orders) != len(details)
            or not all(map(_same_detail, data.orders, details))
            or not _same_refs(data.contracts, contracts)
        ):
            data = OrdersData(orders=details, contracts=contracts)
            self._last_orders[account_id] = data
        return data, ()

    def balances(self, account_ids: Sequence[int]) -> Mapping[int, Fetched[BalanceData]]:
        out: dict[int, Fetched[BalanceData]] = {}
        memos = self._balances_memo
        for account_id in account_ids:
            memo = memos.get(account_id)
            if memo is not None and self._still(memo, account_id):
                if not _awaiting_refresh(memo.record):
                    out[account_id] = Fetched(memo.record, self._as_of(account_id))
                continue
            data = self._views.balance_data(account_id)
            if data is not None:
                # Compared by encoding: equal Decimals may still be written differently.
                encoded = _ENCODER.encode(data)
                last = self._last_balances.get(account_id)
                if last is not None and last[0] == encoded:
                    data = last[1]  # the same value: hand out the same object
                else:
                    self._last_balances[account_id] = (encoded, data)
                # Open PnL moves with the prices of the account's position contracts.
                contracts = {p.contract_id for p in self._state.positions_of(account_id)}
                memos[account_id] = self._memo(account_id, data, contracts)
                if not _awaiting_refresh(data):
                    out[account_id] = Fetched(data, self._as_of(account_id))
        return out

    def _memo(self, account_id: int, record: Any, contracts: Iterable[int | None]) -> _Memo:
        book = self._views.prices
        changes = book.changes
        return _Memo(
            record,
            self._views.generation(account_id),
            self.synced_at,
            tuple((c, changes.get(c, 0)) for c in contracts if c is not None),
            book.total_changes,
        )

    def _still(self, memo: _Memo, account_id: int) -> bool:
        """Nothing the memo's record was built from has changed since."""
        if memo.generation != self._views.generation(account_id):
            return False
        if memo.synced_at != self.synced_at:
            return False
        book = self._views.prices
        if memo.price_changes == book.total_changes:
            return True  # no price moved anywhere
        changes = book.changes
        for contract_id, seen in memo.prices:  # noqa: SIM110 - a loop, no generator per read
            if changes.get(contract_id, 0) != seen:
                return False
        return True

    def _contracts(self, contract_ids: Iterable[int | None]) -> dict[int, ContractRef]:
        if self._refs_synced_at != self.synced_at:
            self._refs.clear()
            self._refs_synced_at = self.synced_at
        known = self._refs
        refs: dict[int, ContractRef] = {}
        for contract_id in contract_ids:
            if contract_id is None or contract_id in refs:
                continue
            ref = known.get(contract_id)
            if ref is None:
                ref = self._state.contract_ref(contract_id)
                if ref is None:
                    continue
                if ref.value_per_point is not None:
                    known[contract_id] = ref
            refs[contract_id] = ref
        return refs


@dataclass(frozen=True, slots=True)
class _Memo:
    record: Any
    generation: int
    synced_at: float
    #: (contract id, how many price changes it had) for the contracts the record used.
    prices: tuple[tuple[int, int], ...]
    #: Every contract's price changes together, when the record was built.
    price_changes: int


def _same(old: Sequence[object], new: Sequence[object]) -> bool:
    """The same objects in the same order (identity, not equality)."""
    return len(old) == len(new) and all(a is b for a, b in zip(old, new, strict=True))


def _same_detail(old: OrderDetail, new: OrderDetail) -> bool:
    return old.order is new.order and old.version is new.version and _same(old.fills, new.fills)


def _same_refs(old: Mapping[int, ContractRef], new: Mapping[int, ContractRef]) -> bool:
    """Kept refs are the same objects; a ref without a point value has only its symbol."""
    if len(old) != len(new):
        return False
    for contract_id, ref in new.items():
        was = old.get(contract_id)
        if was is not ref and (ref.value_per_point is not None or was != ref):
            return False
    return True


def _same_prices(old: Mapping[int, Decimal], new: Mapping[int, Decimal]) -> bool:
    """Equal and written the same (Decimal("1.0") == Decimal("1.00") prints differently)."""
    if len(old) != len(new):
        return False
    for contract_id, price in new.items():
        was = old.get(contract_id)
        if was is not price and (was is None or was.as_tuple() != price.as_tuple()):
            return False
    return True
