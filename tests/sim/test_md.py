"""The market-data socket: its own port, subscribeQuote/unsubscribeQuote, quote events."""

from __future__ import annotations

from fractions import Fraction
from typing import Any
from urllib.parse import urlparse

import aiohttp

from tests.sim.conftest import config
from tests.sim.helpers import ISO_MS, login, open_socket
from trading_gateway.simulator import Simulator

Token = dict[str, Any]
ENTRIES = {
    "Bid", "Offer", "Trade", "TotalTradeVolume", "OpenInterest", "OpeningPrice", "HighPrice",
    "LowPrice", "SettlementPrice",
}  # fmt: skip


def _quotes(message: dict[str, Any]) -> list[dict[str, Any]]:
    assert message["e"] == "md"
    return list(message["d"]["quotes"])


def _is_quote(message: dict[str, Any]) -> bool:
    return message.get("e") == "md"


async def test_md_runs_on_its_own_port(sim: Simulator) -> None:
    assert urlparse(sim.md_ws_url).port != urlparse(sim.ws_url).port
    assert urlparse(sim.md_ws_url).path == "/v1/websocket"


async def test_authorize_with_either_token(
    http: aiohttp.ClientSession, sim: Simulator, token: Token
) -> None:
    for key in ("mdAccessToken", "accessToken"):
        sock = await open_socket(http, sim.md_ws_url, token[key])
        await sock.ws.close()
    sock = await open_socket(http, sim.md_ws_url)
    assert (await sock.authorize("bad"))["s"] == 401
    assert (await sock.request("md/subscribeQuote", body={"symbol": "ESZ6"}))["s"] == 401
    await sock.ws.close()


async def test_subscribe_by_name_and_id_and_quote_shape(
    http: aiohttp.ClientSession, sim: Simulator, token: Token
) -> None:
    sock = await open_socket(http, sim.md_ws_url, token["mdAccessToken"])
    contracts = {c["name"]: c for c in sim.control.contracts()}
    reply = await sock.request("md/subscribeQuote", body={"symbol": "ESZ6"})
    assert reply["s"] == 200
    quote = _quotes(await sock.message(_is_quote))[0]
    assert quote["contractId"] == contracts["ESZ6"]["id"]
    assert ISO_MS.match(quote["timestamp"])
    assert set(quote["entries"]) == ENTRIES
    entries = quote["entries"]
    assert entries["Offer"]["price"] - entries["Bid"]["price"] == 0.25
    assert entries["Trade"]["price"] == contracts["ESZ6"]["price"]
    assert {"price", "size"} <= entries["Bid"].keys()
    for symbol in (contracts["NQZ6"]["id"], str(contracts["CLZ6"]["id"])):
        assert (await sock.request("md/subscribequote", body={"symbol": symbol}))["s"] == 200
        q = _quotes(await sock.message(_is_quote))[0]
        assert q["contractId"] == int(symbol)
    await sock.ws.close()


async def test_quotes_follow_prices_until_unsubscribed(
    http: aiohttp.ClientSession, sim: Simulator, token: Token
) -> None:
    sock = await open_socket(http, sim.md_ws_url, token["mdAccessToken"])
    await sock.request("md/subscribeQuote", body={"symbol": "6EZ6"})
    await sock.message(_is_quote)
    sim.control.move_price("GCZ6", 2700)  # not subscribed: no quote
    new_price = sim.control.move_price("6EZ6", "1.0901")
    assert new_price == 1.0901
    quote = _quotes(await sock.message(_is_quote))[0]
    assert quote["entries"]["Trade"]["price"] == 1.0901
    assert not sock.pending
    assert (await sock.request("md/unsubscribeQuote", body={"symbol": "6EZ6"}))["s"] == 200
    sim.control.move_price("6EZ6", "1.0905")
    assert (await sock.request("md/subscribeQuote", body={"symbol": "GCZ6"}))["s"] == 200
    quote = _quotes(await sock.message(_is_quote))[0]
    gold = next(c for c in sim.control.contracts() if c["name"] == "GCZ6")
    assert quote["contractId"] == gold["id"]  # the 6E move after unsubscribing sent nothing
    assert quote["entries"]["Trade"]["price"] == 2700
    assert not [m for m in sock.pending if _is_quote(m)]
    assert sim.control.counters()["calls"]["md:md/subscribequote"] == 2
    await sock.ws.close()


async def test_random_walk_streams_on_grid_quotes(http: aiohttp.ClientSession) -> None:
    async with Simulator(config(price_interval=0.02)).running() as sim:
        token = await login(http, sim)
        sock = await open_socket(http, sim.md_ws_url, token["mdAccessToken"])
        await sock.request("md/subscribeQuote", body={"symbol": "ZNZ6"})
        prices = set()
        for _ in range(15):
            for quote in _quotes(await sock.message(_is_quote)):
                prices.add(quote["entries"]["Trade"]["price"])
        assert len(prices) > 1
        for price in prices:
            assert (Fraction(repr(price)) / Fraction(1, 64)).denominator == 1
        await sock.ws.close()


async def test_bad_md_requests(http: aiohttp.ClientSession, sim: Simulator, token: Token) -> None:
    sock = await open_socket(http, sim.md_ws_url, token["mdAccessToken"])
    unknown = await sock.request("md/subscribeQuote", body={"symbol": "NOPE"})
    assert unknown["s"] == 404
    assert (await sock.request("md/subscribeQuote", body={}))["s"] == 400
    assert (await sock.request("md/getChart", body={}))["s"] == 404
    assert (await sock.request("user/syncrequest", body={}))["s"] == 404
    await sock.ws.close()
