"""Working and terminal order statuses come from one table (server/broker/enums.py)."""

from __future__ import annotations

from trading_gateway.server import convert
from trading_gateway.server.broker import enums
from trading_gateway.server.broker.schemas import Order
from trading_gateway.server.reads import loaders


def _order(status: str) -> Order:
    return Order(id=1, account_id=1, ord_status=status)


def test_working_and_terminal_statuses_are_one_disjoint_table() -> None:
    assert not enums.WORKING_ORD_STATUSES & enums.TERMINAL_ORD_STATUSES
    assert {
        convert.order_status(s.value) for s in enums.WORKING_ORD_STATUSES
    } == convert.WORKING_STATUSES
    for status in enums.OrdStatus:
        order = _order(status.value.upper())  # case-insensitive, like every enum lookup
        assert loaders.is_terminal(order) == (status in enums.TERMINAL_ORD_STATUSES)
        working = convert.order_status(status.value) in convert.WORKING_STATUSES
        assert working == (status in enums.WORKING_ORD_STATUSES)
    assert not loaders.is_terminal(_order("SomethingNew"))
