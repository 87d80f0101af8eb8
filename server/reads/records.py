"""What a read produces per account: the broker structs it joined, where they came from, when.

These are the values the fan-out fetches, the cache stores (msgspec msgpack) and
server/convert/ turns into protos. They hold broker structs but know nothing of gRPC.
"""

from __future__ import annotations

import enum
import time
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Generic, TypeVar

import msgspec

from trading_gateway.server.broker.schemas import (
    Account,
    CashBalanceSnapshot,
    Fill,
    Order,
    OrderVersion,
    Position,
)

T = TypeVar("T")


class Kind(enum.StrEnum):
    """A cached, fetched entity family; the value is the cache-key part."""

    ACCOUNTS = "accounts"
    POSITIONS = "positions"
    ORDERS = "orders"
    BALANCES = "balances"


class Source(enum.Enum):
    UPSTREAM = "upstream"
    CACHE = "cache"
    LIVE = "live"


class Policy(enum.Enum):
    """ReadPolicy without the UNSPECIFIED value (the servicer resolves defaults)."""

    FRESH = "fresh"
    CACHED = "cached"
    UPSTREAM = "upstream"


class ContractRef(msgspec.Struct, frozen=True, kw_only=True):
    """What a position or order needs from its contract."""

    symbol: str
    value_per_point: Decimal | None = None
    #: The contract's price grid: prices are snapped to it where a double's residue is off it.
    tick_size: Decimal | None = None


class PositionsData(msgspec.Struct, frozen=True, kw_only=True):
    """One account's positions (flat ones too) and the contracts they reference."""

    positions: list[Position]
    contracts: dict[int, ContractRef]
    # Last trade price per contract, when known (live state): fills in open PnL.
    last_prices: dict[int, Decimal] = msgspec.field(default_factory=dict)


class OrderDetail(msgspec.Struct, frozen=True, kw_only=True):
    """An order joined with its latest version (qty, prices) and its fills."""

    order: Order
    version: OrderVersion | None = None
    fills: list[Fill] = msgspec.field(default_factory=list)


class OrdersData(msgspec.Struct, frozen=True, kw_only=True):
    orders: list[OrderDetail]
    contracts: dict[int, ContractRef]


class MarkFigures(msgspec.Struct, frozen=True, kw_only=True):
    """The gateway's own mark-to-market of an account from the last quotes (not Tradovate's).

    A None figure is unknown (an open position has no price yet); ``as_of`` (epoch seconds)
    is the time of the newest quote it uses, None with no open position."""

    open_pnl: Decimal | None = None
    total_pnl: Decimal | None = None
    net_liquidation: Decimal | None = None
    as_of: float | None = None


class BalanceData(msgspec.Struct, frozen=True, kw_only=True):
    """One account's balance: Tradovate's figures (``snapshot``) and, live, the gateway's mark.

    ``pnl_as_of`` and ``margin_as_of`` (epoch seconds) are when Tradovate's open PnL / net
    liquidation / total PnL and its margins were true. ``unknown`` names figures that are
    not known and why (figure → UPPER_SNAKE reason); server/convert/ also lists every other
    unset Tradovate figure as NOT_REPORTED, so none is ever unset silently."""

    snapshot: CashBalanceSnapshot
    currency: str = "USD"
    pnl_as_of: float | None = None
    margin_as_of: float | None = None
    unknown: dict[str, str] = msgspec.field(default_factory=dict)
    mark: MarkFigures | None = None


class Fetched(msgspec.Struct, Generic[T], frozen=True):
    """Data plus the wall-clock time (epoch seconds) it was true upstream."""

    data: T
    as_of: float


def now_epoch() -> float:
    return time.time()


@dataclass(frozen=True, slots=True)
class AccountRead(Generic[T]):
    """One account's entry in a multi-account answer: data or the error that replaced it."""

    account: Account
    data: T | None = None
    error: BaseException | None = None
    source: Source | None = None
    as_of: float | None = None
    #: The gateway login whose Tradovate user sees the account ("" before many logins).
    login: str = ""

    @property
    def ok(self) -> bool:
        return self.error is None and self.data is not None


@dataclass(frozen=True, slots=True)
class AccountList:
    """The accounts a ListAccounts call returns, with the list's own provenance."""

    accounts: list[Account]
    source: Source
    as_of: float
    #: The login of each account, in the same order (empty: no login is named).
    logins: list[str] = field(default_factory=list)
    #: Logins the call covers whose accounts could not be listed, with why.
    unavailable: list[LoginProblem] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class LoginProblem:
    """A login whose accounts a call could not list, and the error that says why."""

    login: str
    error: BaseException


@dataclass(frozen=True, slots=True)
class Snapshot:
    """GetSnapshot: the selected accounts, then their positions, orders and balances in order."""

    accounts: list[Account]
    positions: list[AccountRead[PositionsData]]
    orders: list[AccountRead[OrdersData]]
    balances: list[AccountRead[BalanceData]]
    #: The login of each account, in the same order (empty: no login is named).
    logins: list[str] = field(default_factory=list)
    unavailable: list[LoginProblem] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Reads(Generic[T]):
    """One kind's per-account reads across logins, and the logins that could not answer."""

    reads: list[AccountRead[T]]
    unavailable: list[LoginProblem] = field(default_factory=list)
