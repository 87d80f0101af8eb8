"""The only package that knows both the broker's structs and the gateway's protos.

Entity conversions use explicit enum tables (``tables``: unknown values map to
*_UNSPECIFIED); money and prices stay Decimal end to end and are written by the rounding
rule (server/rounding.py) in ``scalars``: ``money_fields`` for money, ``price_fields``
for prices. ``entities`` converts accounts, positions, orders and balances; ``parts``
builds each account's part of a response and takes ``status_of``
(server/api/status.account_status), so the one exception → status table stays in the API
layer. Callers use ``trading_gateway.server.convert`` as one namespace.
"""

from __future__ import annotations

from trading_gateway.server.convert.entities import (
    MARK_FIGURES,
    TRADOVATE_FIGURES,
    UNKNOWN_MESSAGES,
    account,
    account_fields,
    balance,
    balance_fields,
    order,
    order_fields,
    position,
    position_fields,
    totals,
    totals_fields,
    unknown_figures,
)
from trading_gateway.server.convert.parts import (
    StatusOf,
    add_open_pnl,
    balance_part,
    list_accounts_response,
    login_statuses,
    meta_fields,
    order_selector,
    orders_part,
    pending_ids_response,
    positions_part,
)
from trading_gateway.server.convert.scalars import (
    Fields,
    date_fields,
    epoch,
    epoch_fields,
    epoch_ns_fields,
    fields_ns,
    money_fields,
    now,
    price_fields,
    timestamp_fields,
)
from trading_gateway.server.convert.tables import (
    ACCOUNT_TYPES,
    ORDER_STATUSES,
    ORDER_TYPES,
    SIDES,
    SOURCES,
    TIMES_IN_FORCE,
    WORKING_STATUSES,
    mapped,
    order_status,
    order_type,
    time_in_force,
)

__all__ = [
    "ACCOUNT_TYPES",
    "MARK_FIGURES",
    "ORDER_STATUSES",
    "ORDER_TYPES",
    "SIDES",
    "SOURCES",
    "TIMES_IN_FORCE",
    "TRADOVATE_FIGURES",
    "UNKNOWN_MESSAGES",
    "WORKING_STATUSES",
    "Fields",
    "StatusOf",
    "account",
    "account_fields",
    "add_open_pnl",
    "balance",
    "balance_fields",
    "balance_part",
    "date_fields",
    "epoch",
    "epoch_fields",
    "epoch_ns_fields",
    "fields_ns",
    "list_accounts_response",
    "login_statuses",
    "mapped",
    "meta_fields",
    "money_fields",
    "now",
    "order",
    "order_fields",
    "order_selector",
    "order_status",
    "order_type",
    "orders_part",
    "pending_ids_response",
    "position",
    "position_fields",
    "positions_part",
    "price_fields",
    "time_in_force",
    "timestamp_fields",
    "totals",
    "totals_fields",
    "unknown_figures",
]
