"""The trading engine: orders are placed, worked, filled and cancelled; positions, cash and
margins follow. Every operation is synchronous: it changes the store and publishes the change
in the same step, so REST and the stream never disagree.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from fractions import Fraction
from typing import Any

from trading_gateway.simulator.catalog import USD_CURRENCY_ID, ContractSpec
from trading_gateway.simulator.clock import iso
from trading_gateway.simulator.events import CREATED, DELETED, UPDATED, ChangeBatch
from trading_gateway.simulator.figures import AccountFigures, account_figures
from trading_gateway.simulator.market import Market
from trading_gateway.simulator.orders import (
    ACTIONS,
    ALL_ORDER_TYPES,
    ORDER_TYPES,
    TIME_IN_FORCE,
    EngineError,
    OrderState,
    fill_entity,
)
from trading_gateway.simulator.positions import CashState, PositionState, money_out
from trading_gateway.simulator.store import Entity, Store

logger = logging.getLogger(__name__)

POSITION_ID_BASE = 70_000_000
ORDER_ID_BASE = 8_800_000_000
COMMAND_ID_BASE = 8_900_000_000
FILL_ID_BASE = 9_100_000_000
REPORT_ID_BASE = 9_300_000_000

Sink = Callable[[ChangeBatch], None]


class TradingEngine:
    """Owns positions, cash and orders; writes entities to the store and batches to the sink."""

    def __init__(self, store: Store, market: Market) -> None:
        self.store = store
        self.market = market
        self.sink: Sink | None = None
        self._batch: ChangeBatch | None = None
        self._next = {
            "position": POSITION_ID_BASE,
            "order": ORDER_ID_BASE,
            "command": COMMAND_ID_BASE,
            "fill": FILL_ID_BASE,
            "report": REPORT_ID_BASE,
        }
        self.positions: dict[int, dict[int, PositionState]] = {}
        self.cash: dict[int, CashState] = {}
        self.orders: dict[int, OrderState] = {}
        self.working: dict[int, dict[int, None]] = {}
        self.working_by_account: dict[int, dict[int, None]] = {}

    # ---- plumbing -------------------------------------------------------------------------

    def _new_id(self, kind: str) -> int:
        self._next[kind] += 1
        return self._next[kind]

    @contextmanager
    def changes(self) -> Iterator[ChangeBatch]:
        """One step: everything written inside is published together when the step ends."""
        if self._batch is not None:
            yield self._batch
            return
        if self.sink is None:  # building the initial world: nobody to tell
            yield ChangeBatch()
            return
        batch = self._batch = ChangeBatch()
        try:
            yield batch
        finally:
            self._batch = None
            if batch and self.sink is not None:
                self.sink(batch)

    def put(self, entity_type: str, entity: Entity, account_id: int | None) -> None:
        created = self.store.table(entity_type).put(entity)
        if self._batch is not None:
            self._batch.add(entity_type, CREATED if created else UPDATED, entity, account_id)

    def delete(self, entity_type: str, entity_id: int) -> Entity:
        """Remove an entity and publish Deleted. Working orders and open positions are refused."""
        table = self.store.table(entity_type)
        entity = table.get(entity_id)
        if entity is None:
            raise KeyError(f"no {entity_type} {entity_id}")
        order = self.orders.get(entity_id) if entity_type == "order" else None
        if order is not None and order.status == "Working":
            raise ValueError("cannot delete a working order")
        if entity_type == "position" and entity.get("netPos", 0) != 0:
            raise ValueError("cannot delete an open position")
        if entity_type in ("account", "cashBalance", "user"):
            raise ValueError(f"cannot delete a {entity_type}")
        account = self.store.account_of(entity_type, entity)
        with self.changes() as batch:
            table.remove(entity_id)
            batch.add(entity_type, DELETED, entity, account)
        if entity_type == "order":
            self.orders.pop(entity_id, None)
        if entity_type == "position":
            for book in self.positions.values():
                for cid, state in list(book.items()):
                    if state.position_id == entity_id:
                        del book[cid]
        return entity

    # ---- accounts ---------------------------------------------------------------------------

    def open_account(self, account: Entity, cash_id: int, amount: Fraction, ts: float) -> None:
        account_id: int = account["id"]
        self.put("account", account, account_id)
        self.positions[account_id] = {}
        self.working_by_account[account_id] = {}
        state = CashState(cash_id, account_id, amount, updated=ts)
        self.cash[account_id] = state
        self.put("cashBalance", state.entity(USD_CURRENCY_ID), account_id)
        self.put(
            "accountRiskStatus",
            {
                "id": account_id,
                "adminAction": "Normal",
                "adminTimestamp": iso(ts),
                "userTriggeredLiqOnly": False,
            },
            account_id,
        )
        self.put(
            "userAccountAutoLiq",
            {
                "id": account_id,
                "changesLocked": False,
                "marginPercentageAlert": 80.0,
                "dailyLossAutoLiq": money_out(amount / 10),
                "trailingMaxDrawdown": money_out(amount / 20),
            },
            account_id,
        )
        self._put_margin(account_id, ts)

    def set_account_active(self, account_id: int, active: bool) -> None:
        account = self.store.accounts.get(account_id)
        if account is None:
            raise KeyError(account_id)
        with self.changes():
            self.put("account", {**account, "active": active}, account_id)

    def seed_position(
        self, account_id: int, contract: ContractSpec, prev_pos: int, prev_price: Fraction
    ) -> None:
        """A position carried over from the previous trade date (prevPos, prevPrice)."""
        state = self._position(account_id, contract)
        state.carry(prev_pos, prev_price, time.time())
        with self.changes():
            self.put("position", state.entity(), account_id)
            self._put_margin(account_id, state.updated)

    def _position(self, account_id: int, contract: ContractSpec) -> PositionState:
        book = self.positions[account_id]
        state = book.get(contract.contract_id)
        if state is None:
            state = PositionState(
                self._new_id("position"),
                account_id,
                contract.contract_id,
                contract.value_per_point,
            )
            book[contract.contract_id] = state
        return state

    def _put_margin(self, account_id: int, ts: float) -> None:
        initial, maintenance = self.margins(account_id)
        entity = {
            "id": account_id,
            "timestamp": iso(ts),
            "riskTimePeriodId": 1,
            "initialMargin": float(initial),
            "maintenanceMargin": float(maintenance),
            "autoLiqLevel": float(maintenance),
            "liqOnlyLevel": float(initial),
            "totalUsedMargin": float(initial),
            "fullInitialMargin": float(initial),
        }
        old = self.store.table("marginSnapshot").get(account_id)
        if old is None or any(old[k] != v for k, v in entity.items() if k != "timestamp"):
            self.put("marginSnapshot", entity, account_id)

    # ---- orders -----------------------------------------------------------------------------

    def place_order(
        self,
        account_id: int,
        contract: ContractSpec,
        action: str,
        qty: int,
        order_type: str,
        price: Fraction | None = None,
        stop_price: Fraction | None = None,
        time_in_force: str = "Day",
        text: str | None = None,
        is_automated: bool = False,
    ) -> int:
        """Place an order; it fills at once when marketable, else it works. Returns the order id."""
        self._check_order(account_id, contract, action, qty, order_type, price, stop_price)
        if time_in_force not in TIME_IN_FORCE:
            raise EngineError("UnknownReason", f"Unknown timeInForce {time_in_force}")
        ts = time.time()
        order = OrderState(
            order_id=self._new_id("order"),
            account_id=account_id,
            contract_id=contract.contract_id,
            contract_name=contract.name,
            action=action,
            order_type=order_type,
            qty=qty,
            price=price,
            stop_price=stop_price,
            time_in_force=time_in_force,
            version_id=self._new_id("command"),
            created=ts,
            is_automated=is_automated,
            text=text,
        )
        self.orders[order.order_id] = order
        with self.changes():
            self._put_order(order)
            self.put("orderVersion", order.version_entity(), account_id)
            self.put("command", order.command_entity(order.version_id, "New", ts), account_id)
            self._report(order, order.version_id, "New", ts)
            self.working.setdefault(contract.contract_id, {})[order.order_id] = None
            self.working_by_account[account_id][order.order_id] = None
        # As on the exchange: the order is accepted (one batch), then trades (the next one).
        fill_price = self._marketable_price(order)
        if fill_price is not None:
            self.fill(order.order_id, order.remaining, fill_price)
        return order.order_id

    def _check_order(
        self,
        account_id: int,
        contract: ContractSpec,
        action: str,
        qty: int,
        order_type: str,
        price: Fraction | None,
        stop_price: Fraction | None,
    ) -> None:
        if account_id not in self.positions:
            raise EngineError("Unauthorized", f"Unknown account {account_id}")
        if action not in ACTIONS:
            raise EngineError("UnknownReason", f"Unknown action {action}")
        if order_type not in ALL_ORDER_TYPES:
            raise EngineError("UnknownReason", f"Unknown orderType {order_type}")
        if order_type not in ORDER_TYPES:
            raise EngineError("Unsupported", f"{order_type} orders are not simulated")
        if qty <= 0:
            raise EngineError("MaxOrderQtyIsNotSpecified", "orderQty must be positive")
        if order_type in ("Limit", "StopLimit") and price is None:
            raise EngineError("InvalidPrice", f"{order_type} order needs a price")
        if order_type in ("Stop", "StopLimit") and stop_price is None:
            raise EngineError("InvalidPrice", f"{order_type} order needs a stopPrice")
        for value in (price, stop_price):
            if value is not None and (
                value <= 0 or not self.market.on_grid(contract.contract_id, value)
            ):
                raise EngineError("InvalidPrice", f"Price {float(value)} is off the tick grid")

    def _marketable_price(self, order: OrderState) -> Fraction | None:
        """The fill price if the order trades against the current book, else None."""
        cid = order.contract_id
        touch = self.market.offer(cid) if order.buy else self.market.bid(cid)
        last = self.market.last(cid)
        if order.order_type == "Market":
            return touch
        if order.order_type in ("Stop", "StopLimit"):
            assert order.stop_price is not None
            triggered = last >= order.stop_price if order.buy else last <= order.stop_price
            if not triggered:
                return None
            if order.order_type == "Stop":
                return touch
        assert order.price is not None
        if order.buy:
            return touch if touch <= order.price else None
        return touch if touch >= order.price else None

    def fill(self, order_id: int, qty: int | None = None, price: Fraction | None = None) -> int:
        """Fill a working order (all by default) at `price` (default: its limit, or the touch)."""
        order = self._working_order(order_id)
        qty = order.remaining if qty is None else qty
        if qty <= 0 or qty > order.remaining:
            raise EngineError("UnknownReason", f"fill qty must be within 1..{order.remaining}")
        if price is None:
            price = order.price if order.price is not None else self._touch(order)
        if not self.market.on_grid(order.contract_id, price) or price <= 0:
            raise EngineError("InvalidPrice", f"Price {float(price)} is off the tick grid")
        ts = time.time()
        contract = self.market.contracts[order.contract_id]
        order.filled += qty
        order.filled_value += price * qty
        order.filled_value_f += float(price) * qty
        if order.remaining == 0:
            order.status = "Filled"
            self._unwork(order)
        fill_id = self._new_id("fill")
        account_id = order.account_id
        with self.changes():
            self.put("fill", fill_entity(fill_id, order, qty, price, ts), account_id)
            self._report(order, order.version_id, "Trade", ts, (qty, price))
            self._put_order(order)
            position = self._position(account_id, contract)
            realized, realized_f = position.apply_fill(order.buy, qty, price, ts)
            self.put("position", position.entity(), account_id)
            if realized or realized_f:
                cash = self.cash[account_id]
                cash.book(realized, realized_f, ts)
                self.put("cashBalance", cash.entity(USD_CURRENCY_ID), account_id)
            self._put_margin(account_id, ts)
        return fill_id

    def cancel(self, order_id: int) -> int:
        """Cancel a working order; returns the Cancel command's id."""
        order = self._working_order(order_id)
        ts = time.time()
        order.status = "Canceled"
        self._unwork(order)
        command_id = self._new_id("command")
        with self.changes():
            self.put("command", order.command_entity(command_id, "Cancel", ts), order.account_id)
            self._report(order, command_id, "Canceled", ts)
            self._put_order(order)
        return command_id

    def _touch(self, order: OrderState) -> Fraction:
        cid = order.contract_id
        return self.market.offer(cid) if order.buy else self.market.bid(cid)

    def _working_order(self, order_id: int) -> OrderState:
        order = self.orders.get(order_id)
        if order is None:
            raise KeyError(order_id)
        if order.status != "Working":
            raise EngineError("TooLate", f"Order {order_id} is {order.status}")
        return order

    def _unwork(self, order: OrderState) -> None:
        self.working.get(order.contract_id, {}).pop(order.order_id, None)
        self.working_by_account[order.account_id].pop(order.order_id, None)

    def _put_order(self, order: OrderState) -> None:
        self.put("order", order.order_entity(), order.account_id)

    def _report(
        self,
        order: OrderState,
        command_id: int,
        exec_type: str,
        ts: float,
        last: tuple[int, Fraction] | None = None,
    ) -> None:
        report = order.report_entity(self._new_id("report"), command_id, exec_type, ts, last)
        self.put("executionReport", report, order.account_id)

    # ---- market -----------------------------------------------------------------------------

    def on_prices(self, contract_ids: list[int]) -> int:
        """Fill the working orders that the last trade reached; returns how many filled."""
        filled = 0
        with self.changes():
            for cid in contract_ids:
                last = self.market.last(cid)
                for order_id in list(self.working.get(cid, ())):
                    order = self.orders[order_id]
                    price = self._reached_price(order, last)
                    if price is not None:
                        self.fill(order_id, order.remaining, price)
                        filled += 1
        return filled

    def _reached_price(self, order: OrderState, last: Fraction) -> Fraction | None:
        """The fill price when a trade at `last` reaches a resting order, else None.

        A limit fills at its price once the market trades at or through it; a stop triggers
        at its stop price and fills at the touch (a stop-limit at its limit, when reached).
        """
        if order.order_type in ("Stop", "StopLimit"):
            assert order.stop_price is not None
            triggered = last >= order.stop_price if order.buy else last <= order.stop_price
            if not triggered:
                return None
            if order.order_type == "Stop":
                return self._touch(order)
        if order.price is None:
            return self._touch(order)
        reached = last <= order.price if order.buy else last >= order.price
        return order.price if reached else None

    # ---- reads ------------------------------------------------------------------------------

    def margins(self, account_id: int) -> tuple[int, int]:
        """Initial and maintenance margin: per-contract figures times |netPos|, summed."""
        initial = maintenance = 0
        for cid, state in self.positions[account_id].items():
            spec = self.market.contracts[cid].spec
            initial += abs(state.net) * spec.initial_margin
            maintenance += abs(state.net) * spec.maintenance_margin
        return initial, maintenance

    def figures(self, account_id: int) -> AccountFigures:
        """The account's Tradovate figures, exact and as the double-based engine reports them.

        Open PnL is marked at each contract's mid price (``Market.mark``), not at the last
        trade: see docs/SIMULATOR.md, "Tradovate's own figures".
        """
        return account_figures(
            self.cash[account_id],
            self.positions[account_id].values(),
            self.market.mark,
            self.margins(account_id),
        )

    def cash_snapshot(self, account_id: int) -> dict[str, Any]:
        """CashBalanceSnapshot: the engine's figures as doubles, as Tradovate sends them."""
        return self.figures(account_id).reported()
