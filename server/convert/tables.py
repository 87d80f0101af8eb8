"""The enum tables between Tradovate's values and the protos' (unknown → *_UNSPECIFIED)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final, TypeVar

from tradovate_gateway.v1 import trading_pb2 as pb

from trading_gateway.server.broker import enums
from trading_gateway.server.reads.records import (
    Source,
)

K = TypeVar("K")
V = TypeVar("V")

SOURCES: Final[dict[Source, pb.Source.ValueType]] = {
    Source.UPSTREAM: pb.SOURCE_UPSTREAM,
    Source.CACHE: pb.SOURCE_CACHE,
    Source.LIVE: pb.SOURCE_LIVE,
}
ACCOUNT_TYPES: Final[dict[enums.AccountType, pb.AccountType.ValueType]] = {
    enums.AccountType.CUSTOMER: pb.ACCOUNT_TYPE_CUSTOMER,
    enums.AccountType.GIVEUP: pb.ACCOUNT_TYPE_GIVEUP,
    enums.AccountType.HOUSE: pb.ACCOUNT_TYPE_HOUSE,
    enums.AccountType.OMNIBUS: pb.ACCOUNT_TYPE_OMNIBUS,
    enums.AccountType.WASH: pb.ACCOUNT_TYPE_WASH,
    enums.AccountType.EMPLOYEE: pb.ACCOUNT_TYPE_EMPLOYEE,
}
SIDES: Final[dict[enums.Action, pb.Side.ValueType]] = {
    enums.Action.BUY: pb.SIDE_BUY,
    enums.Action.SELL: pb.SIDE_SELL,
}
ORDER_TYPES: Final[dict[enums.OrderType, pb.OrderType.ValueType]] = {
    enums.OrderType.MARKET: pb.ORDER_TYPE_MARKET,
    enums.OrderType.LIMIT: pb.ORDER_TYPE_LIMIT,
    enums.OrderType.STOP: pb.ORDER_TYPE_STOP,
    enums.OrderType.STOP_LIMIT: pb.ORDER_TYPE_STOP_LIMIT,
    enums.OrderType.MIT: pb.ORDER_TYPE_MIT,
    enums.OrderType.QTS: pb.ORDER_TYPE_QTS,
    enums.OrderType.TRAILING_STOP: pb.ORDER_TYPE_TRAILING_STOP,
    enums.OrderType.TRAILING_STOP_LIMIT: pb.ORDER_TYPE_TRAILING_STOP_LIMIT,
    enums.OrderType.LIMIT_IF_TOUCHED: pb.ORDER_TYPE_LIMIT_IF_TOUCHED,
}
ORDER_STATUSES: Final[dict[enums.OrdStatus, pb.OrderStatus.ValueType]] = {
    enums.OrdStatus.PENDING_NEW: pb.ORDER_STATUS_PENDING_NEW,
    enums.OrdStatus.WORKING: pb.ORDER_STATUS_WORKING,
    enums.OrdStatus.PENDING_REPLACE: pb.ORDER_STATUS_PENDING_REPLACE,
    enums.OrdStatus.PENDING_CANCEL: pb.ORDER_STATUS_PENDING_CANCEL,
    enums.OrdStatus.SUSPENDED: pb.ORDER_STATUS_SUSPENDED,
    enums.OrdStatus.FILLED: pb.ORDER_STATUS_FILLED,
    enums.OrdStatus.CANCELED: pb.ORDER_STATUS_CANCELED,
    enums.OrdStatus.REJECTED: pb.ORDER_STATUS_REJECTED,
    enums.OrdStatus.EXPIRED: pb.ORDER_STATUS_EXPIRED,
    enums.OrdStatus.COMPLETED: pb.ORDER_STATUS_COMPLETED,
    enums.OrdStatus.UNKNOWN: pb.ORDER_STATUS_UNKNOWN,
}
TIMES_IN_FORCE: Final[dict[enums.TimeInForce, pb.TimeInForce.ValueType]] = {
    enums.TimeInForce.DAY: pb.TIME_IN_FORCE_DAY,
    enums.TimeInForce.GTC: pb.TIME_IN_FORCE_GTC,
    enums.TimeInForce.GTD: pb.TIME_IN_FORCE_GTD,
    enums.TimeInForce.IOC: pb.TIME_IN_FORCE_IOC,
    enums.TimeInForce.FOK: pb.TIME_IN_FORCE_FOK,
}
WORKING_STATUSES: Final = frozenset(ORDER_STATUSES[s] for s in enums.WORKING_ORD_STATUSES)


def mapped(table: Mapping[K, V], parsed: K | None, unspecified: V) -> V:
    return table.get(parsed, unspecified) if parsed is not None else unspecified


# ---------------------------------------------------------------- enums


def order_status(wire: str | None) -> pb.OrderStatus.ValueType:
    parsed = enums.parse(enums.ORD_STATUSES, wire)
    return mapped(ORDER_STATUSES, parsed, pb.ORDER_STATUS_UNSPECIFIED)


def order_type(wire: str | None) -> pb.OrderType.ValueType:
    parsed = enums.parse(enums.ORDER_TYPES, wire)
    return mapped(ORDER_TYPES, parsed, pb.ORDER_TYPE_UNSPECIFIED)


def time_in_force(wire: str | None) -> pb.TimeInForce.ValueType:
    parsed = enums.parse(enums.TIMES_IN_FORCE, wire)
    return mapped(TIMES_IN_FORCE, parsed, pb.TIME_IN_FORCE_UNSPECIFIED)
