"""order/placeorder, order/cancelorder and cashBalance/getcashbalancesnapshot."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from trading_gateway.simulator.api import NO_ACCOUNTS, BadRequest, Call, NotFound, Reply, Route
from trading_gateway.simulator.core import SimCore
from trading_gateway.simulator.entity_routes import parse_int
from trading_gateway.simulator.orders import EngineError


def _body(call: Call) -> dict[str, Any]:
    if not isinstance(call.body, dict):
        raise BadRequest("Expected a JSON object body")
    return call.body


def parse_price(value: Any, name: str) -> Fraction | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise BadRequest(f"Invalid {name}")
    try:
        # repr of a float is its shortest decimal, so 1.08005 stays exactly 1.08005.
        return Fraction(repr(value) if isinstance(value, float) else str(value))
    except (ValueError, ZeroDivisionError) as exc:
        raise BadRequest(f"Invalid {name}") from exc


@dataclass(slots=True, frozen=True)
class PlaceParams:
    account_id: int | None
    symbol: str | int
    action: str
    qty: int
    order_type: str
    price: Fraction | None
    stop_price: Fraction | None
    time_in_force: str
    is_automated: bool
    text: str | None


def _parse_place(core: SimCore, call: Call) -> PlaceParams:
    body = _body(call)
    account_id: int | None = None
    if body.get("accountId") is not None:
        account_id = parse_int(body["accountId"], "accountId")
    elif isinstance(body.get("accountSpec"), str):
        account = core.store.accounts.find(body["accountSpec"])
        account_id = None if account is None else int(account["id"])
    else:
        raise BadRequest("Missing accountId")
    for required in ("action", "symbol", "orderQty", "orderType"):
        if body.get(required) is None:
            raise BadRequest(f"Missing {required}")
    symbol = body["symbol"]
    if not isinstance(symbol, str | int) or isinstance(symbol, bool):
        raise BadRequest("Invalid symbol")
    for name in ("action", "orderType"):
        if not isinstance(body[name], str):
            raise BadRequest(f"Invalid {name}")
    text = body.get("text")
    return PlaceParams(
        account_id=account_id,
        symbol=symbol,
        action=body["action"],
        qty=parse_int(body["orderQty"], "orderQty"),
        order_type=body["orderType"],
        price=parse_price(body.get("price"), "price"),
        stop_price=parse_price(body.get("stopPrice"), "stopPrice"),
        time_in_force=str(body.get("timeInForce") or "Day"),
        is_automated=bool(body.get("isAutomated", False)),
        text=text if isinstance(text, str) else None,
    )


def _place_accounts(core: SimCore, params: PlaceParams) -> Sequence[int]:
    return NO_ACCOUNTS if params.account_id is None else [params.account_id]


def _run_place(core: SimCore, call: Call, params: PlaceParams) -> Reply:
    if (
        params.account_id is None
        or core.store.accounts.get(params.account_id) is None
        or not core.sees(call.session, params.account_id)
    ):
        return Reply(200, {"failureReason": "Unauthorized", "failureText": "Unknown account"})
    contract = core.market.resolve(params.symbol)
    if contract is None:
        return Reply(
            200,
            {"failureReason": "InvalidContract", "failureText": f"Unknown symbol {params.symbol}"},
        )
    try:
        order_id = core.engine.place_order(
            params.account_id,
            contract,
            params.action,
            params.qty,
            params.order_type,
            price=params.price,
            stop_price=params.stop_price,
            time_in_force=params.time_in_force,
            text=params.text,
            is_automated=params.is_automated,
        )
    except EngineError as exc:
        return Reply(200, {"failureReason": exc.reason, "failureText": exc.text})
    return Reply(200, {"orderId": order_id})


def _parse_order_id(core: SimCore, call: Call) -> int:
    return parse_int(_body(call).get("orderId"), "orderId")


def _order_accounts(core: SimCore, order_id: int) -> Sequence[int]:
    account = core.store.account_of_order(order_id)
    return NO_ACCOUNTS if account is None else [account]


def _run_cancel(core: SimCore, call: Call, order_id: int) -> Reply:
    if not core.sees(call.session, core.store.account_of_order(order_id)):
        raise NotFound(f"order with id {order_id} could not be found")
    try:
        command_id = core.engine.cancel(order_id)
    except KeyError as exc:
        raise NotFound(f"order with id {order_id} could not be found") from exc
    except EngineError as exc:
        return Reply(200, {"failureReason": exc.reason, "failureText": exc.text})
    return Reply(200, {"commandId": command_id})


def _parse_account_id(core: SimCore, call: Call) -> int:
    return parse_int(_body(call).get("accountId"), "accountId")


def _run_snapshot(core: SimCore, call: Call, account_id: int) -> Reply:
    if account_id not in core.engine.cash or not core.sees(call.session, account_id):
        return Reply(200, {"errorText": f"Account {account_id} not found"})
    return Reply(200, core.engine.cash_snapshot(account_id))


def _account_list(core: SimCore, account_id: int) -> Sequence[int]:
    return [account_id]


def trading_routes() -> dict[str, Route]:
    return {
        "order/placeorder": Route("POST", _run_place, _parse_place, _place_accounts),
        "order/cancelorder": Route("POST", _run_cancel, _parse_order_id, _order_accounts),
        "cashbalance/getcashbalancesnapshot": Route(
            "POST", _run_snapshot, _parse_account_id, _account_list
        ),
    }
