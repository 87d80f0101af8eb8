"""Orders through the API and the control: fills move positions and cash; flat stays listed."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest

from tests.sim.helpers import get, post
from trading_gateway.simulator import Simulator

Token = dict[str, Any]


async def _position(
    http: aiohttp.ClientSession, sim: Simulator, token: Token, account_id: int, contract_id: int
) -> dict[str, Any] | None:
    positions = (await get(http, sim, "position/deps", token, masterid=account_id))[1]
    found = [p for p in positions if p["contractId"] == contract_id]
    return found[0] if found else None


async def _cash(
    http: aiohttp.ClientSession, sim: Simulator, token: Token, account_id: int
) -> dict[str, Any]:
    rows = (await get(http, sim, "cashBalance/deps", token, masterid=account_id))[1]
    return dict(rows[0])


async def test_market_order_fills_and_moves_the_position(
    http: aiohttp.ClientSession, sim: Simulator, token: Token
) -> None:
    account_id = sim.control.account_ids()[0]
    contract = next(c for c in sim.control.contracts() if c["name"] == "NQZ6")
    before = await _position(http, sim, token, account_id, contract["id"])
    body = {
        "accountSpec": f"DEMO{account_id}",
        "accountId": account_id,
        "action": "Buy",
        "symbol": "NQZ6",
        "orderQty": 2,
        "orderType": "Market",
        "isAutomated": True,
    }
    status, result = await post(http, sim, "order/placeorder", token, body)
    assert status == 200 and set(result) == {"orderId"}
    order = (await get(http, sim, "order/item", token, id=result["orderId"]))[1]
    assert order["ordStatus"] == "Filled" and order["contractId"] == contract["id"]
    fills = (await get(http, sim, "fill/deps", token, masterid=order["id"]))[1]
    assert len(fills) == 1 and fills[0]["qty"] == 2 and fills[0]["action"] == "Buy"
    offer = contract["price"] + contract["tickSize"]
    assert fills[0]["price"] == offer
    after = await _position(http, sim, token, account_id, contract["id"])
    assert after is not None
    prior_bought = before["bought"] if before else 0
    prior_net = before["netPos"] if before else 0
    assert after["bought"] == prior_bought + 2
    assert after["netPos"] == prior_net + 2
    versions = (await get(http, sim, "orderVersion/deps", token, masterid=order["id"]))[1]
    assert versions[0]["orderQty"] == 2 and versions[0]["orderType"] == "Market"


async def test_limit_order_works_then_cancels(
    http: aiohttp.ClientSession, sim: Simulator, token: Token
) -> None:
    account_id = sim.control.account_ids()[1]
    price = sim.control.price("ESZ6") - 20
    body = {
        "accountId": account_id,
        "action": "Buy",
        "symbol": "ESZ6",
        "orderQty": 1,
        "orderType": "Limit",
        "price": price,
    }
    order_id = (await post(http, sim, "order/placeorder", token, body))[1]["orderId"]
    order = (await get(http, sim, "order/item", token, id=order_id))[1]
    assert order["ordStatus"] == "Working"
    version = (await get(http, sim, "orderVersion/deps", token, masterid=order_id))[1][0]
    assert version["price"] == price
    status, result = await post(http, sim, "order/cancelorder", token, {"orderId": order_id})
    assert status == 200 and set(result) == {"commandId"}
    assert (await get(http, sim, "order/item", token, id=order_id))[1]["ordStatus"] == "Canceled"
    commands = (await get(http, sim, "command/deps", token, masterid=order_id))[1]
    assert [c["commandType"] for c in commands] == ["New", "Cancel"]
    status, again = await post(http, sim, "order/cancelorder", token, {"orderId": order_id})
    assert status == 200 and again["failureReason"] == "TooLate"
    assert (await post(http, sim, "order/cancelorder", token, {"orderId": 1}))[0] == 404


async def test_place_order_rejections(
    http: aiohttp.ClientSession, sim: Simulator, token: Token
) -> None:
    account_id = sim.control.account_ids()[0]
    base: dict[str, Any] = {"accountId": account_id, "action": "Buy", "orderQty": 1}
    cases: list[tuple[dict[str, Any], str]] = [
        ({"symbol": "XXZ9", "orderType": "Market"}, "InvalidContract"),
        ({"symbol": "ESZ6", "orderType": "Limit", "price": 6000.1}, "InvalidPrice"),
        ({"symbol": "ESZ6", "orderType": "Limit"}, "InvalidPrice"),
        ({"symbol": "ESZ6", "orderType": "TrailingStop"}, "Unsupported"),
    ]
    for extra, reason in cases:
        status, result = await post(http, sim, "order/placeorder", token, {**base, **extra})
        assert status == 200 and result["failureReason"] == reason, (extra, result)
    missing = {"accountId": account_id, "action": "Buy", "symbol": "ESZ6"}
    assert (await post(http, sim, "order/placeorder", token, missing))[0] == 400
    body = {**base, "accountId": 1, "symbol": "ESZ6", "orderType": "Market"}
    assert (await post(http, sim, "order/placeorder", token, body))[1]["failureReason"] == (
        "Unauthorized"
    )


async def test_round_trip_realizes_pnl_and_keeps_the_flat_position(
    http: aiohttp.ClientSession, sim: Simulator, token: Token
) -> None:
    account_id = sim.control.account_ids()[2]
    contract = next(c for c in sim.control.contracts() if c["name"] == "CLZ6")
    cash_before = await _cash(http, sim, token, account_id)
    existing = await _position(http, sim, token, account_id, contract["id"])
    start_net = existing["netPos"] if existing else 0
    if start_net:  # flatten first, so the round trip starts flat
        side = "Sell" if start_net > 0 else "Buy"
        sim.control.place_order(account_id, "CLZ6", side, abs(start_net))
        cash_before = await _cash(http, sim, token, account_id)
    entry = sim.control.place_order(account_id, "CLZ6", "Buy", 3, price=contract["price"])
    sim.control.fill_order(entry, price=contract["price"])
    exit_price = round(contract["price"] + 0.5, 2)
    sell = sim.control.place_order(account_id, "CLZ6", "Sell", 3, price=exit_price + 1)
    sim.control.fill_order(sell, price=exit_price)
    flat = await _position(http, sim, token, account_id, contract["id"])
    assert flat is not None and flat["netPos"] == 0  # kept, not deleted
    assert "netPrice" not in flat
    cash_after = await _cash(http, sim, token, account_id)
    realized = 0.5 * 3 * 1000
    assert cash_after["realizedPnL"] - cash_before["realizedPnL"] == pytest.approx(realized)
    assert cash_after["amount"] - cash_before["amount"] == pytest.approx(realized)


async def test_partial_fill_stays_working(
    http: aiohttp.ClientSession, sim: Simulator, token: Token
) -> None:
    account_id = sim.control.account_ids()[3]
    price = sim.control.price("MESZ6") - 5
    order_id = sim.control.place_order(account_id, "MESZ6", "Buy", 5, price=price)
    sim.control.fill_order(order_id, qty=2)
    order = (await get(http, sim, "order/item", token, id=order_id))[1]
    assert order["ordStatus"] == "Working"
    reports = (await get(http, sim, "executionReport/list", token))[1]
    trade = [r for r in reports if r["orderId"] == order_id and r["execType"] == "Trade"]
    assert trade[-1]["cumQty"] == 2 and trade[-1]["ordStatus"] == "Working"
    sim.control.fill_order(order_id)
    order = (await get(http, sim, "order/item", token, id=order_id))[1]
    assert order["ordStatus"] == "Filled"
    fills = (await get(http, sim, "fill/deps", token, masterid=order_id))[1]
    assert [f["qty"] for f in fills] == [2, 3]


async def test_price_moves_fill_resting_orders(
    http: aiohttp.ClientSession, sim: Simulator, token: Token
) -> None:
    account_id = sim.control.account_ids()[0]
    last = sim.control.price("GCZ6")
    buy = sim.control.place_order(account_id, "GCZ6", "Buy", 1, price=round(last - 1.0, 1))
    sell_stop = sim.control.place_order(
        account_id, "GCZ6", "Sell", 1, order_type="Stop", stop_price=round(last - 2.0, 1)
    )
    assert sim.control.move_price("GCZ6", round(last - 0.5, 1)) == round(last - 0.5, 1)
    assert (await get(http, sim, "order/item", token, id=buy))[1]["ordStatus"] == "Working"
    sim.control.move_price("GCZ6", round(last - 1.0, 1))
    assert (await get(http, sim, "order/item", token, id=buy))[1]["ordStatus"] == "Filled"
    fill = (await get(http, sim, "fill/deps", token, masterid=buy))[1][0]
    assert fill["price"] == round(last - 1.0, 1)
    assert (await get(http, sim, "order/item", token, id=sell_stop))[1]["ordStatus"] == "Working"
    sim.control.move_price("GCZ6", round(last - 2.5, 1))
    assert (await get(http, sim, "order/item", token, id=sell_stop))[1]["ordStatus"] == "Filled"
