"""`trading-gateway serve` and the console script's dispatch, as real subprocesses."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import SecretStr

from tests.api.test_grpcurl import grpcurl
from tests.conftest import free_port
from trading_gateway.server.config import GatewaySettings, load_settings
from trading_gateway.simulator import SimConfig, Simulator

pytestmark = pytest.mark.timeout(90)

CLI = str(Path(sys.executable).parent / "trading-gateway")


def _clean_env() -> dict[str, str]:
    drop = ("TRADOVATE_", "GATEWAY_", "REDIS_URL")
    return {k: v for k, v in os.environ.items() if not k.startswith(drop)}


def test_help_lists_server_and_client_commands() -> None:
    out = subprocess.run([CLI, "--help"], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0
    for word in ("serve", "demo", "positions", "balances"):
        assert word in out.stdout


def test_serve_without_credentials_names_the_missing_variables() -> None:
    env = _clean_env()
    env["GATEWAY_METRICS_PORT"] = "0"
    out = subprocess.run([CLI, "serve"], capture_output=True, text=True, timeout=30, env=env)
    assert out.returncode == 2
    assert "TRADOVATE_USERNAME" in out.stderr and "TRADOVATE_PASSWORD" in out.stderr


def test_bad_settings_are_reported_without_a_traceback() -> None:
    env = {**_clean_env(), "GATEWAY_TTL_POSITIONS_S": "-1"}
    out = subprocess.run([CLI, "serve"], capture_output=True, text=True, timeout=30, env=env)
    assert out.returncode == 2
    # One line naming the environment variable and its value.
    assert out.stderr.count("\n") == 1
    assert "GATEWAY_TTL_POSITIONS_S=-1: Input should be greater than 0" in out.stderr
    assert "Traceback" not in out.stderr


def test_other_commands_go_to_the_client() -> None:
    address = f"127.0.0.1:{free_port()}"
    out = subprocess.run(
        [CLI, "accounts", "--address", address, "--timeout", "1", "--retries", "0"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert out.returncode == 1
    assert f"cannot reach the gateway at {address}" in out.stderr


def test_settings_keep_secrets_out_of_their_repr(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRADOVATE_PASSWORD", "hunter2")
    monkeypatch.setenv("TRADOVATE_SECRET", "s3cr3t")
    monkeypatch.setenv("GATEWAY_TTL_BALANCES_S", "3.5")
    monkeypatch.setenv("REDIS_URL", "redis://:r3dis-pw@127.0.0.1:6379/0")
    settings = load_settings(listen="127.0.0.1:6000", metrics_port=None)
    assert isinstance(settings.tradovate_password, SecretStr)
    assert "hunter2" not in repr(settings) and "s3cr3t" not in repr(settings)
    assert "r3dis-pw" not in repr(settings) and settings.redis_url is not None
    assert settings.ttl_balances_s == 3.5
    assert settings.listen == "127.0.0.1:6000"  # flags win over the environment
    assert settings.metrics_port == 9464  # None flags fall through to the default
    with pytest.raises(ValueError):
        GatewaySettings(listen="nope")


def test_a_rest_override_without_an_md_override_is_called_out() -> None:
    pointed = load_settings(tradovate_url="http://127.0.0.1:8600/v1")
    warning = pointed.md_url_warning()
    assert warning is not None and "TRADOVATE_MD_URL" in warning
    both = load_settings(
        tradovate_url="http://127.0.0.1:8600/v1", tradovate_md_url="ws://127.0.0.1:8601/v1/ws"
    )
    assert both.md_url_warning() is None
    assert load_settings().md_url_warning() is None  # the real hosts, nothing overridden


async def test_serve_runs_against_the_configured_tradovate_and_stops_on_sigterm() -> None:
    async with Simulator(SimConfig(accounts=2, seed=7)).running() as sim:
        creds = sim.credentials
        address = f"127.0.0.1:{free_port()}"
        env = {
            **_clean_env(),
            "TRADOVATE_URL": sim.rest_url,
            "TRADOVATE_MD_URL": sim.md_ws_url,
            "TRADOVATE_USERNAME": str(creds["name"]),
            "TRADOVATE_PASSWORD": str(creds["password"]),
            "TRADOVATE_APP_ID": str(creds["appId"]),
            "TRADOVATE_APP_VERSION": str(creds["appVersion"]),
            "TRADOVATE_CID": str(creds["cid"]),
            "TRADOVATE_SECRET": str(creds["sec"]),
            "GATEWAY_LISTEN": address,
        }
        proc = await asyncio.create_subprocess_exec(
            CLI,
            "serve",
            "--metrics-port",
            "0",
            "--log-format",
            "json",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=env,
        )
        try:
            body = json.dumps({"service": "tradovate_gateway.v1.TradingService"})
            async with asyncio.timeout(30):
                while True:
                    code, out, _ = await grpcurl(
                        "-plaintext", "-d", body, address, "grpc.health.v1.Health/Check"
                    )
                    if code == 0 and json.loads(out)["status"] == "SERVING":
                        break
                    await asyncio.sleep(0.2)
            code, out, err = await grpcurl(
                "-plaintext", "-d", "{}", address, "tradovate_gateway.v1.TradingService/GetBalances"
            )
            assert code == 0, err
            assert json.loads(out)["totals"]["accounts_included"] == 2
            proc.send_signal(signal.SIGTERM)
            async with asyncio.timeout(20):
                assert await proc.wait() == 0
            assert proc.stderr is not None
            logs = (await proc.stderr.read()).decode()
            lines = [json.loads(line) for line in logs.splitlines() if line.startswith("{")]
            assert any(line["msg"] == "gateway stopped" for line in lines)
            assert str(creds["password"]) not in logs and str(creds["sec"]) not in logs
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
