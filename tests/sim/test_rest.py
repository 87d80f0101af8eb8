"""REST entities: every operation, the reference's field shapes, case-insensitive paths, 404s."""

from __future__ import annotations

import re
from fractions import Fraction
from typing import Any

import aiohttp
import pytest

from tests.sim.helpers import ISO_MS, ORD_STATUS, ORDER_TYPES, REQUIRED, bearer, get, post
from trading_gateway.simulator import Simulator

Token = dict[str, Any]
CONTRACT_NAME = re.compile(r"^[A-Z0-9]{1,3}[FGHJKMNQUVXZ]\d$")


async def _accounts(http: aiohttp.ClientSession, sim: Simulator, token: Token) -> list[Any]:
    status, accounts = await get(http, sim, "account/list", token)
    assert status == 200
    return list(accounts)


def _check(entity_type: str, entity: dict[str, Any]) -> None:
    missing = REQUIRED[entity_type] - entity.keys()
    assert not missing, f"{entity_type} lacks {missing}"
    for key in ("timestamp", "adminTimestamp", "expirationDate"):
        if key in entity:
            assert ISO_MS.match(entity[key]), entity[key]
    if "tradeDate" in entity:
        assert set(entity["tradeDate"]) == {"year", "month", "day"}


async def test_account_list_item_items_deps(
    http: aiohttp.ClientSession, sim: Simulator, token: Token
) -> None:
    accounts = await _accounts(http, sim, token)
    assert len(accounts) == 4
    for account in accounts:
        _check("account", account)
        assert account["accountType"] == "Customer" and account["active"] is True
        assert account["marginAccountType"] in ("Hedger", "Speculator")
        assert account["legalStatus"] == "Individual"
    first = accounts[0]
    assert (await get(http, sim, "account/item", token, id=first["id"]))[1] == first
    ids = f"{accounts[2]['id']},{accounts[0]['id']}"
    status, items = await get(http, sim, "account/items", token, ids=ids)
    assert status == 200 and [a["id"] for a in items] == [accounts[2]["id"], accounts[0]["id"]]
    status, deps = await get(http, sim, "account/deps", token, masterid=token["userId"])
    assert status == 200 and deps == accounts
    assert (await get(http, sim, "account/find", token, name=first["name"]))[1] == first


async def test_positions_orders_versions_fills(
    http: aiohttp.ClientSession, sim: Simulator, token: Token
) -> None:
    accounts = await _accounts(http, sim, token)
    ids = ",".join(str(a["id"]) for a in accounts)
    status, positions = await get(http, sim, "position/ldeps", token, masterids=ids)
    assert status == 200 and len(positions) >= 2 * len(accounts)
    for position in positions:
        _check("position", position)
        assert position["netPos"] == position["prevPos"] + position["bought"] - position["sold"]
    one = positions[0]
    assert (await get(http, sim, "position/item", token, id=one["id"]))[1] == one
    deps = (await get(http, sim, "position/deps", token, masterid=one["accountId"]))[1]
    assert one in deps and all(p["accountId"] == one["accountId"] for p in deps)
    assert (await get(http, sim, "position/list", token))[1] == positions

    orders = (await get(http, sim, "order/ldeps", token, masterids=ids))[1]
    statuses = {o["ordStatus"] for o in orders}
    assert {"Working", "Filled"} <= statuses <= ORD_STATUS
    for order in orders:
        _check("order", order)
        assert order["action"] in ("Buy", "Sell")
        assert not {"orderQty", "qty", "price"} & order.keys()  # they live on orderVersion
    assert (await get(http, sim, "order/item", token, id=orders[0]["id"]))[1] == orders[0]
    assert (await get(http, sim, "order/list", token))[1] == orders

    order_ids = ",".join(str(o["id"]) for o in orders)
    versions = (await get(http, sim, "orderVersion/ldeps", token, masterids=order_ids))[1]
    assert {v["orderId"] for v in versions} == {o["id"] for o in orders}
    for version in versions:
        _check("orderVersion", version)
        assert version["orderType"] in ORDER_TYPES
        assert version["timeInForce"] in ("Day", "FOK", "GTC", "GTD", "IOC")
    v0 = versions[0]
    assert (await get(http, sim, "orderVersion/deps", token, masterid=v0["orderId"]))[1] == [v0]
    assert (await get(http, sim, "orderVersion/item", token, id=v0["id"]))[1] == v0
    got = (await get(http, sim, "orderVersion/items", token, ids=v0["id"]))[1]
    assert got == [v0]

    fills = (await get(http, sim, "fill/ldeps", token, masterids=order_ids))[1]
    filled = {o["id"] for o in orders if o["ordStatus"] == "Filled"}
    assert {f["orderId"] for f in fills} == filled
    for fill in fills:
        _check("fill", fill)
        assert "accountId" not in fill
    assert (await get(http, sim, "fill/list", token))[1] == fills
    f0 = fills[0]
    assert f0 in (await get(http, sim, "fill/deps", token, masterid=f0["orderId"]))[1]


