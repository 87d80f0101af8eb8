"""What the user-sync socket hands its consumer: snapshots, entity changes, status."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from enum import StrEnum

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
)


@dataclass(frozen=True, slots=True)
class EntityRef:
    """A ``Deleted`` props entity that carried too little to decode: only its id.

    The live state looks the stored entity up by id and removes it.
    """

    id: int


#: Every entity struct a SyncSnapshot or EntityChange can carry (EntityRef: Deleted only).
Entity = (
    EntityRef
    | Account
    | Position
    | Order
    | OrderVersion
    | Fill
    | CashBalance
    | MarginSnapshot
    | Contract
    | ContractMaturity
    | Product
)


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class ChangeType(StrEnum):
    CREATED = "Created"
    UPDATED = "Updated"
    DELETED = "Deleted"


@dataclass(frozen=True)
class SyncSnapshot:
    """The full state from ``user/syncrequest``. Replace local state with it, then apply changes.

    ``reconnect`` is True for every snapshot after the first: diff it against what you hold.
    """

    accounts: tuple[Account, ...] = ()
    positions: tuple[Position, ...] = ()
    orders: tuple[Order, ...] = ()
    order_versions: tuple[OrderVersion, ...] = ()
    fills: tuple[Fill, ...] = ()
    cash_balances: tuple[CashBalance, ...] = ()
    margin_snapshots: tuple[MarginSnapshot, ...] = ()
    contracts: tuple[Contract, ...] = ()
    contract_maturities: tuple[ContractMaturity, ...] = ()
    products: tuple[Product, ...] = ()
    user_ids: tuple[int, ...] = ()
    received_at: dt.datetime = field(default_factory=utc_now)
    reconnect: bool = False


@dataclass(frozen=True)
class EntityChange:
    """One ``props`` event for one entity. ``entity_type`` is Tradovate's camelCase name."""

    entity_type: str
    change: ChangeType
    entity: Entity
    received_at: dt.datetime = field(default_factory=utc_now)


@dataclass(frozen=True)
class SyncStatus:
    """The socket went down (``connected=False``) with a reason a person can read."""

    connected: bool
    reason: str
    at: dt.datetime = field(default_factory=utc_now)


SyncEvent = SyncSnapshot | EntityChange | SyncStatus
