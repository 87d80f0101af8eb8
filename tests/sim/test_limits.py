"""Rate limits: endpoint p-tickets and their redemption, user-level 429s, injected bursts."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp

from tests.sim.helpers import bearer, get, open_socket, post
from trading_gateway.simulator import Simulator

Token = dict[str, Any]


async def test_get_endpoint_penalty_and_its_redemption(
    http: aiohttp.ClientSession, sim: Simulator, token: Token
) -> None:
    sim.control.set_endpoint_limit("position/list", limit=2, window_s=60, p_time=0.2)
    assert (await get(http, sim, "position/list", token))[0] == 200
    assert (await get(http, sim, "position/list", token))[0] == 200
    status, penalty = await get(http, sim, "position/list", token)
    assert status == 200 and set(penalty) == {"p-ticket", "p-time"}
    assert 0 < penalty["p-time"] <= 0.2
    early = (await get(http, sim, "position/list", token, **{"p-ticket": penalty["p-ticket"]}))[1]
    assert "p-ticket" in early  # too soon: still waiting
    await asyncio.sleep(0.25)
    status, body = await get(http, sim, "position/list", token, **{"p-ticket": early["p-ticket"]})
    assert status == 200 and isinstance(body, list)
    # A GET has no body: the same request re-sent after p-time is accepted too.
    penalty = (await get(http, sim, "position/list", token))[1]
    assert "p-ticket" in penalty
    await asyncio.sleep(0.25)
    status, body = await get(http, sim, "position/list", token)
    assert status == 200 and isinstance(body, list)


async def test_post_penalty_is_redeemed_by_the_same_body_plus_ticket(
    http: aiohttp.ClientSession, sim: Simulator, token: Token
) -> None:
    path = "cashBalance/getCashBalanceSnapshot"
    sim.control.set_endpoint_limit(path, limit=1, window_s=60, p_time=0.1)
    account_id, other = sim.control.account_ids()[:2]
    assert "netLiq" in (await post(http, sim, path, token, {"accountId": account_id}))[1]
    penalty = (await post(http, sim, path, token, {"accountId": account_id}))[1]
    assert "p-ticket" in penalty
    await asyncio.sleep(0.15)
    ticket = penalty["p-ticket"]
    wrong = (await post(http, sim, path, token, {"accountId": other, "p-ticket": ticket}))[1]
    assert "p-ticket" in wrong  # a ticket only redeems the body it was issued for
    body = {"accountId": account_id, "p-ticket": ticket}
    status, result = await post(http, sim, path, token, body)
    assert status == 200 and "netLiq" in result
    assert "p-ticket" in (await post(http, sim, path, token, body))[1]  # used up


async def test_documented_renewal_limit(
    http: aiohttp.ClientSession, sim: Simulator, token: Token
) -> None:
    current = token
    for _ in range(15):
        async with http.get(f"{sim.rest_url}/auth/renewaccesstoken", headers=bearer(current)) as r:
            current = await r.json()
            assert "accessToken" in current
    async with http.get(f"{sim.rest_url}/auth/renewaccesstoken", headers=bearer(current)) as r:
        penalty = await r.json()
    assert r.status == 200 and penalty["p-time"] == 15 and "p-captcha" not in penalty


async def test_user_level_limit_gets_429_with_an_empty_body(
    http: aiohttp.ClientSession, sim: Simulator, token: Token
) -> None:
    sim.control.set_user_limits([[3, 60]])
    for _ in range(3):
        assert (await get(http, sim, "account/list", token))[0] == 200
    async with http.get(f"{sim.rest_url}/account/list", headers=bearer(token)) as r:
        assert r.status == 429
        assert r.headers["Content-Length"] == "0" and await r.read() == b""
    sock = await open_socket(http, sim.ws_url, token["accessToken"])
    reply = await sock.request("account/list")
    assert reply == {"s": 429, "i": reply["i"]}
    sim.control.reset_limits()
    assert (await get(http, sim, "account/list", token))[0] == 200
    await sock.ws.close()


async def test_injected_429_bursts_and_penalties(
    http: aiohttp.ClientSession, sim: Simulator, token: Token
) -> None:
    sim.control.burst_429(2, endpoint="position/ldeps")
    ids = ",".join(map(str, sim.control.account_ids()))
    statuses = [(await get(http, sim, "position/ldeps", token, masterids=ids))[0] for _ in range(3)]
    assert statuses == [429, 429, 200]
    sim.control.burst_429(1)
    assert (await get(http, sim, "order/list", token))[0] == 429
    assert (await get(http, sim, "order/list", token))[0] == 200

    sim.control.penalize("position/ldeps", count=2, p_time=0.05)
    first = (await get(http, sim, "position/ldeps", token, masterids=ids))[1]
    second = (await get(http, sim, "position/ldeps", token, masterids=ids))[1]
    assert "p-ticket" in first and "p-ticket" in second
    await asyncio.sleep(0.1)
    status, body = await get(
        http, sim, "position/ldeps", token, masterids=ids, **{"p-ticket": first["p-ticket"]}
    )
    assert status == 200 and isinstance(body, list)


async def test_socket_penalty_and_retry(
    http: aiohttp.ClientSession, sim: Simulator, token: Token
) -> None:
    sock = await open_socket(http, sim.ws_url, token["accessToken"])
    sim.control.penalize("user/syncrequest", count=1, p_time=0.05)
    body = {"users": [token["userId"]]}
    reply = await sock.request("user/syncrequest", body=body)
    assert reply["s"] == 200 and "p-ticket" in reply["d"]
    await asyncio.sleep(0.1)
    retry = await sock.request(
        "user/syncrequest", body={**body, "p-ticket": reply["d"]["p-ticket"]}
    )
    assert retry["s"] == 200 and "users" in retry["d"]
    await sock.ws.close()