async def test_cash_margin_risk_and_snapshot(
    http: aiohttp.ClientSession, sim: Simulator, token: Token
) -> None:
    accounts = await _accounts(http, sim, token)
    ids = ",".join(str(a["id"]) for a in accounts)
    cash = (await get(http, sim, "cashBalance/ldeps", token, masterids=ids))[1]
    assert (await get(http, sim, "cashBalance/list", token))[1] == cash
    assert len(cash) == len(accounts)
    for row in cash:
        _check("cashBalance", row)
        assert row["currencyId"] == 1 and row["amount"] > 0
    account_id = accounts[0]["id"]
    assert (await get(http, sim, "cashBalance/deps", token, masterid=account_id))[1] == [cash[0]]

    margins = (await get(http, sim, "marginSnapshot/items", token, ids=ids))[1]
    assert [m["id"] for m in margins] == [a["id"] for a in accounts]  # id == accountId
    for margin in margins:
        _check("marginSnapshot", margin)
    item = (await get(http, sim, "marginSnapshot/item", token, id=account_id))[1]
    assert item == margins[0]
    assert (await get(http, sim, "marginSnapshot/deps", token, masterid=account_id))[1] == [item]
    assert len((await get(http, sim, "marginSnapshot/list", token))[1]) == 4

    risks = (await get(http, sim, "accountRiskStatus/ldeps", token, masterids=ids))[1]
    assert [r["id"] for r in risks] == [a["id"] for a in accounts]
    for risk in risks:
        _check("accountRiskStatus", risk)
        assert risk["adminAction"] == "Normal"
    status, one = await get(http, sim, "accountRiskStatus/item", token, id=account_id)
    assert status == 200 and one == risks[0]
    assert (await get(http, sim, "accountRiskStatus/list", token))[1] == risks

    status, snap = await post(
        http, sim, "cashBalance/getcashbalancesnapshot", token, {"accountId": account_id}
    )
    assert status == 200 and set(snap) == {*SNAPSHOT_KEYS}
    assert snap["totalCashValue"] == cash[0]["amount"]
    assert snap["realizedPnL"] == cash[0]["realizedPnL"]
    assert snap["netLiq"] == pytest.approx(snap["totalCashValue"] + snap["openPnL"], abs=0.011)
    assert snap["initialMargin"] == margins[0]["initialMargin"]


SNAPSHOT_KEYS = (
    "totalCashValue", "totalPnL", "initialMargin", "maintenanceMargin", "netLiq", "openPnL",
    "realizedPnL", "weekRealizedPnL",
)  # fmt: skip


async def test_open_pnl_follows_the_mark(
    http: aiohttp.ClientSession, sim: Simulator, token: Token
) -> None:
    accounts = await _accounts(http, sim, token)
    account_id = accounts[0]["id"]
    positions = (await get(http, sim, "position/deps", token, masterid=account_id))[1]
    open_positions = [p for p in positions if p["netPos"] != 0]
    contracts = {c["id"]: c for c in sim.control.contracts()}
    expected = Fraction(0)
    for p in open_positions:
        c = contracts[p["contractId"]]
        # Tradovate's own open PnL: marked at mid, (bid + offer) / 2, not at the last trade.
        mark = Fraction(repr(c["price"])) + Fraction(repr(c["tickSize"])) / 2
        assert c["mark"] == float(mark)
        entry = Fraction(repr(p["netPrice"]))
        expected += (mark - entry) * p["netPos"] * Fraction(repr(c["valuePerPoint"]))
    body = {"accountId": account_id}
    snap = (await post(http, sim, "cashBalance/getcashbalancesnapshot", token, body))[1]
    assert snap["openPnL"] == pytest.approx(float(expected), abs=0.011)
    moved = open_positions[0]
    contract = contracts[moved["contractId"]]
    sim.control.move_price(moved["contractId"], contract["price"] + 10 * contract["tickSize"])
    after = (await post(http, sim, "cashBalance/getcashbalancesnapshot", token, body))[1]
    gain = 10 * contract["tickSize"] * contract["valuePerPoint"] * moved["netPos"]
    assert after["openPnL"] - snap["openPnL"] == pytest.approx(gain, abs=0.011)


