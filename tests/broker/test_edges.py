"""Answers the simulator never gives: undecodable JSON, 401 logins, odd token replies."""

from __future__ import annotations

import asyncio
import logging

import pytest

from tests.broker.conftest import client_settings, eventually
from tests.broker.scripted import ScriptedTradovate, scripted_settings
from trading_gateway.server.broker import (
    AuthError,
    CaptchaRequired,
    LockedOutError,
    ProtocolError,
    SyncStatus,
    TradovateClient,
)
from trading_gateway.server.broker.events import SyncEvent
from trading_gateway.simulator import Simulator


async def test_undecodable_json_is_a_protocol_error() -> None:
    async with ScriptedTradovate().running() as server:
        server.rest_replies["account/list"] = (200, b"<html>oops</html>")
        server.rest_replies["position/deps"] = (200, b'{"errorText": "not a list"}')
        server.rest_replies["order/deps"] = (400, b'"Bad masterid"')
        async with TradovateClient(scripted_settings(server)) as client:
            with pytest.raises(ProtocolError):
                await client.accounts()
            with pytest.raises(ProtocolError):
                await client.positions([1])
            with pytest.raises(ProtocolError) as info:
                await client.orders([1])
            assert "400" in str(info.value)


async def test_login_401_and_token_less_replies_are_auth_errors() -> None:
    async with ScriptedTradovate().running() as server:
        server.login_reply = (401, b'"Unauthorized"')
        client = TradovateClient(scripted_settings(server))
        with pytest.raises(AuthError) as info:
            await client.start()
        assert info.value.setting == "TRADOVATE_USERNAME/TRADOVATE_PASSWORD"
        server.login_reply = (200, b'{"userStatus": "TemporaryLocked"}')
        with pytest.raises(AuthError) as locked:
            await client.start()  # start may be retried after a failure
        assert "TemporaryLocked" in str(locked.value)
        server.login_reply = (200, b'{"errorText": "Invalid API key (sec/cid)"}')
        with pytest.raises(AuthError) as key:
            await client.start()
        assert key.value.setting == "TRADOVATE_CID/TRADOVATE_SECRET"
        server.login_reply = None
        await client.start()
        assert client.user_id == 1
        await client.aclose()
        assert server.logins == 4


async def test_a_423_on_login_stops_further_logins_until_the_lockout_ends() -> None:
    async with ScriptedTradovate().running() as server:
        server.login_reply = (423, b"")
        client = TradovateClient(scripted_settings(server))
        with pytest.raises(LockedOutError):
            await client.start()
        assert server.logins == 1
        server.login_reply = None  # Tradovate would accept again, but we must not ask yet
        with pytest.raises(LockedOutError):
            await client.start()
        assert server.logins == 1  # refused by the open circuit, not sent
        await client.aclose()


async def test_captcha_while_reconnecting_stops_the_stream_with_a_clear_error(
    sim: Simulator,
) -> None:
    async with TradovateClient(client_settings(sim)) as client:
        sync = client.user_sync()
        await sync.start()
        seen: list[SyncEvent] = []
        failure: list[BaseException] = []

        async def consume() -> None:
            try:
                async for event in sync.events():
                    seen.append(event)
            except CaptchaRequired as exc:
                failure.append(exc)

        task = asyncio.create_task(consume())
        await eventually(lambda: bool(seen))
        sim.control.expire_tokens()  # our token dies; the next login meets a captcha
        sim.control.penalize("auth/accesstokenrequest", count=10, p_time=60.0, captcha=True)
        sim.control.drop_sockets("user")
        await asyncio.wait_for(task, timeout=10)
        assert failure and isinstance(failure[0], CaptchaRequired)
        assert isinstance(seen[-1], SyncStatus) and "captcha" in seen[-1].reason
        await asyncio.sleep(0.3)
        logins = sim.control.counters()["calls"]["auth/accesstokenrequest"]
        assert logins == 2  # the first login, and the one captcha answer: no retry loop
        with pytest.raises(CaptchaRequired):
            await client.accounts()  # every later call says why, without calling out
        assert sim.control.counters()["calls"]["auth/accesstokenrequest"] == 2


async def test_secrets_never_reach_the_logs(
    sim: Simulator, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    async with TradovateClient(client_settings(sim, password=sim.config.password)) as client:
        sync = client.user_sync()
        await sync.start()
        md = client.market_data()
        await md.start()
        await md.subscribe(sim.control.contracts()[0]["id"])
        await client.accounts()
        sim.control.drop_sockets()
        await eventually(lambda: sync.connected and md.connected and sync.socket.connects > 1)
        token = client.token_manager.current
        assert token is not None
        secrets = [token.access_token, token.md_token, sim.config.password, "sim-secret"]
    assert caplog.text
    for secret in secrets:
        assert secret not in caplog.text


async def test_aclose_leaves_no_task_behind(sim: Simulator) -> None:
    client = TradovateClient(client_settings(sim))
    await client.start()
    await client.user_sync().start()
    await client.market_data().start()
    await client.contract_info([sim.control.contracts()[0]["id"]])
    names = {t.get_name() for t in asyncio.all_tasks()}
    assert {"tradovate-renewal", "tradovate-user-sync", "tradovate-market-data"} <= names
    await client.aclose()
    left = [t for t in asyncio.all_tasks() if t.get_name().startswith("tradovate-")]
    assert left == []
    assert client.closed
