"""The raw live state: Tradovate entities from the user-sync socket, indexed by account.

``apply_snapshot`` and ``apply_change`` return the entity keys whose view may have
changed (``Touch``). The view layer (server/live/views.py) recomputes those views and
keeps only the ones that really changed, so a resync that brings nothing new emits
nothing. How each entity type's change applies is server/live/state_changes.py. This
module knows broker structs only, never protos.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from trading_gateway.server.broker import schemas
from trading_gateway.server.broker.events import ChangeType, EntityChange, EntityRef, SyncSnapshot
from trading_gateway.server.live.kinds import Touch, UpdateKind
from trading_gateway.server.live.state_changes import HANDLERS
from trading_gateway.server.reads.records import ContractRef

logger = logging.getLogger(__name__)

POSITIONS = UpdateKind.POSITIONS
ORDERS = UpdateKind.ORDERS
BALANCES = UpdateKind.BALANCES
ACCOUNTS = UpdateKind.ACCOUNTS


@dataclass(frozen=True, slots=True)
class OrderParts:
    """Everything an Order view is made of: the order, its latest version, its fills."""

    order: schemas.Order
    version: schemas.OrderVersion | None
    fills: tuple[schemas.Fill, ...]


class LiveState:
    """Entities keyed by id, with per-account and per-contract indexes."""

    def __init__(self) -> None:
        self.accounts: dict[int, schemas.Account] = {}
        self.positions: dict[int, schemas.Position] = {}
        self.orders: dict[int, schemas.Order] = {}
        self.versions: dict[int, schemas.OrderVersion] = {}
        self.fills: dict[int, schemas.Fill] = {}
        self.cash_balances: dict[int, schemas.CashBalance] = {}
        self.margins: dict[int, schemas.MarginSnapshot] = {}
        self.contracts: dict[int, schemas.Contract] = {}
        self.maturities: dict[int, schemas.ContractMaturity] = {}
        self.products: dict[int, schemas.Product] = {}
        # Contracts the sync data did not describe, resolved over REST (symbol, value/point).
        self.contract_infos: dict[int, schemas.ContractInfo] = {}
        self.user_ids: tuple[int, ...] = ()
        self.synced = False
        self._positions_by_account: dict[int, set[int]] = {}
        self._orders_by_account: dict[int, set[int]] = {}
        self._cash_by_account: dict[int, set[int]] = {}
        self._versions_by_order: dict[int, set[int]] = {}
        self._fills_by_order: dict[int, set[int]] = {}

    # ------------------------------------------------------------------ reads
    def positions_of(self, account_id: int) -> list[schemas.Position]:
        ids = self._positions_by_account.get(account_id, ())
        return [self.positions[i] for i in sorted(ids)]

    def order_ids_of(self, account_id: int) -> list[int]:
        return sorted(self._orders_by_account.get(account_id, ()))

    def cash_of(self, account_id: int) -> list[schemas.CashBalance]:
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

    def product_of(self, contract_id: int) -> schemas.Product | None:
        contract = self.contracts.get(contract_id)
        if contract is None or contract.contract_maturity_id is None:
            return None
        maturity = self.maturities.get(contract.contract_maturity_id)
        if maturity is None:
            return None
        return self.products.get(maturity.product_id)

    def account_name(self, account_id: int) -> str:
        account = self.accounts.get(account_id)
        return account.name if account is not None else ""

    def contract_ref(self, contract_id: int | None) -> ContractRef | None:
        if contract_id is None:
            return None
        contract = self.contracts.get(contract_id)
        if contract is None:
            info = self.contract_infos.get(contract_id)
            if info is None:
                return None
            return ContractRef(
                symbol=info.symbol, value_per_point=info.value_per_point, tick_size=info.tick_size
            )
        product = self.product_of(contract_id)
        return ContractRef(
            symbol=contract.name,
            value_per_point=product.value_per_point if product is not None else None,
            tick_size=product.tick_size if product is not None else None,
        )

    def value_per_point(self, contract_id: int) -> Decimal | None:
        product = self.product_of(contract_id)
        if product is not None:
            return product.value_per_point
        info = self.contract_infos.get(contract_id)
        return info.value_per_point if info is not None else None

    def tick_size(self, contract_id: int) -> Decimal | None:
        product = self.product_of(contract_id)
        if product is not None:
            return product.tick_size
        info = self.contract_infos.get(contract_id)
        return info.tick_size if info is not None else None

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
            self.put_account(account)
        for position in snapshot.positions:
            self.put_position(position)
        for order in snapshot.orders:
            self.put_order(order)
        for version in snapshot.order_versions:
            self.put_version(version)
        for fill in snapshot.fills:
            self.put_fill(fill)
        for cash in snapshot.cash_balances:
            self.put_cash(cash)
        for margin in snapshot.margin_snapshots:
            self.margins[margin.id] = margin
        self._put_reference(snapshot.contracts, snapshot.contract_maturities, snapshot.products)
        self.user_ids = snapshot.user_ids
        self.synced = True
        touched.update(self.all_touches())
        return touched

    def apply_change(self, change: EntityChange) -> set[Touch]:
        handler = HANDLERS.get(change.entity_type)
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
        contracts: Iterable[schemas.Contract],
        maturities: Iterable[schemas.ContractMaturity],
        products: Iterable[schemas.Product],
    ) -> set[Touch]:
        """Contracts learned elsewhere (REST): touches the positions and orders that use them."""
        ids = self._put_reference(contracts, maturities, products)
        return self.touch_contracts(ids)

    def add_contract_infos(self, infos: Iterable[schemas.ContractInfo]) -> set[Touch]:
        """Contracts resolved over REST: touches the positions and orders that use them."""
        ids: set[int] = set()
        for info in infos:
            self.contract_infos[info.contract_id] = info
            ids.add(info.contract_id)
        return self.touch_contracts(ids)

    def unknown_contracts(self, contract_ids: Iterable[int | None]) -> set[int]:
        """Those of ``contract_ids`` with neither sync data nor a REST answer."""
        return {
            c
            for c in contract_ids
            if c is not None and c not in self.contracts and c not in self.contract_infos
        }

    # ------------------------------------------------------------------ writes used by changes
    # (server/live/state_changes.py)
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

    def put_account(self, account: schemas.Account) -> None:
        self.accounts[account.id] = account

    def put_position(self, position: schemas.Position) -> None:
        old = self.positions.get(position.id)
        if old is not None and old.account_id != position.account_id:
            self._positions_by_account.get(old.account_id, set()).discard(position.id)
        self.positions[position.id] = position
        self._positions_by_account.setdefault(position.account_id, set()).add(position.id)

    def put_order(self, order: schemas.Order) -> None:
        old = self.orders.get(order.id)
        if old is not None and old.account_id != order.account_id:
            self._orders_by_account.get(old.account_id, set()).discard(order.id)
        self.orders[order.id] = order
        self._orders_by_account.setdefault(order.account_id, set()).add(order.id)

    def put_version(self, version: schemas.OrderVersion) -> None:
        self.versions[version.id] = version
        self._versions_by_order.setdefault(version.order_id, set()).add(version.id)

    def put_fill(self, fill: schemas.Fill) -> None:
        self.fills[fill.id] = fill
        self._fills_by_order.setdefault(fill.order_id, set()).add(fill.id)

    def put_cash(self, cash: schemas.CashBalance) -> None:
        self.cash_balances[cash.id] = cash
        self._cash_by_account.setdefault(cash.account_id, set()).add(cash.id)

    def store(self, entity_type: str, entity: Any, deleted: bool) -> None:
        """Put an indexed entity (``_INDEXED``), or drop it when the change deleted it."""
        if deleted:
            self.drop(entity_type, entity)
        else:
            _PUTS[entity_type](self, entity)

    def drop(self, entity_type: str, entity: Any) -> None:
        """Remove an entity that an index files under its owner (``_INDEXED``)."""
        entities, index, owner = _INDEXED[entity_type]
        getattr(self, entities).pop(entity.id, None)
        getattr(self, index).get(getattr(entity, owner), set()).discard(entity.id)

    def _put_reference(
        self,
        contracts: Iterable[schemas.Contract],
        maturities: Iterable[schemas.ContractMaturity],
        products: Iterable[schemas.Product],
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

    def touch_contracts(self, contract_ids: set[int]) -> set[Touch]:
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

    def touch_order(self, order_id: int) -> set[Touch]:
        order = self.orders.get(order_id)
        return {Touch(ORDERS, order.account_id, order_id)} if order is not None else set()


#: Entity type → (its table, the index that files it, the owner field the index uses).
_INDEXED: dict[str, tuple[str, str, str]] = {
    "position": ("positions", "_positions_by_account", "account_id"),
    "order": ("orders", "_orders_by_account", "account_id"),
    "orderVersion": ("versions", "_versions_by_order", "order_id"),
    "fill": ("fills", "_fills_by_order", "order_id"),
    "cashBalance": ("cash_balances", "_cash_by_account", "account_id"),
}

_PUTS: dict[str, Callable[[LiveState, Any], None]] = {
    "position": LiveState.put_position,
    "order": LiveState.put_order,
    "orderVersion": LiveState.put_version,
    "fill": LiveState.put_fill,
    "cashBalance": LiveState.put_cash,
}
