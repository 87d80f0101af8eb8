"""Faults aimed at one user of a several-user simulator (`user=` on burst_429, penalize,
drop_sockets, send_shutdown, expire_tokens and revoke_sessions): the named user meets the
fault, the other users do not. Over real HTTP and WebSocket, and through the admin API."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from tests.sim.conftest import config
from tests.sim.helpers import get, open_socket
from trading_gateway.simulator import Simulator
from trading_gateway.simulator.config import numbered_users

Token = dict[str, Any]
A, B = "sim-user-1", "sim-user-2"


@pytest.fixture
async def pair() -> AsyncIterator[Simulator]:
    sim_config = config(users=numbered_users(2, 2), endpoint_limits={})
    async with Simulator(sim_config).running() as running:
        yield running


async def login_as(http: aiohttp.ClientSession, sim: Simulator, name: str) -> Token:
    async with http.post(
        f"{sim.rest_url}/auth/accesstokenrequest", json=sim.credentials_for(name)
    ) as r:
        assert r.status == 200
        body: Token = await r.json()
    return body


async def admin(http: aiohttp.ClientSession, sim: Simulator, method: str, **kwargs: Any) -> Any:
    async with http.post(f"{sim.admin_url}/{method}", json=kwargs) as r:
        return r.status, await r.json()


async def test_a_429_burst_for_one_user_leaves_the_other_answering(
    http: aiohttp.ClientSession, pair: Simulator
) -> None:
    a, b = await login_as(http, pair, A), await login_as(http, pair, B)
    pair.control.burst_429(2, user=A)
    assert (await get(http, pair, "account/list", b))[0] == 200
    assert [(await get(http, pair, "account/list", a))[0] for _ in range(3)] == [429, 429, 200]
    assert (await get(http, pair, "account/list", b))[0] == 200


async def test_an_endpoint_burst_for_one_user_reaches_its_socket_calls_only(
    http: aiohttp.ClientSession, pair: Simulator
) -> None:
    a, b = await login_as(http, pair, A), await login_as(http, pair, B)
    a_sock = await open_socket(http, pair.ws_url, a["accessToken"])
    b_sock = await open_socket(http, pair.ws_url, b["accessToken"])
    pair.control.burst_429(1, endpoint="account/list", user=A)
    assert (await b_sock.request("account/list"))["s"] == 200
    assert (await get(http, pair, "order/list", a))[0] == 200  # another endpoint: untouched
    assert (await a_sock.request("account/list"))["s"] == 429
    assert (await a_sock.request("account/list"))["s"] == 200
    for sock in (a_sock, b_sock):
        await sock.ws.close()


async def test_a_users_rule_comes_before_a_rule_for_everyone(
    http: aiohttp.ClientSession, pair: Simulator
) -> None:
    a, b = await login_as(http, pair, A), await login_as(http, pair, B)
    pair.control.burst_429(1)
    pair.control.burst_429(1, user=A)
    assert (await get(http, pair, "account/list", a))[0] == 429  # A's own rule
    assert (await get(http, pair, "account/list", a))[0] == 429  # then everyone's
    assert (await get(http, pair, "account/list", b))[0] == 200  # everyone's is used up
    assert (await get(http, pair, "account/list", a))[0] == 200


async def test_a_penalty_for_one_user_gives_only_that_user_a_ticket(
    http: aiohttp.ClientSession, pair: Simulator
) -> None:
    a, b = await login_as(http, pair, A), await login_as(http, pair, B)
    pair.control.penalize("account/list", count=1, p_time=0.05, user=B)
    status, body = await get(http, pair, "account/list", a)
    assert status == 200 and isinstance(body, list)
    status, ticket = await get(http, pair, "account/list", b)
    assert status == 200 and "p-ticket" in ticket, ticket
    await asyncio.sleep(0.1)
    status, body = await get(http, pair, "account/list", b, **{"p-ticket": ticket["p-ticket"]})
    assert status == 200 and isinstance(body, list)


async def test_a_login_penalty_for_one_user_lets_the_other_log_in(
    http: aiohttp.ClientSession, pair: Simulator
) -> None:
    pair.control.penalize("auth/accesstokenrequest", count=1, p_time=30, captcha=True, user=A)
    refused = await login_as(http, pair, A)
    assert refused.get("p-captcha") is True and "accessToken" not in refused, refused
    assert "accessToken" in await login_as(http, pair, B)
    counters = pair.control.user_counters()
    assert (counters[A]["logins"], counters[B]["logins"]) == (0, 1)


async def test_dropping_one_users_sockets_leaves_the_others_open(
    http: aiohttp.ClientSession, pair: Simulator
) -> None:
    a, b = await login_as(http, pair, A), await login_as(http, pair, B)
    a_sock = await open_socket(http, pair.ws_url, a["accessToken"])
    b_sock = await open_socket(http, pair.ws_url, b["accessToken"])
    assert pair.control.drop_sockets("user", abrupt=False, user=A) == 1
    await a_sock.closed()
    assert a_sock.frames[-1] == 'c[1000,"Closed by simulator"]'
    assert (await b_sock.request("account/list"))["s"] == 200
    assert pair.control.drop_sockets("user", abrupt=True, user=B) == 1
    await b_sock.closed()
    assert not any(f.startswith("c") for f in b_sock.frames)  # abrupt: no close frame


async def test_a_shutdown_for_one_user_reaches_only_its_sockets(
    http: aiohttp.ClientSession, pair: Simulator
) -> None:
    a, b = await login_as(http, pair, A), await login_as(http, pair, B)
    a_sock = await open_socket(http, pair.ws_url, a["accessToken"])
    b_sock = await open_socket(http, pair.ws_url, b["accessToken"])
    assert pair.control.send_shutdown("Maintenance", user=B, close=False) == 1
    notice = await b_sock.message(lambda m: m.get("e") == "shutdown")
    assert notice["d"]["reasonCode"] == "Maintenance"
    assert (await a_sock.request("account/list"))["s"] == 200
    assert not any(m.get("e") == "shutdown" for m in a_sock.pending)
    for sock in (a_sock, b_sock):
        await sock.ws.close()


async def test_revoking_one_users_sessions_keeps_the_others_logged_in(
    http: aiohttp.ClientSession, pair: Simulator
) -> None:
    a, b = await login_as(http, pair, A), await login_as(http, pair, B)
    a_sock = await open_socket(http, pair.ws_url, a["accessToken"])
    assert pair.control.revoke_sessions(user=A) == 1
    await a_sock.closed()
    assert (await get(http, pair, "account/list", a))[0] == 401
    assert (await get(http, pair, "account/list", b))[0] == 200
    counters = pair.control.user_counters()
    assert (counters[A]["sessions"], counters[B]["sessions"]) == (0, 1)


async def test_expiring_one_users_tokens_keeps_the_others_valid(
    http: aiohttp.ClientSession, pair: Simulator
) -> None:
    a, b = await login_as(http, pair, A), await login_as(http, pair, B)
    assert pair.control.expire_tokens(user=A) == 2  # its access and md tokens
    assert (await get(http, pair, "account/list", a))[0] == 401
    assert (await get(http, pair, "auth/renewaccesstoken", a))[0] == 401
    assert (await get(http, pair, "account/list", b))[0] == 200
    pair.control.expire_tokens()  # everyone's
    assert (await get(http, pair, "account/list", b))[0] == 401


async def test_a_simuser_names_its_user_too(http: aiohttp.ClientSession, pair: Simulator) -> None:
    a, b = await login_as(http, pair, A), await login_as(http, pair, B)
    user_a = next(u for u in pair.config.all_users() if u.name == A)
    pair.control.burst_429(1, user=user_a)
    assert (await get(http, pair, "account/list", b))[0] == 200
    assert (await get(http, pair, "account/list", a))[0] == 429


async def test_the_admin_api_takes_a_user_and_refuses_an_unknown_one(
    http: aiohttp.ClientSession, pair: Simulator
) -> None:
    a, b = await login_as(http, pair, A), await login_as(http, pair, B)
    a_sock = await open_socket(http, pair.ws_url, a["accessToken"])
    assert await admin(http, pair, "burst_429", count=1, user=B) == (200, {"result": None})
    assert (await get(http, pair, "account/list", a))[0] == 200
    assert (await get(http, pair, "account/list", b))[0] == 429
    assert await admin(http, pair, "drop_sockets", kind="user", user=A) == (200, {"result": 1})
    await a_sock.closed()
    status, answer = await admin(http, pair, "revoke_sessions", user="nobody")
    assert (status, answer) == (404, {"error": "unknown user nobody"})
    with pytest.raises(KeyError, match="unknown user nobody"):
        pair.control.expire_tokens(user="nobody")
    assert (await get(http, pair, "account/list", a))[0] == 200  # nothing was revoked
