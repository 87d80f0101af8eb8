"""Small conversions between Python values and the contract's messages and enums."""

from __future__ import annotations

import decimal
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, TypeAlias, TypeVar

from google.protobuf import timestamp_pb2
from tradovate_gateway.v1 import trading_pb2

if TYPE_CHECKING:
    from google.protobuf.internal.enum_type_wrapper import _EnumTypeWrapper

E = TypeVar("E", bound=int)

AccountsArg: TypeAlias = Iterable[str | int] | str | int
"""Account names or numeric ids: ("DEMO1", 1234567), or one name, or "A,B"."""

ReadPolicyArg: TypeAlias = "trading_pb2.ReadPolicy.ValueType | str | None"
"""A ReadPolicy value, or "fresh" / "cached" / "upstream", or None for the RPC's default."""

OrderFilterArg: TypeAlias = "trading_pb2.OrderFilter.ValueType | str | None"
"""An OrderFilter value, or "working" / "all", or None for the default (working)."""

OrderStatusArg: TypeAlias = "trading_pb2.OrderStatus.ValueType | str"
"""An OrderStatus value, or a name such as "filled" or "ORDER_STATUS_FILLED"."""


def to_decimal(value: trading_pb2.Decimal | None) -> decimal.Decimal | None:
    """The exact number in a contract `Decimal`; None when the field is unset or empty."""
    if value is None or not value.value:
        return None
    try:
        return decimal.Decimal(value.value)
    except decimal.InvalidOperation:
        raise ValueError(f"not a decimal number: {value.value!r}") from None


def to_datetime(value: timestamp_pb2.Timestamp | None) -> datetime | None:
    """An aware UTC datetime; None when the timestamp is unset (zero)."""
    if value is None or (value.seconds == 0 and value.nanos == 0):
        return None
    return value.ToDatetime(tzinfo=UTC)


def account_entries(accounts: AccountsArg) -> list[str]:
    """Selector entries: ints become digit strings; "A,B" splits; names are stripped.

    A blank or whitespace-only entry ("", " ", the middle of "A,,B") is sent as given, so
    the gateway answers INVALID_ARGUMENT naming it: an unset variable must never widen a
    selection to every account. Only no entries at all (``()``) selects every account.
    """
    if isinstance(accounts, bool):
        raise TypeError("accounts must be names or ids, not a bool")
    items: Iterable[str | int] = (accounts,) if isinstance(accounts, str | int) else accounts
    entries: list[str] = []
    for item in items:
        if isinstance(item, bool):
            raise TypeError("accounts must be names or ids, not a bool")
        if isinstance(item, int):
            entries.append(str(item))
            continue
        entries.extend(part.strip() or part for part in item.split(","))
    return entries


def selector(accounts: AccountsArg = ()) -> trading_pb2.AccountSelector:
    return trading_pb2.AccountSelector(accounts=account_entries(accounts))


def read_policy(value: ReadPolicyArg) -> trading_pb2.ReadPolicy.ValueType:
    if value is None:
        return trading_pb2.READ_POLICY_UNSPECIFIED
    return _enum_value(trading_pb2.ReadPolicy, "READ_POLICY_", value, "read policy")


def order_filter(value: OrderFilterArg) -> trading_pb2.OrderFilter.ValueType:
    if value is None:
        return trading_pb2.ORDER_FILTER_UNSPECIFIED
    return _enum_value(trading_pb2.OrderFilter, "ORDER_FILTER_", value, "order filter")


def order_statuses(values: Iterable[OrderStatusArg]) -> list[trading_pb2.OrderStatus.ValueType]:
    if isinstance(values, str):
        values = [part for part in values.split(",") if part.strip()]
    return [
        _enum_value(trading_pb2.OrderStatus, "ORDER_STATUS_", v, "order status") for v in values
    ]


def enum_label(enum: _EnumTypeWrapper[E], value: E, prefix: str) -> str:
    """`ORDER_TYPE_STOP_LIMIT` -> `STOP_LIMIT`; numbers this client does not know show as digits."""
    try:
        name = enum.Name(value)
    except ValueError:
        return str(value)
    return name.removeprefix(prefix)


def _enum_value(enum: _EnumTypeWrapper[E], prefix: str, value: E | str, what: str) -> E:
    if isinstance(value, str):
        name = value.strip().upper().replace("-", "_")
        full = name if name.startswith(prefix) else prefix + name
        try:
            return enum.Value(full)
        except ValueError:
            choices = ", ".join(
                n.removeprefix(prefix).lower()
                for n, _ in enum.items()
                if not n.endswith("UNSPECIFIED")
            )
            raise ValueError(f"unknown {what} {value!r}; choose from {choices}") from None
    if value not in enum.values():
        raise ValueError(f"unknown {what} number {value}")
    return value