async def test_contracts_maturities_products(
    http: aiohttp.ClientSession, sim: Simulator, token: Token
) -> None:
    status, es = await get(http, sim, "contract/find", token, name="ESZ6")
    assert status == 200 and es["name"] == "ESZ6"
    _check("contract", es)
    assert (await get(http, sim, "contract/item", token, id=es["id"]))[1] == es
    maturity = (await get(http, sim, "contractMaturity/item", token, id=es["contractMaturityId"]))[
        1
    ]
    _check("contractMaturity", maturity)
    assert maturity["expirationMonth"] == 202612 and maturity["isFront"] is True
    product = (await get(http, sim, "product/item", token, id=maturity["productId"]))[1]
    _check("product", product)
    assert product["name"] == "ES" and product["valuePerPoint"] == 50.0
    assert product["tickSize"] == 0.25
    assert (await get(http, sim, "product/find", token, name="ES"))[1] == product
    products = (await get(http, sim, "product/items", token, ids=product["id"]))[1]
    assert products == [product]
    mats = (await get(http, sim, "contractMaturity/items", token, ids=maturity["id"]))[1]
    assert mats == [maturity]

    contracts = sim.control.contracts()
    ids = ",".join(str(c["id"]) for c in contracts)
    listed = (await get(http, sim, "contract/items", token, ids=ids))[1]
    assert len(listed) == len(contracts) >= 20
    roots = {c["product"] for c in contracts}
    assert {"ES", "NQ", "MES", "MNQ", "CL", "GC", "YM", "RTY", "ZN", "6E"} <= roots
    for c in listed:
        assert CONTRACT_NAME.match(c["name"]), c["name"]
    specs = {c["product"]: c for c in contracts if c["isFront"]}
    assert specs["NQ"]["valuePerPoint"] == 20.0 and specs["CL"]["tickSize"] == 0.01
    assert specs["ZN"]["tickSize"] == 0.015625 and specs["6E"]["valuePerPoint"] == 125000.0
    for c in contracts:
        ticks = Fraction(repr(c["price"])) / Fraction(repr(c["tickSize"]))
        assert ticks.denominator == 1, c  # on the tick grid
    suggest = (await get(http, sim, "contract/suggest", token, t="MES", l=5))[1]
    assert suggest and all(c["name"].startswith("MES") for c in suggest)


async def test_paths_are_case_insensitive(
    http: aiohttp.ClientSession, sim: Simulator, token: Token
) -> None:
    lower = (await get(http, sim, "position/list", token))[1]
    assert (await get(http, sim, "Position/List", token))[1] == lower
    assert (await get(http, sim, "POSITION/LIST", token))[1] == lower
    accounts = await _accounts(http, sim, token)
    mixed = (await get(http, sim, "position/LDeps", token, masterIds=accounts[0]["id"]))[1]
    assert mixed and all(p["accountId"] == accounts[0]["id"] for p in mixed)
    assert sim.control.counters()["calls"]["position/list"] == 3


async def test_missing_ids_unknown_paths_and_bad_parameters(
    http: aiohttp.ClientSession, sim: Simulator, token: Token
) -> None:
    for path in ("position/item", "order/item", "account/item", "contract/item", "fill/item"):
        status, body = await get(http, sim, path, token, id=1)
        assert status == 404 and "could not be found" in body
    assert (await get(http, sim, "contract/find", token, name="NOPE9"))[0] == 404
    assert (await get(http, sim, "bogus/list", token))[0] == 404
    assert (await get(http, sim, "position/frobnicate", token))[0] == 404
    assert (await get(http, sim, "position/find", token, name="x"))[0] == 404  # no name field
    assert (await get(http, sim, "position/item", token))[0] == 400
    assert (await get(http, sim, "position/item", token, id="abc"))[0] == 400
    assert (await get(http, sim, "position/ldeps", token, masterids="1,x"))[0] == 400
    assert (await get(http, sim, "position/items", token, ids=""))[0] == 400
    status, items = await get(http, sim, "position/items", token, ids="1,2")
    assert status == 200 and items == []
    async with http.post(
        f"{sim.rest_url}/order/placeorder",
        data=b"{oops",
        headers={**bearer(token), "Content-Type": "application/json"},
    ) as r:
        assert r.status == 400
    async with http.post(f"{sim.rest_url}/position/list", headers=bearer(token)) as r:
        assert r.status == 405
