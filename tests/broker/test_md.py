"""Market data against the simulator: ref-counted quotes, resubscribe after reconnect."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import pytest

from tests.broker.conftest import eventually
from trading_gateway.server.broker import MarketData, NotFoundError, TradovateClient
from trading_gateway.server.broker.schemas import Quote
from trading_gateway.simulator import Simulator


def subscriptions(sim: Simulator) -> int:
    return int(sim.control.counters()["md_subscriptions"])


async def next_quote(quotes: AsyncIterator[Quote], contract_id: int, price: Decimal) -> Quote:
    async with asyncio.timeout(10):
        async for quote in quotes:
            trade = quote.entries.get("Trade")
            if quote.contract_id == contract_id and trade is not None and trade.price == price:
                return quote
    raise AssertionError("the quote stream ended")


def new_price(contract: dict[str, Any], ticks: int) -> Decimal:
    tick = Decimal(str(contract["tickSize"]))
    return (Decimal(str(contract["price"])) + ticks * tick).quantize(tick)


async def test_quotes_are_ref_counted_and_resubscribed(
    sim: Simulator, client: TradovateClient
) -> None:
    md = client.market_data()
    assert client.market_data() is md
    await md.start()
    contract = sim.control.contracts()[0]
    cid = contract["id"]
    quotes = md.quotes()

    await md.subscribe(cid)
    await md.subscribe(cid)
    assert md.subscriptions == {cid: 2}
    assert subscriptions(sim) == 1
    assert sim.control.counters()["calls"].get("md:md/subscribequote") == 1

    price = new_price(contract, 4)
    sim.control.move_price(cid, str(price))
    quote = await next_quote(quotes, cid, price)
    assert quote.timestamp is not None

    sim.control.drop_sockets("md")
    await eventually(lambda: md.socket.connects >= 2 and subscriptions(sim) == 1)
    price = new_price(contract, -3)
    sim.control.move_price(cid, str(price))
    await next_quote(quotes, cid, price)

    await md.unsubscribe(cid)
    assert subscriptions(sim) == 1 and md.subscriptions == {cid: 1}
    await md.unsubscribe(cid)
    assert subscriptions(sim) == 0 and md.subscriptions == {}
    await md.unsubscribe(cid)  # one too many is harmless
    assert sim.control.counters()["calls"].get("md:md/unsubscribequote") == 1


async def test_md_socket_uses_the_md_token(sim: Simulator, client: TradovateClient) -> None:
    md = client.market_data()
    await md.start()
    token = client.token_manager.current
    assert token is not None and token.md_access_token is not None
    conn = md.socket._conn  # the live connection (private: tokens are not exposed)
    assert conn is not None and conn.token == token.md_access_token != token.access_token


async def test_unknown_contract_is_not_found_and_not_counted(
    sim: Simulator, client: TradovateClient
) -> None:
    md = client.market_data()
    await md.start()
    with pytest.raises(NotFoundError):
        await md.subscribe(987654321)
    assert md.subscriptions == {}


async def test_subscribe_while_down_is_sent_on_connect(
    sim: Simulator, client: TradovateClient
) -> None:
    md: MarketData = client.market_data()
    contract = sim.control.contracts()[1]
    await md.subscribe(contract["id"])  # not started yet: recorded only
    assert subscriptions(sim) == 0
    await md.start()
    await eventually(lambda: subscriptions(sim) == 1)
    price = new_price(contract, 2)
    sim.control.move_price(contract["id"], str(price))
    await next_quote(md.quotes(), contract["id"], price)
    await md.aclose()
    await eventually(lambda: sim.control.counters()["sockets"]["md"] == 0)
