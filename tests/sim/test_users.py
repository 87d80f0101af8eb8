"""Several Tradovate users in one simulator: logins, isolation of accounts and events,
per-user sessions, per-user and per-IP limits, and the per-user counters."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from tests.sim.conftest import config
from tests.sim.helpers import entities, get, open_socket, post
from trading_gateway.simulator import Simulator
from trading_gateway.simulator.config import SimConfig, SimUser, numbered_users
from trading_gateway.simulator.store import ACCOUNT_KEYED

Token = dict[str, Any]
USERS = 3
ACCOUNTS = 3
NAMES = tuple(f"sim-user-{n}" for n in range(1, USERS + 1))


@pytest.fixture
async def multi() -> AsyncIterator[Simulator]:
    sim_config = config(users=numbered_users(USERS, ACCOUNTS), endpoint_limits={})
    async with Simulator(sim_config).running() as running:
        yield running


async def login_as(http: aiohttp.ClientSession, sim: Simulator, name: str) -> Token:
    url = f"{sim.rest_url}/auth/accesstokenrequest"
    async with http.post(url, json=sim.credentials_for(name)) as r:
        assert r.status == 200
        body: Token = await r.json()
    assert "accessToken" in body, body
    return body


def owned(sim: Simulator) -> dict[str, list[int]]:
    return {user["name"]: user["accountIds"] for user in sim.control.users()}


def market_order(account_id: int, symbol: str) -> dict[str, Any]:
    return {
        "accountId": account_id, "action": "Buy", "symbol": symbol, "orderQty": 1,
        "orderType": "Market", "isAutomated": True,
    }  # fmt: skip


async def test_each_user_logs_in_with_its_own_password_and_sees_its_own_accounts(
    http: aiohttp.ClientSession, multi: Simulator
) -> None:
    accounts = owned(multi)
    assert sorted(accounts) == sorted(NAMES)
    every = [a for ids in accounts.values() for a in ids]
    assert len(every) == len(set(every)) == USERS * ACCOUNTS
    user_ids = set()
    for name in NAMES:
        token = await login_as(http, multi, name)
        assert token["name"] == name
        user_ids.add(token["userId"])
        status, listed = await get(http, multi, "account/list", token)
        assert status == 200
        assert sorted(a["id"] for a in listed) == sorted(accounts[name])
        assert {a["userId"] for a in listed} == {token["userId"]}
        users = (await get(http, multi, "user/list", token))[1]
        assert [u["id"] for u in users] == [token["userId"]]
        me = (await get(http, multi, "auth/me", token))[1]
        assert (me["userId"], me["name"]) == (token["userId"], name)
    assert len(user_ids) == USERS


async def test_a_password_opens_only_its_own_user(
    http: aiohttp.ClientSession, multi: Simulator
) -> None:
    url = f"{multi.rest_url}/auth/accesstokenrequest"
    other_password = multi.credentials_for(NAMES[1])["password"]
    crossed = {**multi.credentials_for(NAMES[0]), "password": other_password}
    async with http.post(url, json=crossed) as r:
        body = await r.json()
    assert "errorText" in body and "accessToken" not in body
    assert multi.control.user_counters()[NAMES[0]]["logins"] == 0
    assert multi.control.user_counters()[NAMES[1]]["logins"] == 0


async def test_another_users_entities_are_not_found_and_not_tradable(
    http: aiohttp.ClientSession, multi: Simulator
) -> None:
    accounts = owned(multi)
    mine, theirs = accounts[NAMES[0]], accounts[NAMES[1]]
    token = await login_as(http, multi, NAMES[0])
    other = await login_as(http, multi, NAMES[1])
    assert (await get(http, multi, "account/item", token, id=theirs[0]))[0] == 404
    assert (await get(http, multi, "account/item", other, id=theirs[0]))[0] == 200
    name = f"DEMO{theirs[0]}"
    assert (await get(http, multi, "account/find", token, name=name))[0] == 404
    status, items = await get(http, multi, "account/items", token, ids=f"{mine[0]},{theirs[0]}")
    assert status == 200 and [a["id"] for a in items] == [mine[0]]
    positions = (await get(http, multi, "position/list", token))[1]
    assert positions and {p["accountId"] for p in positions} <= set(mine)
    orders = (await get(http, multi, "order/list", token))[1]
    assert orders and {o["accountId"] for o in orders} <= set(mine)
    fills = (await get(http, multi, "fill/list", token))[1]
    assert fills and {f["orderId"] for f in fills} <= {o["id"] for o in orders}
    assert (await get(http, multi, "position/deps", token, masterid=theirs[0]))[1] == []
    assert (await get(http, multi, "position/deps", other, masterid=theirs[0]))[1] != []
    symbol = multi.control.contracts()[0]["name"]
    status, placed = await post(
        http, multi, "order/placeorder", token, market_order(theirs[0], symbol)
    )
    assert status == 200 and placed.get("failureReason") == "Unauthorized", placed
    their_orders = (await get(http, multi, "order/list", other))[1]
    working = next(o["id"] for o in their_orders if o["ordStatus"] == "Working")
    status, _ = await post(http, multi, "order/cancelorder", token, {"orderId": working})
    assert status == 404
    status, cancelled = await post(http, multi, "order/cancelorder", other, {"orderId": working})
    assert status == 200 and "commandId" in cancelled
    snapshot = "cashBalance/getCashBalanceSnapshot"
    assert "errorText" in (await post(http, multi, snapshot, token, {"accountId": theirs[0]}))[1]
    assert "netLiq" in (await post(http, multi, snapshot, token, {"accountId": mine[0]}))[1]


async def test_sync_snapshot_and_events_carry_only_the_users_accounts(
    http: aiohttp.ClientSession, multi: Simulator
) -> None:
    accounts = owned(multi)
    symbol = multi.control.contracts()[0]["name"]
    socks = {}
    for name in NAMES[:2]:
        token = await login_as(http, multi, name)
        sock = await open_socket(http, multi.ws_url, token["accessToken"])
        reply = await sock.request("user/syncrequest", body={"users": [token["userId"]]})
        assert reply["s"] == 200
        data = reply["d"]
        assert sorted(a["id"] for a in data["accounts"]) == sorted(accounts[name])
        assert [u["id"] for u in data["users"]] == [token["userId"]]
        assert {p["accountId"] for p in data["positions"]} <= set(accounts[name])
        # Asking for another user's account yields nothing of it.
        other = accounts[NAMES[1] if name == NAMES[0] else NAMES[0]][0]
        asked = await sock.request("user/syncrequest", body={"accounts": [other]})
        assert asked["s"] == 200 and asked["d"]["accounts"] == []
        socks[name] = sock
    # Re-sync each socket to its whole user, then trade: B's fill, then A's marker order.
    for sock in socks.values():
        assert (await sock.request("user/syncrequest", body={}))["s"] == 200
        sock.drain_props()
    b_account, a_account = accounts[NAMES[1]][0], accounts[NAMES[0]][0]
    b_order = multi.control.place_order(b_account, symbol)
    a_order = multi.control.place_order(a_account, symbol)
    a_sock, b_sock = socks[NAMES[0]], socks[NAMES[1]]
    # Events reach a socket in publication order: once A's own order arrives, any event of
    # B's order would already have arrived before it.
    seen_a: list[dict[str, Any]] = []
    while not any(e.get("id") == a_order for e in seen_a):
        event = (await a_sock.props(1))[0]
        if event["d"]["entityType"] == "order":
            seen_a.extend(entities(event))
        assert not _mentions(event, b_account, b_order), event
    seen_b: list[dict[str, Any]] = []
    while not any(e.get("id") == b_order for e in seen_b):
        event = (await b_sock.props(1))[0]
        if event["d"]["entityType"] == "order":
            seen_b.extend(entities(event))
    for sock in socks.values():
        await sock.ws.close()


def _mentions(event: dict[str, Any], account_id: int, order_id: int) -> bool:
    for entity in entities(event):
        if entity.get("accountId") == account_id or entity.get("orderId") == order_id:
            return True
        entity_type = event["d"]["entityType"]
        if entity_type == "order" and entity.get("id") == order_id:
            return True
        if entity_type in ACCOUNT_KEYED and entity.get("id") == account_id:
            return True
    return False


async def test_a_third_login_evicts_the_users_own_oldest_session_only(
    http: aiohttp.ClientSession, multi: Simulator
) -> None:
    a, b = NAMES[0], NAMES[1]
    b_token = await login_as(http, multi, b)
    first, second = await login_as(http, multi, a), await login_as(http, multi, a)
    b_second = await login_as(http, multi, b)
    sock = await open_socket(http, multi.ws_url, first["accessToken"])
    third = await login_as(http, multi, a)
    await sock.closed()  # the evicted session's socket is closed
    assert (await get(http, multi, "account/list", first))[0] == 401
    for token in (second, third, b_token, b_second):
        assert (await get(http, multi, "account/list", token))[0] == 200
    users = multi.control.user_counters()
    assert (users[a]["sessions"], users[a]["logins"]) == (2, 3)
    assert (users[b]["sessions"], users[b]["logins"]) == (2, 2)
    assert (users[NAMES[2]]["sessions"], users[NAMES[2]]["logins"]) == (0, 0)
    assert users[a]["accounts"] == ACCOUNTS
    counters = multi.control.counters()
    assert counters["sessions"] == 4 and counters["users"] == users
    multi.control.reset_counters()
    assert multi.control.user_counters()[a]["logins"] == 0
    assert multi.control.user_counters()[a]["sessions"] == 2


async def test_user_limits_are_per_user(http: aiohttp.ClientSession, multi: Simulator) -> None:
    a, b = await login_as(http, multi, NAMES[0]), await login_as(http, multi, NAMES[1])
    multi.control.set_user_limits([[3, 60]])
    for _ in range(3):
        assert (await get(http, multi, "account/list", a))[0] == 200
    status, body = await get(http, multi, "account/list", a)
    assert (status, body) == (429, None)
    for _ in range(3):
        assert (await get(http, multi, "account/list", b))[0] == 200  # B keeps its budget
    assert (await get(http, multi, "account/list", b))[0] == 429


async def test_the_ip_limit_is_one_budget_across_users(
    http: aiohttp.ClientSession, multi: Simulator
) -> None:
    tokens = [await login_as(http, multi, name) for name in NAMES]
    multi.control.set_ip_limits([[4, 60]])
    for token in (tokens[0], tokens[0], tokens[1], tokens[2]):
        assert (await get(http, multi, "account/list", token))[0] == 200
    for token in tokens:  # every user is refused once the subnet's budget is spent
        assert (await get(http, multi, "account/list", token))[0] == 429
    multi.control.reset_limits()
    assert (await get(http, multi, "account/list", tokens[1]))[0] == 200


async def test_admin_api_reports_users_and_their_counters(
    http: aiohttp.ClientSession, multi: Simulator
) -> None:
    await login_as(http, multi, NAMES[2])
    async with http.get(f"{multi.admin_url}/user_counters") as r:
        assert r.status == 200
        counters = (await r.json())["result"]
    async with http.get(f"{multi.admin_url}/users") as r:
        assert r.status == 200
        users = (await r.json())["result"]
    assert counters[NAMES[2]]["sessions"] == 1 and counters[NAMES[0]]["sessions"] == 0
    assert [u["name"] for u in users] == list(NAMES)
    assert "password" not in json.dumps(users) and "sim-pass" not in json.dumps(users)


def test_single_user_default_is_unchanged() -> None:
    users = SimConfig(accounts=2).all_users()
    assert users == (SimUser(name="sim-user", password="sim-pass", accounts=2, user_id=2_604_017),)


@pytest.mark.parametrize(
    ("users", "message"),
    [
        ((SimUser(name="a", password="x"), SimUser(name="a", password="y")), "declared twice"),
        ((SimUser(name="a", password=""),), "must not be empty"),
        ((SimUser(name="a", password="x", accounts=0),), "at least 1"),
        ((SimUser(name="a", password="x", user_id=7), SimUser(name="b", password="y", user_id=7)),
         "is taken"),
    ],
)  # fmt: skip
def test_bad_user_declarations_are_refused(users: tuple[SimUser, ...], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        SimConfig(users=users)
