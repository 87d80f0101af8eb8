"""Auth: token request, bad credentials, login penalties, renewal, expiry, the session cap."""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any

import aiohttp

from tests.sim.conftest import config
from tests.sim.helpers import ISO_MS, TOKEN_FIELDS, bearer, get, login, open_socket
from trading_gateway.simulator import Simulator


async def _token_request(
    http: aiohttp.ClientSession, sim: Simulator, **changes: Any
) -> tuple[int, dict[str, Any]]:
    body = {**sim.credentials, **changes}
    async with http.post(f"{sim.rest_url}/auth/accessTokenRequest", json=body) as r:
        return r.status, await r.json()


async def test_login_returns_the_documented_fields(
    http: aiohttp.ClientSession, sim: Simulator
) -> None:
    status, body = await _token_request(http, sim)
    assert status == 200
    assert body.keys() >= TOKEN_FIELDS
    assert "errorText" not in body
    assert body["name"] == "sim-user"
    assert body["userStatus"] == "Active"
    assert isinstance(body["userId"], int) and body["hasLive"] is False
    assert ISO_MS.match(body["expirationTime"])
    expires = dt.datetime.fromisoformat(body["expirationTime"].replace("Z", "+00:00"))
    lifetime = expires - dt.datetime.now(dt.UTC)
    assert dt.timedelta(minutes=79) < lifetime <= dt.timedelta(minutes=80)
    assert body["accessToken"] != body["mdAccessToken"]


async def test_cid_may_be_a_number_or_a_string(http: aiohttp.ClientSession, sim: Simulator) -> None:
    for cid in (8, "8", 0):
        status, body = await _token_request(http, sim, cid=cid)
        assert status == 200 and "accessToken" in body


async def test_bad_credentials_get_200_with_error_text(
    http: aiohttp.ClientSession, sim: Simulator
) -> None:
    status, body = await _token_request(http, sim, password="wrong")
    assert status == 200
    assert body["errorText"].startswith("Incorrect username or password")
    assert "accessToken" not in body


async def test_repeated_failures_get_a_captcha_penalty(
    http: aiohttp.ClientSession, sim: Simulator
) -> None:
    for _ in range(5):
        _, body = await _token_request(http, sim, password="wrong")
        assert "errorText" in body
    status, body = await _token_request(http, sim, password="wrong")
    assert status == 200
    assert set(body) == {"p-ticket", "p-time", "p-captcha"}
    assert body["p-captcha"] is True and body["p-time"] == 15
    # Even the right password is refused while the penalty holds, and the ticket cannot help.
    _, again = await _token_request(http, sim, **{"p-ticket": body["p-ticket"]})
    assert again["p-captcha"] is True
    sim.control.reset_limits()
    _, ok = await _token_request(http, sim)
    assert "accessToken" in ok


async def test_malformed_login_body_is_a_400(http: aiohttp.ClientSession, sim: Simulator) -> None:
    url = f"{sim.rest_url}/auth/accesstokenrequest"
    async with http.post(url, data=b"{not json", headers={"Content-Type": "application/json"}) as r:
        assert r.status == 400
    async with http.post(url, json=[1, 2]) as r:
        assert r.status == 400


async def test_renewal_gives_a_new_token_and_a_later_expiry(
    http: aiohttp.ClientSession, sim: Simulator, token: dict[str, Any]
) -> None:
    await asyncio.sleep(0.01)
    async with http.get(f"{sim.rest_url}/auth/renewAccessToken", headers=bearer(token)) as r:
        assert r.status == 200
        renewed = await r.json()
    assert renewed["accessToken"] != token["accessToken"]
    assert renewed["expirationTime"] > token["expirationTime"]
    status, _ = await get(http, sim, "account/list", renewed)
    assert status == 200
    assert sim.control.counters()["sessions"] == 1  # renewal extends, never adds, a session


async def test_missing_unknown_and_expired_tokens_get_401(http: aiohttp.ClientSession) -> None:
    async with Simulator(config(token_ttl=0.3)).running() as sim:
        async with http.get(f"{sim.rest_url}/position/list") as r:
            assert r.status == 401
        async with http.get(f"{sim.rest_url}/position/list", headers=bearer("nope")) as r:
            assert r.status == 401
        token = await login(http, sim)
        assert (await get(http, sim, "position/list", token))[0] == 200
        await asyncio.sleep(0.4)
        assert (await get(http, sim, "position/list", token))[0] == 401
        async with http.get(f"{sim.rest_url}/auth/renewaccesstoken", headers=bearer(token)) as r:
            assert r.status == 401  # an expired token cannot be renewed


async def test_expire_tokens_control(
    http: aiohttp.ClientSession, sim: Simulator, token: dict[str, Any]
) -> None:
    assert sim.control.expire_tokens() >= 1
    assert (await get(http, sim, "account/list", token))[0] == 401


async def test_a_third_login_revokes_the_oldest_session(
    http: aiohttp.ClientSession, sim: Simulator
) -> None:
    first = await login(http, sim)
    sock = await open_socket(http, sim.ws_url, first["accessToken"])
    second = await login(http, sim)
    assert sim.control.counters()["sessions"] == 2
    third = await login(http, sim)
    assert sim.control.counters()["sessions"] == 2
    assert (await get(http, sim, "account/list", first))[0] == 401
    assert (await get(http, sim, "account/list", second))[0] == 200
    assert (await get(http, sim, "account/list", third))[0] == 200
    await sock.closed()  # sockets of the revoked session are closed too
    assert sock.frames[-1].startswith("c")
    await sock.ws.close()
