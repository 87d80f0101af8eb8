"""A wrong TRADOVATE_URL: named with the full URL, fatal when it answers but not as Tradovate.

Against the simulator at a wrong path (404 on the login), a web server answering HTML,
and a dead port. The first two stop start-up after a few attempts (exit 2 for `serve`);
the dead port is retried, and callers are told why they wait.
"""

from __future__ import annotations

import asyncio
import os
import pathlib
import sys
from collections.abc import AsyncIterator

import grpc
import pytest
from aiohttp import web
from tradovate_gateway.v1 import trading_pb2 as pb
from tradovate_gateway.v1 import trading_pb2_grpc as pb_grpc

from tests.conftest import free_port
from tests.support.stack import running_gateway, settings_for
from trading_gateway.server.login import LOGIN_MISCONFIGURED_ATTEMPTS, FatalStartupError
from trading_gateway.simulator import SimConfig, Simulator

REPO = pathlib.Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _quick_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("trading_gateway.server.login.LOGIN_RETRY_INITIAL", 0.1)


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    async with Simulator(SimConfig(accounts=2, seed=7)).running(host="127.0.0.1", port=0) as s:
        yield s


@pytest.fixture
async def html_site() -> AsyncIterator[str]:
    """A web server that answers every path with an HTML page (200)."""

    async def page(request: web.Request) -> web.Response:
        return web.Response(text="<html><body>Welcome</body></html>", content_type="text/html")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", page)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        await runner.cleanup()


async def fatal_message(sim: Simulator, url: str) -> str:
    settings = settings_for(sim, tradovate_url=url, live_enabled=False)
    async with running_gateway(settings, ready=False) as gateway:
        async with asyncio.timeout(20):
            with pytest.raises(FatalStartupError) as caught:
                await gateway.failed
    return str(caught.value)


async def test_a_wrong_path_is_a_configuration_error(
    sim: Simulator, caplog: pytest.LogCaptureFixture
) -> None:
    wrong = sim.rest_url.removesuffix("/v1") + "/api/v2"
    logins_before = sim.control.counters()["calls"].get("auth/accesstokenrequest", 0)
    message = await fatal_message(sim, wrong)
    assert f"{wrong}/auth/accesstokenrequest answers, but not as Tradovate's login" in message
    assert "404 Not Found" in message
    assert "set TRADOVATE_URL to Tradovate's REST base ending in /v1" in message
    assert f"after {LOGIN_MISCONFIGURED_ATTEMPTS} attempts" in message
    # The simulator's real login was never reached.
    assert sim.control.counters()["calls"].get("auth/accesstokenrequest", 0) == logins_before
    assert all(r.exc_info is None for r in caplog.records)


async def test_an_html_answer_is_a_configuration_error(sim: Simulator, html_site: str) -> None:
    message = await fatal_message(sim, html_site)
    assert f"{html_site}/auth/accesstokenrequest answers, but not as Tradovate's login" in message
    assert "undecodable answer" in message
    assert "TRADOVATE_URL" in message


async def test_a_dead_port_is_retried_and_callers_are_told_why(sim: Simulator) -> None:
    dead = f"http://127.0.0.1:{free_port()}/v1"
    settings = settings_for(sim, tradovate_url=dead, live_enabled=False)
    async with (
        running_gateway(settings, ready=False) as gateway,
        grpc.aio.insecure_channel(gateway.address) as channel,
    ):
        stub = pb_grpc.TradingServiceStub(channel)
        # Past the attempts after which a misconfigured URL would have stopped start-up.
        await asyncio.sleep(0.1 * (2**LOGIN_MISCONFIGURED_ATTEMPTS))
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stub.ListAccounts(pb.ListAccountsRequest(), timeout=5)
        assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
        details = caught.value.details() or ""
        assert "the gateway is still logging in to Tradovate" in details
        assert f"cannot reach {dead}/auth/accesstokenrequest" in details
        assert "looks transient" in details
        assert "check TRADOVATE_URL" in details
        assert not gateway.failed.done()


async def test_serve_exits_2_naming_the_url(sim: Simulator) -> None:
    """The real process against the simulator at a wrong path."""
    wrong = sim.rest_url.removesuffix("/v1") + "/nope"
    creds = sim.credentials
    env = {
        "PATH": os.environ.get("PATH", ""),
        "TRADOVATE_URL": wrong,
        "TRADOVATE_USERNAME": str(creds["name"]),
        "TRADOVATE_PASSWORD": str(creds["password"]),
        "TRADOVATE_APP_ID": str(creds["appId"]),
        "TRADOVATE_CID": str(creds["cid"]),
        "TRADOVATE_SECRET": str(creds["sec"]),
        "GATEWAY_LISTEN": "127.0.0.1:0",
        "GATEWAY_METRICS_PORT": "0",
        "GATEWAY_LIVE_ENABLED": "false",
    }
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "trading_gateway.server",
        "serve",
        env=env,
        cwd=REPO,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        async with asyncio.timeout(40):
            _, err = await proc.communicate()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    text = err.decode()
    assert proc.returncode == 2, text
    assert "Traceback" not in text
    assert f"stopping: {wrong}/auth/accesstokenrequest answers, but not as Tradovate" in text
    assert "TRADOVATE_URL" in text
    assert str(creds["password"]) not in text
