"""A login of the logins file whose url is wrong: its messages name that login and its
entry in the file, never TRADOVATE_URL (which did not choose the URL), and only its own
accounts are affected. The TRADOVATE_* shorthand keeps its wording (tests/api/test_login_url.py).

Real gateway from a real logins file, the simulator over HTTP, real gRPC."""

from __future__ import annotations

import asyncio
import logging
import pathlib

import grpc
import pytest
from tradovate_gateway.v1 import trading_pb2 as pb
from tradovate_gateway.v1 import trading_pb2_grpc as pb_grpc

from tests.conftest import free_port
from tests.logins.test_isolation import wait_for
from tests.support.secret_scan import register_secret
from tests.support.stack import running_gateway, settings_for
from trading_gateway.server.config import GatewaySettings
from trading_gateway.server.login import LOGIN_MISCONFIGURED_ATTEMPTS, FatalStartupError
from trading_gateway.server.login_problem import url_origin
from trading_gateway.server.logins.load import SHORTHAND_FIELDS
from trading_gateway.server.logins.runtime import LoginState
from trading_gateway.simulator import SimConfig, Simulator
from trading_gateway.simulator.config import numbered_users

SECRET_ENV = "TG_TEST_LOGIN_URL_SECRET"


@pytest.fixture(autouse=True)
def _quick_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("trading_gateway.server.login.LOGIN_RETRY_INITIAL", 0.1)


def logins_file(tmp_path: pathlib.Path, sim: Simulator, urls: dict[str, str | None]) -> str:
    """A logins file with one login per simulator user (desk-1 for the first), each with
    the url given (None: none of its own) and its password in a file."""
    tables = []
    for n, (name, url) in enumerate(urls.items(), 1):
        creds = sim.credentials_for(f"sim-user-{n}")
        register_secret(str(creds["password"]))
        password = tmp_path / f"{name}.password"
        password.write_text(str(creds["password"]))
        table = [
            "[[login]]",
            f'name = "{name}"',
            f'username = "sim-user-{n}"',
            f'password_file = "{password}"',
            f'secret_env = "{SECRET_ENV}"',
            f'app_id = "{creds["appId"]}"',
            f"cid = {creds['cid']}",
        ]
        if url is not None:
            table.append(f'url = "{url}"')
        tables.append("\n".join(table))
    path = tmp_path / "logins.toml"
    path.write_text("\n\n".join(tables) + "\n")
    return str(path)


def from_file(sim: Simulator, path: str) -> GatewaySettings:
    """Settings pointed at ``sim`` (TRADOVATE_URL is its REST URL) with the logins file."""
    settings = settings_for(sim, live_enabled=False)
    unset = dict.fromkeys(SHORTHAND_FIELDS)
    return settings.model_copy(update={**unset, "logins_file": path})


async def test_a_file_logins_wrong_url_names_the_login_and_its_entry(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    config = SimConfig(users=numbered_users(3, 2), seed=7, price_interval=0.0)
    async with Simulator(config).running(host="127.0.0.1", port=0) as sim:
        monkeypatch.setenv(SECRET_ENV, str(sim.credentials["sec"]))
        register_secret(str(sim.credentials["sec"]))
        wrong = sim.rest_url.removesuffix("/v1") + "/api/v2"
        dead = f"http://127.0.0.1:{free_port()}/v1"
        path = logins_file(tmp_path, sim, {"desk-1": None, "desk-2": dead, "desk-3": wrong})
        caplog.set_level(logging.WARNING, logger="trading_gateway.server.login")
        async with (
            running_gateway(from_file(sim, path), ready=False) as gateway,
            grpc.aio.insecure_channel(gateway.address) as channel,
        ):
            stub = pb_grpc.TradingServiceStub(channel)
            desk2, desk3 = gateway.logins["desk-2"], gateway.logins["desk-3"]
            async with asyncio.timeout(20):
                await gateway.logins["desk-1"].ready.wait()
            await wait_for(lambda: desk3.state is LoginState.FAILED)

            # Answers, but not as Tradovate: desk-3 stops trying; the gateway goes on.
            assert isinstance(desk3.why, FatalStartupError)
            message = str(desk3.why)
            assert f"{wrong}/auth/accesstokenrequest answers, but not as Tradovate's login" in (
                message
            )
            assert f"set the url of login 'desk-3' in GATEWAY_LOGINS_FILE ({path}) to " in (message)
            assert "TRADOVATE_URL" not in message
            assert f"after {LOGIN_MISCONFIGURED_ATTEMPTS} attempts" in message
            assert not gateway.failed.done()

            # No answer: desk-2 keeps trying, and callers are told whose url to check.
            await wait_for(lambda: "cannot reach" in str(desk2.unavailable()))
            listed = await stub.ListAccounts(pb.ListAccountsRequest(), timeout=5)
            assert {a.login for a in listed.accounts} == {"desk-1"}
            why = {u.login: u.status.message for u in listed.unavailable_logins}
            assert set(why) == {"desk-2", "desk-3"}
            assert f"cannot reach {dead}/auth/accesstokenrequest" in why["desk-2"]
            assert (
                f"check the url of login 'desk-2' in GATEWAY_LOGINS_FILE ({path})"
                in (why["desk-2"])
            )
            assert "set the url of login 'desk-3'" in why["desk-3"]
            assert all("TRADOVATE_URL" not in text for text in why.values()), why

            # The log names the login whose attempt failed.
            warned = [r.getMessage() for r in caplog.records if "failed: " in r.getMessage()]
            assert any(
                w.startswith("Tradovate login 'desk-2' failed: cannot reach") for w in warned
            )
            assert any(w.startswith("Tradovate login 'desk-3' failed: ") for w in warned)

            # desk-1 sets no url: it takes TRADOVATE_URL, and its messages would say so.
            inherited = url_origin(gateway.logins["desk-1"].spec, gateway.settings).setting
            assert inherited == (
                f"the url of login 'desk-1' in GATEWAY_LOGINS_FILE ({path}) "
                "(without one there or in [defaults]: TRADOVATE_URL)"
            )
