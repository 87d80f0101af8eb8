"""Order state and the entities it produces: order, orderVersion, command, executionReport, fill."""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

from trading_gateway.simulator.clock import iso, trade_date
from trading_gateway.simulator.positions import price_out

ORDER_TYPES = frozenset({"Market", "Limit", "Stop", "StopLimit"})
ALL_ORDER_TYPES = ORDER_TYPES | {
    "MIT",
    "QTS",
    "TrailingStop",
    "TrailingStopLimit",
    "LimitIfTouched",
}
TIME_IN_FORCE = frozenset({"Day", "FOK", "GTC", "GTD", "IOC"})
ACTIONS = frozenset({"Buy", "Sell"})


class EngineError(Exception):
    """A business rejection: failureReason (Tradovate's enum) plus text."""

    def __init__(self, reason: str, text: str) -> None:
        super().__init__(text)
        self.reason = reason
        self.text = text


@dataclass(slots=True)
class OrderState:
    order_id: int
    account_id: int
    contract_id: int
    contract_name: str
    action: str
    order_type: str
    qty: int
    price: Fraction | None
    stop_price: Fraction | None
    time_in_force: str
    version_id: int
    created: float
    is_automated: bool = False
    text: str | None = None
    status: str = "Working"
    filled: int = 0
    filled_value: Fraction = field(default_factory=Fraction)
    filled_value_f: float = 0.0  # the same sum in doubles: avgPx is computed from it

    @property
    def buy(self) -> bool:
        return self.action == "Buy"

    @property
    def remaining(self) -> int:
        return self.qty - self.filled

    def order_entity(self) -> dict[str, Any]:
        return {
            "id": self.order_id,
            "accountId": self.account_id,
            "contractId": self.contract_id,
            "timestamp": iso(self.created),
            "action": self.action,
            "ordStatus": self.status,
            "executionProviderId": 1,
            "archived": False,
            "external": False,
            "admin": False,
        }

    def version_entity(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.version_id,
            "orderId": self.order_id,
            "orderQty": self.qty,
            "orderType": self.order_type,
            "timeInForce": self.time_in_force,
        }
        if self.price is not None:
            out["price"] = price_out(self.price)
        if self.stop_price is not None:
            out["stopPrice"] = price_out(self.stop_price)
        if self.text is not None:
            out["text"] = self.text
        return out

    def command_entity(self, command_id: int, command_type: str, ts: float) -> dict[str, Any]:
        return {
            "id": command_id,
            "orderId": self.order_id,
            "timestamp": iso(ts),
            "clOrdId": f"sim-{command_id}",
            "commandType": command_type,
            "commandStatus": "AtExecution",
            "isAutomated": self.is_automated,
        }

    def report_entity(
        self,
        report_id: int,
        command_id: int,
        exec_type: str,
        ts: float,
        last: tuple[int, Fraction] | None = None,
    ) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": report_id,
            "commandId": command_id,
            "name": self.contract_name,
            "accountId": self.account_id,
            "contractId": self.contract_id,
            "timestamp": iso(ts),
            "tradeDate": trade_date(ts),
            "orderId": self.order_id,
            "execType": exec_type,
            "ordStatus": self.status,
            "action": self.action,
            "cumQty": self.filled,
            "exchangeOrderId": f"X{self.order_id}",
        }
        if self.filled:
            out["avgPx"] = self.filled_value_f / self.filled
        if last is not None:
            out["lastQty"] = last[0]
            out["lastPx"] = price_out(last[1])
        return out


def fill_entity(
    fill_id: int, order: OrderState, qty: int, price: Fraction, ts: float
) -> dict[str, Any]:
    return {
        "id": fill_id,
        "orderId": order.order_id,
        "contractId": order.contract_id,
        "timestamp": iso(ts),
        "tradeDate": trade_date(ts),
        "action": order.action,
        "qty": qty,
        "price": price_out(price),
        "active": True,
        "finallyPaired": 0,
    }
