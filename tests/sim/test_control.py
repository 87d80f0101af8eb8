"""The control API, over /_sim/ and in Python: latency, faults, counters, the event log."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import aiohttp
import pytest

from tests.sim.helpers import get, login, open_socket, post
from trading_gateway.simulator import Simulator

Token = dict[str, Any]


async def _admin(
    http: aiohttp.ClientSession, sim: Simulator, method: str, **kwargs: Any
) -> tuple[int, Any]:
    async with http.post(f"{sim.admin_url}/{method}", json=kwargs) as r:
        return r.status, await r.json()


async def _admin_get(
    http: aiohttp.ClientSession, sim: Simulator, method: str, **params: Any
) -> tuple[int, Any]:
    query = {k: str(v) for k, v in params.items()}
    async with http.get(f"{sim.admin_url}/{method}", params=query) as r:
        return r.status, await r.json()


async def _elapsed(coro: Any) -> tuple[float, Any]:
    started = time.perf_counter()
    result = await coro
    return time.perf_counter() - started, result


async def test_admin_index_and_errors(http: aiohttp.ClientSession, sim: Simulator) -> None:
    status, index = await _admin_get(http, sim, "")
    assert status == 200
    for name in ("set_latency", "fail_account", "clear_faults", "counters", "event_log",
                 "place_order", "fill_order", "cancel_order", "move_price", "drop_sockets",
                 "send_shutdown", "set_activity", "account_ids"):  # fmt: skip
        assert name in index["methods"]
    assert (await _admin(http, sim, "no_such_method"))[0] == 404
    assert (await _admin_get(http, sim, "set_latency", ms=5))[0] == 405
    assert (await _admin(http, sim, "set_latency", ms="fast"))[0] == 400
    assert (await _admin(http, sim, "set_latency", bogus=1))[0] == 400
    assert (await _admin(http, sim, "fail_account", account_id=1))[0] == 404
    async with http.post(f"{sim.admin_url}/counters", data=b"{oops") as r:
        assert r.status == 400


async def test_latency_global_endpoint_and_slow_account(
    http: aiohttp.ClientSession, sim: Simulator, token: Token
) -> None:
    accounts = sim.control.account_ids()
    assert (await _admin(http, sim, "set_latency", ms=60, endpoint="position/list"))[0] == 200
    took, (status, _) = await _elapsed(get(http, sim, "position/list", token))
    assert status == 200 and took >= 0.06
    sim.control.set_latency(ms=0, endpoint="position/list")
    sim.control.set_latency(ms=80, account_id=accounts[1])
    ids = ",".join(map(str, accounts))
    took, (status, _) = await _elapsed(get(http, sim, "position/ldeps", token, masterids=ids))
    assert status == 200 and took >= 0.08  # a multi-account call waits for its slowest account
    sock = await open_socket(http, sim.ws_url, token["accessToken"])
    took, reply = await _elapsed(sock.request("position/deps", f"masterid={accounts[1]}"))
    assert reply["s"] == 200 and took >= 0.08
    sim.control.clear_latency()
    sim.control.set_latency(ms=50, jitter_ms=20)
    took, (status, _) = await _elapsed(get(http, sim, "order/list", token))
    assert status == 200 and took >= 0.05
    await sock.ws.close()


async def test_failing_account(http: aiohttp.ClientSession, sim: Simulator, token: Token) -> None:
    bad, good = sim.control.account_ids()[:2]
    status, _ = await _admin(http, sim, "fail_account", account_id=bad, status=503)
    assert status == 200
    assert (await get(http, sim, "position/deps", token, masterid=bad))[0] == 503
    assert (await get(http, sim, "position/deps", token, masterid=good))[0] == 200
    assert (await get(http, sim, "order/ldeps", token, masterids=f"{good},{bad}"))[0] == 503
    assert (await get(http, sim, "account/item", token, id=bad))[0] == 503
    assert (await get(http, sim, "position/list", token))[0] == 503  # touches every account
    assert (await get(http, sim, "account/list", token))[0] == 200  # user-level, not per account
    body = {"accountId": bad}
    assert (await post(http, sim, "cashBalance/getcashbalancesnapshot", token, body))[0] == 503
    assert (await get(http, sim, "order/deps", token, masterid=good))[1]
    sock = await open_socket(http, sim.ws_url, token["accessToken"])
    assert (await sock.request("cashBalance/deps", f"masterid={bad}"))["s"] == 503
    sim.control.restore_account(bad)
    assert (await get(http, sim, "position/deps", token, masterid=bad))[0] == 200
    await sock.ws.close()


async def test_error_rate_spares_login_unless_targeted(
    http: aiohttp.ClientSession, sim: Simulator, token: Token
) -> None:
    sim.control.set_error_rate(1.0, status=503)
    async with http.get(f"{sim.rest_url}/account/list", headers={"Authorization": "x"}) as r:
        assert r.status == 401  # auth comes first
    assert (await get(http, sim, "account/list", token))[0] == 503
    assert "accessToken" in await login(http, sim)
    sim.control.set_error_rate(1.0, status=500, endpoint="auth/accesstokenrequest")
    async with http.post(f"{sim.rest_url}/auth/accesstokenrequest", json=sim.credentials) as r:
        assert r.status == 500
    sim.control.clear_faults()
    assert (await get(http, sim, "account/list", token))[0] == 200
    sim.control.set_error_rate(0.5, status=500, endpoint="order/list")
    statuses = {(await get(http, sim, "order/list", token))[0] for _ in range(40)}
    assert statuses == {200, 500}


async def test_timeouts_hang_until_cleared(
    http: aiohttp.ClientSession, sim: Simulator, token: Token
) -> None:
    sim.control.set_timeout(endpoint="position/list", count=1)
    url = f"{sim.rest_url}/position/list"
    headers = {"Authorization": f"Bearer {token['accessToken']}"}
    with pytest.raises(asyncio.TimeoutError):
        async with http.get(url, headers=headers, timeout=aiohttp.ClientTimeout(total=0.3)):
            pass
    assert (await get(http, sim, "position/list", token))[0] == 200  # count used up
    sim.control.set_timeout(account_id=sim.control.account_ids()[0])
    hung = asyncio.create_task(
        get(http, sim, "position/deps", token, masterid=sim.control.account_ids()[0])
    )
    await asyncio.sleep(0.2)
    assert not hung.done()
    sim.control.clear_faults()
    status, body = await asyncio.wait_for(hung, 5)
    assert status == 200 and body


async def test_counters_and_reset(
    http: aiohttp.ClientSession, sim: Simulator, token: Token
) -> None:
    sock = await open_socket(http, sim.ws_url, token["accessToken"])
    await sock.request("user/syncrequest", body={"users": [token["userId"]]})
    md = await open_socket(http, sim.md_ws_url, token["mdAccessToken"])
    await get(http, sim, "position/ldeps", token, masterids=sim.control.account_ids()[0])
    status, counters = await _admin_get(http, sim, "counters")
    assert status == 200
    result = counters["result"]
    assert result["calls"]["auth/accesstokenrequest"] == 1
    assert result["calls"]["position/ldeps"] == 1
    assert result["calls"]["ws:user/syncrequest"] == 1
    assert result["calls"]["ws:authorize"] == 1 and result["calls"]["md:authorize"] == 1
    assert result["sockets"] == {"user": 1, "md": 1} and result["sessions"] == 1
    assert result["synced_sockets"] == 1
    assert (await _admin(http, sim, "reset_counters"))[0] == 200
    assert sim.control.counters()["calls"] == {}
    await sock.ws.close()
    await md.ws.close()


async def test_scripted_activity_and_the_event_log(
    http: aiohttp.ClientSession, sim: Simulator, token: Token
) -> None:
    account_id = sim.control.account_ids()[0]
    status, placed = await _admin(
        http, sim, "place_order", account_id=account_id, symbol="ESZ6", action="Sell", qty=2,
        price=sim.control.price("ESZ6") + 5,
    )  # fmt: skip
    assert status == 200
    order_id = placed["result"]
    log = (await _admin_get(http, sim, "event_log"))[1]["result"]
    assert [e["seq"] for e in log] == list(range(1, len(log) + 1))
    kinds = {(e["entityType"], e["eventType"]) for e in log}
    assert ("order", "Created") in kinds and ("orderVersion", "Created") in kinds
    assert all(account_id in e["accountIds"] for e in log)
    last = log[-1]["seq"]
    fill = await _admin(http, sim, "fill_order", order_id=order_id)
    assert fill[0] == 200
    since = (await _admin_get(http, sim, "event_log", since=last))[1]["result"]
    assert since[0]["seq"] == last + 1
    assert {e["entityType"] for e in since} >= {"fill", "order", "position"}
    limited = (await _admin_get(http, sim, "event_log", since=0, limit=2))[1]["result"]
    assert [e["seq"] for e in limited] == [1, 2]
    assert (await _admin(http, sim, "cancel_order", order_id=order_id))[0] == 400  # filled
    moved = await _admin(http, sim, "move_price", symbol_or_contract_id="ESZ6", price=6100.1)
    assert moved == (200, {"result": 6100.0})  # snapped to the tick grid
    assert (await _admin(http, sim, "random_activity", count=5))[0] == 200


async def test_background_activity_rate(
    http: aiohttp.ClientSession, sim: Simulator, token: Token
) -> None:
    start = sim.control.last_seq()
    assert (await _admin(http, sim, "set_activity", rate_per_s=200))[0] == 200
    for _ in range(100):
        await asyncio.sleep(0.02)
        if sim.control.counters()["activity_actions"] >= 10:
            break
    sim.control.set_activity(0)
    assert sim.control.counters()["activity_actions"] >= 10
    assert sim.control.last_seq() > start
    await asyncio.sleep(0.05)
    settled = sim.control.counters()["activity_actions"]
    await asyncio.sleep(0.1)
    assert sim.control.counters()["activity_actions"] == settled  # stopped


async def test_closing_an_account_upstream(
    http: aiohttp.ClientSession, sim: Simulator, token: Token
) -> None:
    account_id = sim.control.account_ids()[-1]
    sock = await open_socket(http, sim.ws_url, token["accessToken"])
    await sock.request("user/syncrequest", body={"users": [token["userId"]]})
    status, _ = await _admin(http, sim, "set_account_active", account_id=account_id, active=False)
    assert status == 200
    event = (await sock.props(1))[0]
    assert event["d"]["entityType"] == "account" and event["d"]["eventType"] == "Updated"
    listed = {a["id"]: a for a in (await get(http, sim, "account/list", token))[1]}
    assert listed[account_id]["active"] is False
    await sock.ws.close()
