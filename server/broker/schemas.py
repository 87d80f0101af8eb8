"""Tradovate JSON, decoded at the edge into frozen typed structs.

Field names follow shared/reference/tradovate-api.md. Every struct tolerates unknown
fields (msgspec ignores them) and missing optional ones. Money and prices decode
straight from the JSON number text into Decimal, so nothing passes through a float.
Enum-valued fields stay strings here; server/broker/enums.py maps them explicitly,
so an unexpected value never breaks decoding.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import msgspec


class _Entity(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """Base for Tradovate entities: camelCase on the wire, unknown fields ignored."""


class TradeDate(_Entity, frozen=True):
    year: int
    month: int
    day: int


class AccessToken(_Entity, frozen=True):
    """AccessTokenResponse from accesstokenrequest and renewaccesstoken."""

    access_token: str | None = None
    md_access_token: str | None = None
    expiration_time: dt.datetime | None = None
    user_id: int | None = None
    user_status: str | None = None
    name: str | None = None
    has_live: bool | None = None
    error_text: str | None = None


class Penalty(msgspec.Struct, frozen=True, kw_only=True):
    """A time-penalty body: {"p-ticket", "p-time", "p-captcha"}."""

    ticket: str | None = msgspec.field(name="p-ticket", default=None)
    time: float | None = msgspec.field(name="p-time", default=None)
    captcha: bool = msgspec.field(name="p-captcha", default=False)


class Account(_Entity, frozen=True):
    id: int
    name: str
    user_id: int | None = None
    account_type: str | None = None
    active: bool = True
    clearing_house_id: int | None = None
    risk_category_id: int | None = None
    auto_liq_profile_id: int | None = None
    margin_account_type: str | None = None
    legal_status: str | None = None
    readonly: bool | None = None
    archived: bool | None = None
    timestamp: dt.datetime | None = None


class Position(_Entity, frozen=True):
    id: int
    account_id: int
    contract_id: int
    net_pos: int = 0
    net_price: Decimal | None = None
    bought: int = 0
    bought_value: Decimal | None = None
    sold: int = 0
    sold_value: Decimal | None = None
    prev_pos: int = 0
    prev_price: Decimal | None = None
    timestamp: dt.datetime | None = None
    trade_date: TradeDate | None = None


class Order(_Entity, frozen=True):
    """Qty and price are not here: they live on OrderVersion."""

    id: int
    account_id: int
    contract_id: int | None = None
    timestamp: dt.datetime | None = None
    action: str | None = None
    ord_status: str | None = None
    admin: bool | None = None
    spread_definition_id: int | None = None
    execution_provider_id: int | None = None
    oco_id: int | None = None
    parent_id: int | None = None
    linked_id: int | None = None


class OrderVersion(_Entity, frozen=True):
    id: int
    order_id: int
    order_qty: int | None = None
    order_type: str | None = None
    price: Decimal | None = None
    stop_price: Decimal | None = None
    max_show: int | None = None
    peg_difference: Decimal | None = None
    time_in_force: str | None = None
    expire_time: dt.datetime | None = None
    text: str | None = None


class Fill(_Entity, frozen=True):
    """No accountId on a fill: join through the order."""

    id: int
    order_id: int
    contract_id: int | None = None
    timestamp: dt.datetime | None = None
    trade_date: TradeDate | None = None
    action: str | None = None
    qty: int = 0
    price: Decimal | None = None
    active: bool = True
    finally_paired: int | None = None


class CashBalance(_Entity, frozen=True):
    id: int
    account_id: int
    timestamp: dt.datetime | None = None
    trade_date: TradeDate | None = None
    currency_id: int | None = None
    amount: Decimal | None = None
    realized_pnl: Decimal | None = msgspec.field(name="realizedPnL", default=None)
    week_realized_pnl: Decimal | None = msgspec.field(name="weekRealizedPnL", default=None)


class CashBalanceSnapshot(_Entity, frozen=True):
    """POST cashBalance/getcashbalancesnapshot. The request's accountId is not echoed."""

    error_text: str | None = None
    total_cash_value: Decimal | None = None
    total_pnl: Decimal | None = msgspec.field(name="totalPnL", default=None)
    initial_margin: Decimal | None = None
    maintenance_margin: Decimal | None = None
    net_liq: Decimal | None = None
    open_pnl: Decimal | None = msgspec.field(name="openPnL", default=None)
    realized_pnl: Decimal | None = msgspec.field(name="realizedPnL", default=None)
    week_realized_pnl: Decimal | None = msgspec.field(name="weekRealizedPnL", default=None)


class MarginSnapshot(_Entity, frozen=True):
    """Its id equals the account id (the reference infers this from the C# sample)."""

    id: int
    timestamp: dt.datetime | None = None
    risk_time_period_id: int | None = None
    initial_margin: Decimal | None = None
    maintenance_margin: Decimal | None = None
    auto_liq_level: Decimal | None = None
    liq_only_level: Decimal | None = None
    total_used_margin: Decimal | None = None
    full_initial_margin: Decimal | None = None


class Contract(_Entity, frozen=True):
    id: int
    name: str
    contract_maturity_id: int | None = None
    timestamp: dt.datetime | None = None


class ContractMaturity(_Entity, frozen=True):
    id: int
    product_id: int
    expiration_month: int | None = None
    expiration_date: dt.datetime | None = None
    is_front: bool | None = None


class Product(_Entity, frozen=True):
    id: int
    name: str
    currency_id: int | None = None
    product_type: str | None = None
    description: str | None = None
    exchange_id: int | None = None
    status: str | None = None
    value_per_point: Decimal | None = None
    tick_size: Decimal | None = None
    price_format_type: str | None = None
    price_format: int | None = None


class QuoteEntry(_Entity, frozen=True):
    price: Decimal | None = None
    size: Decimal | None = None


class Quote(_Entity, frozen=True):
    """One element of a market-data event's d.quotes[]."""

    contract_id: int
    timestamp: dt.datetime | None = None
    entries: dict[str, QuoteEntry] = msgspec.field(default_factory=dict)


class PlaceOrderResult(_Entity, frozen=True):
    order_id: int | None = None
    failure_reason: str | None = None
    failure_text: str | None = None


class CommandResult(_Entity, frozen=True):
    command_id: int | None = None
    failure_reason: str | None = None
    failure_text: str | None = None


class ContractInfo(msgspec.Struct, frozen=True, kw_only=True):
    """What a contract id means: symbol, product, and the numbers P&L needs.

    Built by the broker from contract → contractMaturity → product; not a wire shape.
    """

    contract_id: int
    symbol: str
    product_name: str
    value_per_point: Decimal
    tick_size: Decimal
    currency_id: int | None = None
