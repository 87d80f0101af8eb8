"""The live state as a read source for the unary RPCs (server/reads.py ``LiveSource``).

While the sync socket is connected and its snapshot applied, GetPositions, GetOrders,
GetBalances and GetSnapshot answer from memory with source LIVE and no upstream call.
``as_of`` is when the account's data was last known true: its last event, or the last
snapshot when nothing happened since.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from server.broker.schemas import Account
from server.live.hub import StreamHub
from server.live.views import LiveViews
from server.records import (
    BalanceData,
    ContractRef,
    Fetched,
    OrderDetail,
    OrdersData,
    PositionsData,
)


class LiveReadSource:
    """Implements server.reads.LiveSource over the live views."""

    def __init__(self, views: LiveViews, hub: StreamHub) -> None:
        self._views = views
        self._state = views.state
        self._hub = hub
        #: Wall time (epoch seconds) of the last snapshot applied.
        self.synced_at = 0.0

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
        out: dict[int, Fetched[PositionsData]] = {}
        for account_id in account_ids:
            if account_id not in self._state.accounts:
                continue
            positions = self._state.positions_of(account_id)
            contracts = self._contracts(p.contract_id for p in positions)
            last = self._views.prices.last
            prices = {c: last[c] for c in contracts if c in last}
            out[account_id] = Fetched(
                PositionsData(positions=positions, contracts=contracts, last_prices=prices),
                self._as_of(account_id),
            )
        return out

    def orders(self, account_ids: Sequence[int]) -> Mapping[int, Fetched[OrdersData]]:
        out: dict[int, Fetched[OrdersData]] = {}
        for account_id in account_ids:
            if account_id not in self._state.accounts:
                continue
            details: list[OrderDetail] = []
            for order_id in self._state.order_ids_of(account_id):
                parts = self._state.order_parts(order_id)
                if parts is not None:
                    details.append(
                        OrderDetail(
                            order=parts.order, version=parts.version, fills=list(parts.fills)
                        )
                    )
            contracts = self._contracts(d.order.contract_id for d in details)
            out[account_id] = Fetched(
                OrdersData(orders=details, contracts=contracts), self._as_of(account_id)
            )
        return out

    def balances(self, account_ids: Sequence[int]) -> Mapping[int, Fetched[BalanceData]]:
        out: dict[int, Fetched[BalanceData]] = {}
        for account_id in account_ids:
            data = self._views.balance_data(account_id)
            if data is not None:
                out[account_id] = Fetched(data, self._as_of(account_id))
        return out

    def _contracts(self, contract_ids: Iterable[int | None]) -> dict[int, ContractRef]:
        refs: dict[int, ContractRef] = {}
        for contract_id in contract_ids:
            if contract_id is None or contract_id in refs:
                continue
            ref = self._views.contract_ref(contract_id)
            if ref is not None:
                refs[contract_id] = ref
        return refs
