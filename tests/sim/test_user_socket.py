"""The user-data socket: framing, authorize, 4-line requests, heartbeats, timeouts, closes."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp

from tests.sim.conftest import config
from tests.sim.helpers import SocketClosed, get, login, open_socket
from trading_gateway.simulator import Simulator

Token = dict[str, Any]


async def test_open_frame_then_authorize(
    http: aiohttp.ClientSession, sim: Simulator, token: Token
) -> None:
    sock = await open_socket(http, sim.ws_url)
    assert sock.frames == ["o"]
    reply = await sock.authorize("not-a-token")
    assert reply == {"s": 401, "i": 0, "d": "Invalid access token"}
    refused = {"s": 401, "i": 0, "d": "Invalid access token"}
    assert await sock.authorize(token["mdAccessToken"]) == refused
    assert await sock.authorize(token["accessToken"]) == {"s": 200, "i": 0}
    await sock.ws.close()


async def test_requests_before_authorize_are_refused(
    http: aiohttp.ClientSession, sim: Simulator
) -> None:
    sock = await open_socket(http, sim.ws_url)
    reply = await sock.request("account/list")
    assert reply["s"] == 401 and reply["d"] == "Access is denied"
    await sock.ws.close()


async def test_rest_style_requests_match_rest(
    http: aiohttp.ClientSession, sim: Simulator, token: Token
) -> None:
    sock = await open_socket(http, sim.ws_url, token["accessToken"])
    accounts = (await get(http, sim, "account/list", token))[1]
    ids = [a["id"] for a in accounts]
    masterids = f"{ids[0]},{ids[1]}"
    reply = await sock.request("position/ldeps", f"masterids={masterids}")
    assert reply["s"] == 200
    assert reply["d"] == (await get(http, sim, "position/ldeps", token, masterids=masterids))[1]
    by_body = await sock.request("account/items", body={"ids": ids[:2]})
    assert [a["id"] for a in by_body["d"]] == ids[:2]
    # The official JS client may send the literal "undefined" on the query and body lines.
    await sock.ws.send_str("account/list\n41\nundefined\nundefined")
    listed = await sock.message(lambda m: m.get("i") == 41)
    assert listed["s"] == 200 and listed["d"] == accounts
    await sock.ws.send_str("Account/List\n42\n\n")
    assert (await sock.message(lambda m: m.get("i") == 42))["d"] == accounts
    snap = await sock.request("cashBalance/getCashBalanceSnapshot", body={"accountId": ids[0]})
    assert snap["s"] == 200 and "netLiq" in snap["d"]
    assert sim.control.counters()["calls"]["ws:position/ldeps"] == 1
    await sock.ws.close()


async def test_bad_input_gets_400_or_404_and_the_socket_survives(
    http: aiohttp.ClientSession, sim: Simulator, token: Token
) -> None:
    sock = await open_socket(http, sim.ws_url, token["accessToken"])
    await sock.ws.send_str("just-one-line")
    reply = await sock.message(lambda m: m.get("s") == 400)
    assert "i" not in reply and "Malformed" in json.loads(reply["d"])
    await sock.ws.send_str("account/list\nnot-a-number\n\n")
    assert (await sock.message(lambda m: m.get("s") == 400 and "i" not in m))["s"] == 400
    unknown = await sock.request("quote/subscribe")
    assert unknown == {"s": 404, "i": unknown["i"], "d": '"Not found: quote/subscribe"'}
    md_only = await sock.request("md/subscribeQuote", body={"symbol": "ESZ6"})
    assert md_only["s"] == 404  # market data lives on its own socket
    await sock.ws.send_str("order/placeorder\n9\n\n{broken")
    assert (await sock.message(lambda m: m.get("i") == 9))["s"] == 400
    missing = await sock.request("position/item", "id=1")
    assert missing["s"] == 404
    await sock.ws.send_bytes(b"account/list\n10\n\n")
    assert (await sock.message(lambda m: m.get("i") == 10))["s"] == 200
    assert (await sock.request("account/list"))["s"] == 200
    await sock.ws.close()


async def test_server_heartbeats_and_client_timeout(http: aiohttp.ClientSession) -> None:
    cfg = config(heartbeat_interval=0.05, client_timeout=0.4)
    async with Simulator(cfg).running() as sim:
        token = await login(http, sim)
        alive = await open_socket(http, sim.ws_url, token["accessToken"])
        silent = await open_socket(http, sim.ws_url, token["accessToken"])
        for _ in range(10):  # 0.6 s of [] heartbeats keeps one socket open
            await alive.ws.send_str("[]")
            await asyncio.sleep(0.06)
        await silent.closed()
        assert silent.frames[-1] == 'c[1008,"Heartbeat timeout"]'
        assert "h" in silent.frames
        await alive.ws.send_str("[]")
        assert (await alive.request("account/list"))["s"] == 200
        assert alive.frames.count("h") >= 3
        await alive.ws.close()


async def test_unauthorized_socket_is_closed_after_a_timeout(http: aiohttp.ClientSession) -> None:
    async with Simulator(config(authorize_timeout=0.2)).running() as sim:
        sock = await open_socket(http, sim.ws_url)
        await sock.closed()
        assert sock.frames[-1] == 'c[1008,"Not authorized"]'


async def test_shutdown_event_then_close(
    http: aiohttp.ClientSession, sim: Simulator, token: Token
) -> None:
    sock = await open_socket(http, sim.ws_url, token["accessToken"])
    assert sim.control.send_shutdown("Maintenance") == 1
    event = await sock.message(lambda m: m.get("e") == "shutdown")
    assert event["d"]["reasonCode"] == "Maintenance"
    await sock.closed()
    assert sock.frames[-1].startswith("c")


async def test_abrupt_and_graceful_drops(
    http: aiohttp.ClientSession, sim: Simulator, token: Token
) -> None:
    abrupt = await open_socket(http, sim.ws_url, token["accessToken"])
    assert sim.control.counters()["sockets"]["user"] == 1
    assert sim.control.drop_sockets(kind="user", abrupt=True) == 1
    await abrupt.closed()
    assert not any(f.startswith("c") for f in abrupt.frames)  # no close frame: a reset
    graceful = await open_socket(http, sim.ws_url, token["accessToken"])
    sim.control.drop_sockets(abrupt=False)
    await graceful.closed()
    assert graceful.frames[-1] == 'c[1000,"Closed by simulator"]'
    for _ in range(100):
        if sim.control.counters()["sockets"]["user"] == 0:
            break
        await asyncio.sleep(0.01)
    assert sim.control.counters()["sockets"]["user"] == 0


async def test_several_messages_share_one_frame(
    http: aiohttp.ClientSession, sim: Simulator, token: Token
) -> None:
    sock = await open_socket(http, sim.ws_url, token["accessToken"])
    await sock.request("user/syncrequest", body={"users": [token["userId"]]})
    account_id = sim.control.account_ids()[0]
    sim.control.place_order(account_id, "ESZ6", "Buy", 1)  # accept + fill: many events at once
    events = await sock.props(6)
    assert len(events) == 6
    batched = [f for f in sock.frames if f.startswith("a") and len(json.loads(f[1:])) > 1]
    assert batched, sock.frames
    await sock.ws.close()


async def test_closed_socket_reads_raise(http: aiohttp.ClientSession, sim: Simulator) -> None:
    sock = await open_socket(http, sim.ws_url)
    await sock.ws.close()
    try:
        await sock.frame(within=1)
    except SocketClosed:
        return
    raise AssertionError("expected the socket to be closed")
