"""Tradovate enum values and explicit wire → enum tables.

Schemas keep enum-valued fields as plain strings so that an unexpected value never
breaks decoding. These tables turn them into enums: lookups are case-insensitive
(community code has seen ``"HOUSE"``), and an unknown value maps to ``None`` rather
than raising, so a new Tradovate value degrades to "unknown" instead of an outage.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from enum import StrEnum
from typing import Final, TypeVar

logger = logging.getLogger(__name__)

E = TypeVar("E", bound=StrEnum)


class Action(StrEnum):
    BUY = "Buy"
    SELL = "Sell"


class OrdStatus(StrEnum):
    CANCELED = "Canceled"
    COMPLETED = "Completed"
    EXPIRED = "Expired"
    FILLED = "Filled"
    PENDING_CANCEL = "PendingCancel"
    PENDING_NEW = "PendingNew"
    PENDING_REPLACE = "PendingReplace"
    REJECTED = "Rejected"
    SUSPENDED = "Suspended"
    UNKNOWN = "Unknown"
    WORKING = "Working"


# The one source of truth for order life-cycle classes (server/convert/ maps them to protos).
WORKING_ORD_STATUSES: Final = frozenset(
    {
        OrdStatus.PENDING_NEW,
        OrdStatus.WORKING,
        OrdStatus.PENDING_REPLACE,
        OrdStatus.PENDING_CANCEL,
        OrdStatus.SUSPENDED,
    }
)
"""Orders still live at the exchange (or about to be)."""
TERMINAL_ORD_STATUSES: Final = frozenset(
    {
        OrdStatus.FILLED,
        OrdStatus.CANCELED,
        OrdStatus.REJECTED,
        OrdStatus.EXPIRED,
        OrdStatus.COMPLETED,
    }
)
"""Orders that never change again (their versions and fills are final)."""


class OrderType(StrEnum):
    LIMIT = "Limit"
    MIT = "MIT"
    MARKET = "Market"
    QTS = "QTS"
    STOP = "Stop"
    STOP_LIMIT = "StopLimit"
    TRAILING_STOP = "TrailingStop"
    TRAILING_STOP_LIMIT = "TrailingStopLimit"
    LIMIT_IF_TOUCHED = "LimitIfTouched"


class TimeInForce(StrEnum):
    DAY = "Day"
    FOK = "FOK"
    GTC = "GTC"
    GTD = "GTD"
    IOC = "IOC"


class AccountType(StrEnum):
    CUSTOMER = "Customer"
    EMPLOYEE = "Employee"
    GIVEUP = "Giveup"
    HOUSE = "House"
    OMNIBUS = "Omnibus"
    WASH = "Wash"


class MarginAccountType(StrEnum):
    HEDGER = "Hedger"
    SPECULATOR = "Speculator"


class UserStatus(StrEnum):
    ACTIVE = "Active"
    CLOSED = "Closed"
    INITIATED = "Initiated"
    TEMPORARY_LOCKED = "TemporaryLocked"
    UNCONFIRMED_EMAIL = "UnconfirmedEmail"


def _table(enum: type[E], **aliases: E) -> Mapping[str, E]:
    """Lower-cased wire value → member, plus explicit aliases (keys lower-cased too)."""
    table: dict[str, E] = {member.value.lower(): member for member in enum}
    table.update({key.lower(): member for key, member in aliases.items()})
    return table


ACTIONS: Final = _table(Action)
ORD_STATUSES: Final = _table(OrdStatus)
ORDER_TYPES: Final = _table(OrderType)
TIMES_IN_FORCE: Final = _table(TimeInForce)
ACCOUNT_TYPES: Final = _table(AccountType)
MARGIN_ACCOUNT_TYPES: Final = _table(MarginAccountType)
USER_STATUSES: Final = _table(UserStatus)


def parse(table: Mapping[str, E], wire: str | None) -> E | None:
    """Map a wire string through ``table``; ``None`` for a missing or unknown value."""
    if wire is None:
        return None
    member = table.get(wire.lower())
    if member is None:
        logger.debug("unknown Tradovate enum value %r", wire)
    return member
