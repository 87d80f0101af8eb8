"""How one entity change from the sync socket updates the live state, per entity type.

``HANDLERS`` maps Tradovate's entity type to its handler: it stores or drops the entity
through server/live/state.py's writes and returns the views the change may have touched
(an account's name is in all its views; an order's version and fills touch the order;
reference data touches the positions and orders of its contracts).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from trading_gateway.server.broker import schemas
from trading_gateway.server.live.kinds import Touch, UpdateKind

if TYPE_CHECKING:
    from trading_gateway.server.live.state import LiveState

Handler = Callable[["LiveState", Any, bool], set[Touch]]

POSITIONS = UpdateKind.POSITIONS
ORDERS = UpdateKind.ORDERS
BALANCES = UpdateKind.BALANCES
ACCOUNTS = UpdateKind.ACCOUNTS


def _on_account(state: LiveState, entity: Any, deleted: bool) -> set[Touch]:
    account: schemas.Account = entity
    if deleted:
        state.accounts.pop(account.id, None)
    else:
        state.put_account(account)
    touched = {Touch(ACCOUNTS, account.id, account.id), Touch(BALANCES, account.id, account.id)}
    # Views carry the account's name: refresh them all.
    touched.update(Touch(POSITIONS, account.id, p.id) for p in state.positions_of(account.id))
    touched.update(Touch(ORDERS, account.id, i) for i in state.order_ids_of(account.id))
    return touched


def _on_position(state: LiveState, entity: Any, deleted: bool) -> set[Touch]:
    position: schemas.Position = entity
    old = state.positions.get(position.id)
    touched = {Touch(POSITIONS, position.account_id, position.id)}
    if old is not None and old.account_id != position.account_id:
        touched.add(Touch(POSITIONS, old.account_id, position.id))
    state.store("position", position, deleted)
    return touched


def _on_order(state: LiveState, entity: Any, deleted: bool) -> set[Touch]:
    order: schemas.Order = entity
    state.store("order", order, deleted)
    return {Touch(ORDERS, order.account_id, order.id)}


def _on_version(state: LiveState, entity: Any, deleted: bool) -> set[Touch]:
    version: schemas.OrderVersion = entity
    state.store("orderVersion", version, deleted)
    return state.touch_order(version.order_id)


def _on_fill(state: LiveState, entity: Any, deleted: bool) -> set[Touch]:
    fill: schemas.Fill = entity
    state.store("fill", fill, deleted)
    return state.touch_order(fill.order_id)


def _on_cash(state: LiveState, entity: Any, deleted: bool) -> set[Touch]:
    cash: schemas.CashBalance = entity
    state.store("cashBalance", cash, deleted)
    return {Touch(BALANCES, cash.account_id, cash.account_id)}


def _on_margin(state: LiveState, entity: Any, deleted: bool) -> set[Touch]:
    margin: schemas.MarginSnapshot = entity
    if deleted:
        state.margins.pop(margin.id, None)
    else:
        state.margins[margin.id] = margin
    return {Touch(BALANCES, margin.id, margin.id)}


def _on_contract(state: LiveState, entity: Any, deleted: bool) -> set[Touch]:
    contract: schemas.Contract = entity
    if deleted:
        state.contracts.pop(contract.id, None)
        return state.touch_contracts({contract.id})
    return state.add_reference([contract], (), ())


def _on_maturity(state: LiveState, entity: Any, deleted: bool) -> set[Touch]:
    maturity: schemas.ContractMaturity = entity
    if deleted:
        state.maturities.pop(maturity.id, None)
    else:
        state.maturities[maturity.id] = maturity
    ids = {c.id for c in state.contracts.values() if c.contract_maturity_id == maturity.id}
    return state.touch_contracts(ids)


def _on_product(state: LiveState, entity: Any, deleted: bool) -> set[Touch]:
    product: schemas.Product = entity
    if deleted:
        state.products.pop(product.id, None)
    else:
        state.products[product.id] = product
    maturity_ids = {m.id for m in state.maturities.values() if m.product_id == product.id}
    ids = {c.id for c in state.contracts.values() if c.contract_maturity_id in maturity_ids}
    return state.touch_contracts(ids)


HANDLERS: dict[str, Handler] = {
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
