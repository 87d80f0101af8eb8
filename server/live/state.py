"""The raw live state: Tradovate entities from the user-sync socket, indexed by account.

``apply_snapshot`` and ``apply_change`` return the entity keys whose view may have
changed (``Touch``). The view layer (server/live/views.py) recomputes those views and
keeps only the ones that really changed, so a resync that brings nothing new emits
nothing. This module knows broker structs only, never protos.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, NamedTuple

from server.broker.events import ChangeType, EntityChange, EntityRef, SyncSnapshot
from server.broker.schemas import (
    Account,
    CashBalance,
    Contract,
    ContractInfo,
    ContractMaturity,
    Fill,
    MarginSnapshot,
    Order,
    OrderVersion,
    Position,
    Product,
)
from server.live.kinds import UpdateKind

logger = logging.getLogger(__name__)

POSITIONS = UpdateKind.POSITIONS
ORDERS = UpdateKind.ORDERS
BALANCES = UpdateKind.BALANCES
ACCOUNTS = UpdateKind.ACCOUNTS


class Touch(NamedTuple):
    """A view that may have changed: kind, account and entity id (the account for balances).

    A named tuple: touches are dict keys on every applied change, and a tuple hashes and
    compares in C (a frozen dataclass does both in Python)."""

    kind: UpdateKind
    account_id: int
    entity_id: int


@dataclass(frozen=True, slots=True)
class OrderParts:
    """Everything an Order view is made of: the order, its latest version, its fills."""

    order: Order
    version: OrderVersion | None
    fills: tuple[Fill, ...]


class LiveState:
    """Entities keyed by id, with per-account and per-contract indexes."""

    def __init__(self) -> None:
        self.accounts: dict[int, Account] = {}
        self.positions: dict[int, Position] = {}
        self.orders: dict[int, Order] = {}
        self.versions: dict[int, OrderVersion] = {}
        self.fills: dict[int, Fill] = {}
        self.cash_balances: dict[int, CashBalance] = {}
        self.margins: dict[int, MarginSnapshot] = {}
        self.contracts: dict[int, Contract] = {}
        self.maturities: dict[int, ContractMaturity] = {}
        self.products: dict[int, Product] = {}
        # Contracts the sync data did not describe, resolved over REST (symbol, value/point).
        self.contract_infos: dict[int, ContractInfo] = {}
        self.user_ids: tuple[int, ...] = ()
        self.synced = False
        self._positions_by_account: dict[int, set[int]] = {}
        self._orders_by_account: dict[int, set[int]] = {}
        self._cash_by_account: dict[int, set[int]] = {}
        self._versions_by_order: dict[int, set[int]] = {}
        self._fills_by_order: dict[int, set[int]] = {}

    # ------------------------------------------------------------------ reads
    def positions_of(self, account_id: int) -> list[Position]:
        ids = self._positions_by_account.get(account_id, ())
        return [self.positions[i] for i in sorted(ids)]

    def order_ids_of(self, account_id: int) -> list[int]:
        return sorted(self._orders_by_account.get(account_id, ()))

    def cash_of(self, account_id: int) -> list[CashBalance]:
        ids = self._cash_by_account.get(account_id, ())
        return [self.cash_balances[i] for i in sorted(ids)]

    def order_parts(self, order_id: int) -> OrderParts | None:
        order = self.orders.get(order_id)
        if order is None:
            return None
        version_ids = self._versions_by_order.get(order_id)
        version = self.versions[max(version_ids)] if version_ids else None
        fill_ids = self._fills_by_order.get(order_id, ())
        fills = tuple(self.fills[i] for i in sorted(fill_ids))
        return OrderParts(order=order, version=version, fills=fills)

    def product_of(self, contract_id: int) -> Product | None:
        contract = self.contracts.get(contract_id)
        if contract is None or contract.contract_maturity_id is None:
            return None
        maturity = self.maturities.get(contract.contract_maturity_id)
        if maturity is None:
            return None
        return self.products.get(maturity.product_id)

    def all_touches(self) -> Iterator[Touch]:
        """Every view the state can produce (used to diff a resync)."""
        for account_id in self.accounts:
            yield Touch(ACCOUNTS, account_id, account_id)
            yield Touch(BALANCES, account_id, account_id)
        for position in self.positions.values():
            yield Touch(POSITIONS, position.account_id, position.id)
        for order in self.orders.values():
            yield Touch(ORDERS, order.account_id, order.id)

    # ------------------------------------------------------------------ writes
    def apply_snapshot(self, snapshot: SyncSnapshot) -> set[Touch]:
        """Replace everything with ``snapshot``; the touches cover old and new entities.

        Contracts, maturities and products are reference data: they are merged, not
        replaced, so what was learned over REST survives a resync.
        """
        touched = set(self.all_touches())
        self._clear()
        for account in snapshot.accounts:
            self._put_account(account)
        for position in snapshot.positions:
            self._put_position(position)
        for order in snapshot.orders:
            self._put_order(order)
        for version in snapshot.order_versions:
            self._put_version(version)
        for fill in snapshot.fills:
            self._put_fill(fill)
        for cash in snapshot.cash_balances:
            self._put_cash(cash)
        for margin in snapshot.margin_snapshots:
            self.margins[margin.id] = margin
        self._put_reference(snapshot.contracts, snapshot.contract_maturities, snapshot.products)
        self.user_ids = snapshot.user_ids
        self.synced = True
        touched.update(self.all_touches())
        return touched

    def apply_change(self, change: EntityChange) -> set[Touch]:
        handler = _HANDLERS.get(change.entity_type)
        if handler is None:
            return set()
        deleted = change.change is ChangeType.DELETED
        entity: Any = change.entity
        if isinstance(entity, EntityRef):
            # A Deleted event that carried only an id: remove what we hold under that id.
            entity = self._stored(change.entity_type, entity.id)
            if entity is None or not deleted:
                return set()
        return handler(self, entity, deleted)

    def _stored(self, entity_type: str, entity_id: int) -> Any:
        table: dict[str, dict[int, Any]] = {
            "account": self.accounts,
            "position": self.positions,
            "order": self.orders,
            "orderVersion": self.versions,
            "fill": self.fills,
            "cashBalance": self.cash_balances,
            "marginSnapshot": self.margins,
            "contract": self.contracts,
            "contractMaturity": self.maturities,
            "product": self.products,
        }
        entities = table.get(entity_type)
        return None if entities is None else entities.get(entity_id)

    def add_reference(
        self,
        contracts: Iterable[Contract],
        maturities: Iterable[ContractMaturity],
        products: Iterable[Product],
    ) -> set[Touch]:
        """Contracts learned elsewhere (REST): touches the positions and orders that use them."""
        ids = self._put_reference(contracts, maturities, products)
        return self._touch_contracts(ids)

    def add_contract_infos(self, infos: Iterable[ContractInfo]) -> set[Touch]:
        """Contracts resolved over REST: touches the positions and orders that use them."""
        ids: set[int] = set()
        for info in infos:
            self.contract_infos[info.contract_id] = info
            ids.add(info.contract_id)
        return self._touch_contracts(ids)

    def unknown_contracts(self, contract_ids: Iterable[int | None]) -> set[int]:
        """Those of ``contract_ids`` with neither sync data nor a REST answer."""
        return {
            c
            for c in contract_ids
            if c is not None and c not in self.contracts and c not in self.contract_infos
        }

    # ------------------------------------------------------------------ internals
    def _clear(self) -> None:
        for table in (
            self.accounts,
            self.positions,
            self.orders,
            self.versions,
            self.fills,
            self.cash_balances,
            self.margins,
            self._positions_by_account,
            self._orders_by_account,
            self._cash_by_account,
            self._versions_by_order,
            self._fills_by_order,
        ):
            table.clear()

    def _put_account(self, account: Account) -> None:
        self.accounts[account.id] = account

    def _put_position(self, position: Position) -> None:
        old = self.positions.get(position.id)
        if old is not None and old.account_id != position.account_id:
            self._positions_by_account.get(old.account_id, set()).discard(position.id)
        self.positions[position.id] = position
        self._positions_by_account.setdefault(position.account_id, set()).add(position.id)

    def _put_order(self, order: Order) -> None:
        old = self.orders.get(order.id)
        if old is not None and old.account_id != order.account_id:
            self._orders_by_account.get(old.account_id, set()).discard(order.id)
        self.orders[order.id] = order
        self._orders_by_account.setdefault(order.account_id, set()).add(order.id)

    def _put_version(self, version: OrderVersion) -> None:
        self.versions[version.id] = version
        self._versions_by_order.setdefault(version.order_id, set()).add(version.id)

    def _put_fill(self, fill: Fill) -> None:
        self.fills[fill.id] = fill
        self._fills_by_order.setdefault(fill.order_id, set()).add(fill.id)

    def _put_cash(self, cash: CashBalance) -> None:
        self.cash_balances[cash.id] = cash
        self._cash_by_account.setdefault(cash.account_id, set()).add(cash.id)

    def _put_reference(
        self,
        contracts: Iterable[Contract],
        maturities: Iterable[ContractMaturity],
        products: Iterable[Product],
    ) -> set[int]:
        ids: set[int] = set()
        for contract in contracts:
            self.contracts[contract.id] = contract
            ids.add(contract.id)
        for maturity in maturities:
            self.maturities[maturity.id] = maturity
        for product in products:
            self.products[product.id] = product
        return ids

    def _touch_contracts(self, contract_ids: set[int]) -> set[Touch]:
        if not contract_ids:
            return set()
        touched = {
            Touch(POSITIONS, p.account_id, p.id)
            for p in self.positions.values()
            if p.contract_id in contract_ids
        }
        touched.update(
            Touch(ORDERS, o.account_id, o.id)
            for o in self.orders.values()
            if o.contract_id in contract_ids
        )
        return touched

    def _touch_order(self, order_id: int) -> set[Touch]:
        order = self.orders.get(order_id)
        return {Touch(ORDERS, order.account_id, order_id)} if order is not None else set()


def _on_account(state: LiveState, entity: Any, deleted: bool) -> set[Touch]:
    account: Account = entity
    if deleted:
        state.accounts.pop(account.id, None)
    else:
        state._put_account(account)
    touched = {Touch(ACCOUNTS, account.id, account.id), Touch(BALANCES, account.id, account.id)}
    # Views carry the account's name: refresh them all.
    touched.update(Touch(POSITIONS, account.id, p.id) for p in state.positions_of(account.id))
    touched.update(Touch(ORDERS, account.id, i) for i in state.order_ids_of(account.id))
    return touched


def _on_position(state: LiveState, entity: Any, deleted: bool) -> set[Touch]:
    position: Position = entity
    old = state.positions.get(position.id)
    touched = {Touch(POSITIONS, position.account_id, position.id)}
    if old is not None and old.account_id != position.account_id:
        touched.add(Touch(POSITIONS, old.account_id, position.id))
    if deleted:
        state.positions.pop(position.id, None)
        state._positions_by_account.get(position.account_id, set()).discard(position.id)
    else:
        state._put_position(position)
    return touched


def _on_order(state: LiveState, entity: Any, deleted: bool) -> set[Touch]:
    order: Order = entity
    touched = {Touch(ORDERS, order.account_id, order.id)}
    if deleted:
        state.orders.pop(order.id, None)
        state._orders_by_account.get(order.account_id, set()).discard(order.id)
    else:
        state._put_order(order)
    return touched


def _on_version(state: LiveState, entity: Any, deleted: bool) -> set[Touch]:
    version: OrderVersion = entity
    if deleted:
        state.versions.pop(version.id, None)
        state._versions_by_order.get(version.order_id, set()).discard(version.id)
    else:
        state._put_version(version)
    return state._touch_order(version.order_id)


def _on_fill(state: LiveState, entity: Any, deleted: bool) -> set[Touch]:
    fill: Fill = entity
    if deleted:
        state.fills.pop(fill.id, None)
        state._fills_by_order.get(fill.order_id, set()).discard(fill.id)
    else:
        state._put_fill(fill)
    return state._touch_order(fill.order_id)


def _on_cash(state: LiveState, entity: Any, deleted: bool) -> set[Touch]:
    cash: CashBalance = entity
    if deleted:
        state.cash_balances.pop(cash.id, None)
        state._cash_by_account.get(cash.account_id, set()).discard(cash.id)
    else:
        state._put_cash(cash)
    return {Touch(BALANCES, cash.account_id, cash.account_id)}


def _on_margin(state: LiveState, entity: Any, deleted: bool) -> set[Touch]:
    margin: MarginSnapshot = entity
    if deleted:
        state.margins.pop(margin.id, None)
    else:
        state.margins[margin.id] = margin
    return {Touch(BALANCES, margin.id, margin.id)}


def _on_contract(state: LiveState, entity: Any, deleted: bool) -> set[Touch]:
    contract: Contract = entity
    if deleted:
        state.contracts.pop(contract.id, None)
        return state._touch_contracts({contract.id})
    return state.add_reference([contract], (), ())


def _on_maturity(state: LiveState, entity: Any, deleted: bool) -> set[Touch]:
    maturity: ContractMaturity = entity
    if deleted:
        state.maturities.pop(maturity.id, None)
    else:
        state.maturities[maturity.id] = maturity
    ids = {c.id for c in state.contracts.values() if c.contract_maturity_id == maturity.id}
    return state._touch_contracts(ids)


def _on_product(state: LiveState, entity: Any, deleted: bool) -> set[Touch]:
    product: Product = entity
    if deleted:
        state.products.pop(product.id, None)
    else:
        state.products[product.id] = product
    maturity_ids = {m.id for m in state.maturities.values() if m.product_id == product.id}
    ids = {c.id for c in state.contracts.values() if c.contract_maturity_id in maturity_ids}
    return state._touch_contracts(ids)


_HANDLERS = {
    "account": _on_account,
    "position": _on_position,
    "order": _on_order,
    "orderVersion": _on_version,
    "fill": _on_fill,
    "cashBalance": _on_cash,
    "marginSnapshot": _on_margin,
    "contract": _on_contract,
    "contractMaturity": _on_maturity,
    "product": _on_product,
}
