"""The engine's own figures: double residue on the wire as Tradovate shows it, open PnL at
the mark (mid), margins the same everywhere, and a ledger that tells the exact truth."""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Decimal
from fractions import Fraction
from typing import Any

import aiohttp

from tests.sim.helpers import get, post
from trading_gateway.simulator import Simulator
from trading_gateway.simulator.figures import exact_text

Token = dict[str, Any]
CENT = Decimal("0.01")


def _back_month(sim: Simulator, product: str) -> dict[str, Any]:
    """A contract no seeded account holds (seeds and random activity trade front months)."""
    return next(c for c in sim.control.contracts() if c["product"] == product and not c["isFront"])


def _ledger(sim: Simulator, account_id: int) -> dict[str, Any]:
    (row,) = sim.control.ledger(account_id)
    return row


def _fill_at(sim: Simulator, account_id: int, symbol: str, action: str, price: float) -> None:
    """One contract bought or sold at exactly ``price``: a resting limit filled there."""
    far = 1.0 if action == "Buy" else 1000.0
    order_id = sim.control.place_order(account_id, symbol, action, 1, price=far)
    sim.control.fill_order(order_id, price=price)


async def test_averages_and_money_carry_double_residue(
    http: aiohttp.ClientSession, sim: Simulator, token: Token
) -> None:
    account_id = sim.control.account_ids()[0]
    cl = _back_month(sim, "CL")
    for price in (71.85, 71.52, 71.53):
        _fill_at(sim, account_id, cl["name"], "Buy", price)
    positions = (await get(http, sim, "position/deps", token, masterid=account_id))[1]
    (wire,) = [p for p in positions if p["contractId"] == cl["id"]]
    assert wire["netPos"] == 3
    assert repr(wire["netPrice"]) == "71.63333333333334"  # a double's average, as Tradovate's
    (row,) = [p for p in _ledger(sim, account_id)["positions"] if p["contractId"] == cl["id"]]
    assert row["netPrice"] == wire["netPrice"]
    assert Fraction(row["netPriceExact"]) - Fraction(21490, 300) < Fraction(1, 10**19)

    before = Decimal(_ledger(sim, account_id)["exact"]["realizedPnL"])
    for _ in range(3):
        _fill_at(sim, account_id, cl["name"], "Sell", 72.38)
    cash = (await get(http, sim, "cashBalance/deps", token, masterid=account_id))[1][0]
    exact = Decimal(_ledger(sim, account_id)["exact"]["realizedPnL"])
    # (72.38 - 71.6333...) x 3 x 1000 = 2240 exactly; the doubles say otherwise.
    assert exact - before == Decimal(2240)
    wire = Decimal(repr(cash["realizedPnL"]))
    assert wire != exact, "the double carries residue, as Tradovate's does"
    assert abs(wire - exact) < Decimal("1e-6")
    assert wire.quantize(CENT, ROUND_HALF_EVEN) == exact.quantize(CENT, ROUND_HALF_EVEN)


async def test_open_pnl_is_marked_at_mid_not_at_the_last_trade(
    http: aiohttp.ClientSession, sim: Simulator, token: Token
) -> None:
    account_id = sim.control.account_ids()[1]
    es = _back_month(sim, "ES")
    sim.control.move_price(es["id"], 6000.0)
    _fill_at(sim, account_id, es["name"], "Buy", 5990.0)
    before = _ledger(sim, account_id)
    sim.control.move_price(es["id"], 6010.0)
    after = _ledger(sim, account_id)
    contracts = {c["id"]: c for c in sim.control.contracts()}
    body = {"accountId": account_id}
    snap = (await post(http, sim, "cashBalance/getcashbalancesnapshot", token, body))[1]
    assert snap == after["reported"]
    # Marked at mid, 6010.125: one contract, 50 per point, half a tick above the last trade.
    gained = Decimal(after["exact"]["openPnL"]) - Decimal(before["exact"]["openPnL"])
    assert gained == Decimal(500)
    (row,) = [p for p in after["positions"] if p["contractId"] == es["id"]]
    assert Decimal(row["mark"]) == Decimal("6010.125")
    # The gateway's own mark-to-market (at the last trade) differs by half a tick per contract.
    at_last = at_mid = Decimal(0)
    for p in after["positions"]:
        if p["netPos"]:
            c = contracts[p["contractId"]]
            vpp, entry = Decimal(repr(c["valuePerPoint"])), Decimal(p["netPriceExact"])
            at_last += (Decimal(repr(c["price"])) - entry) * vpp * p["netPos"]
            at_mid += (Decimal(p["mark"]) - entry) * vpp * p["netPos"]
            half_tick = Decimal(repr(c["tickSize"])) / 2
            assert Decimal(p["mark"]) == Decimal(repr(c["price"])) + half_tick
    assert at_mid == Decimal(after["exact"]["openPnL"]) != at_last
    net_liq = Decimal(after["exact"]["totalCashValue"]) + Decimal(after["exact"]["openPnL"])
    assert Decimal(after["exact"]["netLiq"]) == net_liq
    total = Decimal(after["exact"]["realizedPnL"]) + Decimal(after["exact"]["openPnL"])
    assert Decimal(after["exact"]["totalPnL"]) == total


async def test_margins_agree_between_snapshot_entities_and_ledger(
    http: aiohttp.ClientSession, sim: Simulator, token: Token
) -> None:
    contracts = {c["id"]: c for c in sim.control.contracts()}
    for account_id in sim.control.account_ids():
        row = _ledger(sim, account_id)
        margin = (await get(http, sim, "marginSnapshot/item", token, id=account_id))[1]
        body = {"accountId": account_id}
        snap = (await post(http, sim, "cashBalance/getcashbalancesnapshot", token, body))[1]
        assert snap == row["reported"]
        assert margin["initialMargin"] == snap["initialMargin"] == row["reported"]["initialMargin"]
        assert margin["maintenanceMargin"] == snap["maintenanceMargin"]
        held = [p for p in row["positions"] if p["netPos"]]
        assert held, "seeded accounts hold positions"
        assert snap["initialMargin"] > snap["maintenanceMargin"] > 0
        assert all(p["contractId"] in contracts for p in held)


async def test_ledger_over_the_admin_api(http: aiohttp.ClientSession, sim: Simulator) -> None:
    account_id = sim.control.account_ids()[2]
    async with http.get(f"{sim.admin_url}/ledger", params={"account_id": account_id}) as resp:
        assert resp.status == 200
        (row,) = (await resp.json())["result"]
    assert row == _ledger(sim, account_id)
    assert row["name"] == f"DEMO{account_id}"
    assert {o["status"] for o in row["orders"]} >= {"Filled", "Working"}
    async with http.get(f"{sim.admin_url}/ledger", params={"account_id": 1}) as resp:
        assert resp.status == 404


def test_exact_text_is_exact_to_twenty_places() -> None:
    assert exact_text(Fraction(0)) == "0"
    assert exact_text(Fraction(2240)) == "2240"
    assert exact_text(Fraction(-3, 8)) == "-0.375"
    assert exact_text(Fraction(1, 3)) == "0.33333333333333333333"
    assert exact_text(Fraction(-2, 3)) == "-0.66666666666666666667"
