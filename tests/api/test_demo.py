"""`trading-gateway demo` as a real subprocess: prints what to try, serves it, stops cleanly."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import sys
from pathlib import Path

import pytest

from tests.api.test_grpcurl import grpcurl
from tests.conftest import free_port

pytestmark = pytest.mark.timeout(90)

CLI = str(Path(sys.executable).parent / "trading-gateway")
READY_LINE = "Press Ctrl-C to stop."
SERVICE = "tradovate_gateway.v1.TradingService"


async def start_demo(*args: str) -> asyncio.subprocess.Process:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TRADOVATE_", "GATEWAY_"))}
    env.pop("REDIS_URL", None)
    return await asyncio.create_subprocess_exec(
        CLI,
        "demo",
        "--metrics-port",
        "0",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )


async def read_until_ready(proc: asyncio.subprocess.Process) -> list[str]:
    assert proc.stdout is not None
    lines: list[str] = []
    async with asyncio.timeout(30):
        while True:
            raw = await proc.stdout.readline()
            if not raw:
                err = await proc.stderr.read() if proc.stderr else b""
                raise AssertionError(f"demo ended early:\n{''.join(lines)}\n{err.decode()}")
            lines.append(raw.decode())
            if raw.decode().strip() == READY_LINE:
                return lines


async def test_demo_prints_working_commands_and_exits_after_duration() -> None:
    address = f"127.0.0.1:{free_port()}"
    proc = await start_demo("--duration", "4", "--listen", address)
    try:
        printed = "".join(await read_until_ready(proc))
        assert "4 accounts" in printed
        assert f"grpcurl -plaintext {address} list" in printed
        assert f"{address} grpc.health.v1.Health/Check" in printed
        assert f"trading-gateway positions --address {address}" in printed

        code, out, err = await grpcurl(
            "-plaintext",
            "-d",
            json.dumps({"service": "tradovate_gateway.v1.TradingService"}),
            address,
            "grpc.health.v1.Health/Check",
        )
        assert code == 0, err
        assert json.loads(out)["status"] == "SERVING"

        client = await asyncio.create_subprocess_exec(
            CLI,
            "accounts",
            "--address",
            address,
            "--json",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out_bytes, err_bytes = await asyncio.wait_for(client.communicate(), timeout=30)
        assert client.returncode == 0, err_bytes.decode()
        assert len(json.loads(out_bytes)["accounts"]) == 4

        async with asyncio.timeout(30):
            assert await proc.wait() == 0
        assert proc.stdout is not None
        rest = (await proc.stdout.read()).decode()
        assert "stopping the demo" in rest
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def test_demo_stops_cleanly_on_sigterm() -> None:
    proc = await start_demo("--listen", f"127.0.0.1:{free_port()}")
    try:
        await read_until_ready(proc)
        proc.send_signal(signal.SIGTERM)
        async with asyncio.timeout(20):
            assert await proc.wait() == 0
        assert proc.stderr is not None
        err = (await proc.stderr.read()).decode()
        assert "gateway stopped" in err
        assert "Traceback" not in err
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def test_demo_says_clearly_when_the_port_is_busy() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        proc = await start_demo("--duration", "5", "--listen", f"127.0.0.1:{port}")
        async with asyncio.timeout(30):
            _, err = await proc.communicate()
    assert proc.returncode == 2
    message = err.decode()
    assert f"GATEWAY_LISTEN (--listen)=127.0.0.1:{port}: cannot listen there" in message
    assert "--listen" in message
    assert "Traceback" not in message


async def test_demo_with_three_logins_answers_for_every_login() -> None:
    address = f"127.0.0.1:{free_port()}"
    proc = await start_demo(
        "--logins", "3", "--accounts", "2", "--duration", "30", "--listen", address
    )
    try:
        printed = await read_until_ready(proc)
        text = "".join(printed)
        assert "3 logins, 6 accounts" in text, text
        assert all(len(line.rstrip("\n")) <= 80 for line in printed), text
        logins_file = Path(text.split("logins:")[1].split()[0])
        assert await asyncio.to_thread(logins_file.is_file)

        code, out, err = await grpcurl("-plaintext", "-d", "{}", address, f"{SERVICE}/ListAccounts")
        assert code == 0, err
        by_login: dict[str, list[str]] = {}
        for account in json.loads(out)["accounts"]:
            by_login.setdefault(account["login"], []).append(account["name"])
        assert sorted(by_login) == ["desk-1", "desk-2", "desk-3"]
        assert all(len(names) == 2 for names in by_login.values())
        for login, names in by_login.items():  # what the demo printed for each login
            assert f"{login} (demo-trader-{login[-1]}): {' '.join(sorted(names))}" in text

        chosen = f"desk-2/{sorted(by_login['desk-2'])[0]}"
        body = json.dumps({"selector": {"accounts": [chosen]}})
        code, out, err = await grpcurl("-plaintext", "-d", body, address, f"{SERVICE}/GetPositions")
        assert code == 0, err
        [only] = json.loads(out)["accounts"]
        assert (only["meta"]["login"], only["meta"]["account_name"]) == tuple(chosen.split("/"))

        health = json.dumps({"service": "tradovate_gateway.login.desk-3"})
        code, out, err = await grpcurl(
            "-plaintext", "-d", health, address, "grpc.health.v1.Health/Check"
        )
        assert code == 0, err
        assert json.loads(out)["status"] == "SERVING"

        proc.send_signal(signal.SIGTERM)
        async with asyncio.timeout(30):
            assert await proc.wait() == 0
        assert not await asyncio.to_thread(logins_file.exists)  # gone with the demo
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
