"""Small builders for Tradovate structs used by the live-state tests."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from trading_gateway.server.broker.events import ChangeType, Entity, EntityChange, SyncSnapshot
from trading_gateway.server.broker.schemas import (
    Account,
    CashBalance,
    Contract,
    ContractMaturity,
    Fill,
    MarginSnapshot,
    Order,
    OrderVersion,
    Position,
    Product,
    Quote,
    QuoteEntry,
)

T0 = dt.datetime(2026, 11, 24, 14, 30, tzinfo=dt.UTC)

ES_CONTRACT, NQ_CONTRACT = 3001, 3002


def account(account_id: int, name: str | None = None) -> Account:
    return Account(id=account_id, name=name or f"DEMO{account_id}", user_id=7, active=True)


def position(
    position_id: int,
    account_id: int,
    net_pos: int,
    net_price: str | None,
    contract_id: int = ES_CONTRACT,
) -> Position:
    return Position(
        id=position_id,
        account_id=account_id,
        contract_id=contract_id,
        net_pos=net_pos,
        net_price=Decimal(net_price) if net_price is not None else None,
        timestamp=T0,
    )


def order(order_id: int, account_id: int, status: str = "Working") -> Order:
    return Order(
        id=order_id,
        account_id=account_id,
        contract_id=ES_CONTRACT,
        action="Buy",
        ord_status=status,
        timestamp=T0,
    )


def version(version_id: int, order_id: int, qty: int = 1, price: str = "5000.25") -> OrderVersion:
    return OrderVersion(
        id=version_id, order_id=order_id, order_qty=qty, order_type="Limit", price=Decimal(price)
    )


def fill(fill_id: int, order_id: int, qty: int = 1, price: str = "5000.25") -> Fill:
    return Fill(
        id=fill_id,
        order_id=order_id,
        contract_id=ES_CONTRACT,
        qty=qty,
        price=Decimal(price),
        timestamp=T0,
        action="Buy",
    )


def cash(cash_id: int, account_id: int, amount: str, realized: str = "0") -> CashBalance:
    return CashBalance(
        id=cash_id,
        account_id=account_id,
        amount=Decimal(amount),
        realized_pnl=Decimal(realized),
        week_realized_pnl=Decimal(realized),
        currency_id=1,
        timestamp=T0,
    )


def margin(account_id: int, initial: str = "1000") -> MarginSnapshot:
    return MarginSnapshot(
        id=account_id, initial_margin=Decimal(initial), maintenance_margin=Decimal(initial)
    )


def reference() -> tuple[list[Contract], list[ContractMaturity], list[Product]]:
    products = [
        Product(
            id=10, name="ES", value_per_point=Decimal(50), tick_size=Decimal("0.25"), currency_id=1
        ),
        Product(
            id=11, name="NQ", value_per_point=Decimal(20), tick_size=Decimal("0.25"), currency_id=1
        ),
    ]
    maturities = [ContractMaturity(id=20, product_id=10), ContractMaturity(id=21, product_id=11)]
    contracts = [
        Contract(id=ES_CONTRACT, name="ESZ6", contract_maturity_id=20),
        Contract(id=NQ_CONTRACT, name="NQZ6", contract_maturity_id=21),
    ]
    return contracts, maturities, products


def snapshot(*, reconnect: bool = False, **parts: Sequence[Entity]) -> SyncSnapshot:
    """A snapshot holding the reference contracts, plus ``parts`` by SyncSnapshot field."""
    contracts, maturities, products = reference()
    fields: dict[str, Any] = {  # by SyncSnapshot field name; a wrong name fails here
        "contracts": tuple(contracts),
        "contract_maturities": tuple(maturities),
        "products": tuple(products),
    }
    fields.update({name: tuple(entities) for name, entities in parts.items()})
    return SyncSnapshot(reconnect=reconnect, **fields)


def change(entity_type: str, entity: Entity, kind: ChangeType = ChangeType.UPDATED) -> EntityChange:
    return EntityChange(entity_type=entity_type, change=kind, entity=entity)


def quote(contract_id: int, trade: str) -> Quote:
    return Quote(
        contract_id=contract_id, timestamp=T0, entries={"Trade": QuoteEntry(price=Decimal(trade))}
    )
