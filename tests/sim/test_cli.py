"""The tradovate-sim console script: --help, and a real process serving until SIGTERM."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import sys
from pathlib import Path

import aiohttp

FLAGS = (
    "--host", "--port", "--md-port", "--accounts", "--seed", "--token-ttl", "--heartbeat",
    "--client-timeout", "--price-interval", "--activity-rate", "--props-arrays", "--latency-ms",
    "--jitter-ms", "--error-rate", "--error-status", "--no-endpoint-limits", "--user-limit",
    "--users", "--ip-limit",
)  # fmt: skip


def _command() -> list[str]:
    script = shutil.which("tradovate-sim") or str(Path(sys.executable).parent / "tradovate-sim")
    if os.path.exists(script):
        return [script]
    return [sys.executable, "-m", "trading_gateway.simulator.cli"]


async def test_help_documents_every_option() -> None:
    proc = await asyncio.create_subprocess_exec(
        *_command(), "--help", stdout=asyncio.subprocess.PIPE
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 0
    text = out.decode()
    for flag in FLAGS:
        assert flag in text, flag


async def test_process_serves_and_stops_on_sigterm() -> None:
    proc = await asyncio.create_subprocess_exec(
        *_command(), "--port", "0", "--accounts", "3", "--seed", "5", "--price-interval", "0",
        "--log-level", "WARNING",
        stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        ready = json.loads(await asyncio.wait_for(proc.stdout.readline(), 30))
        assert ready["rest_url"].startswith("http://127.0.0.1:")
        async with aiohttp.ClientSession() as http:
            body = {"name": "sim-user", "password": "sim-pass", "cid": "8", "sec": "x"}
            async with http.post(f"{ready['rest_url']}/auth/accesstokenrequest", json=body) as r:
                token = await r.json()
            headers = {"Authorization": f"Bearer {token['accessToken']}"}
            async with http.get(f"{ready['rest_url']}/account/list", headers=headers) as r:
                assert len(await r.json()) == 3
            async with http.get(f"{ready['admin_url']}/counters") as r:
                counters = (await r.json())["result"]
            assert counters["calls"]["account/list"] == 1
            async with http.ws_connect(ready["md_ws_url"]) as ws:
                assert (await ws.receive_str()) == "o"
    finally:
        proc.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(proc.wait(), 30)
    assert code == 0


async def test_process_serves_several_users() -> None:
    proc = await asyncio.create_subprocess_exec(
        *_command(), "--users", "3", "--accounts", "2", "--user", "desk", "--password", "pw",
        "--price-interval", "0", "--log-level", "WARNING",
        stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        ready = json.loads(await asyncio.wait_for(proc.stdout.readline(), 30))
        assert ready["users"] == ["desk-1", "desk-2", "desk-3"] and ready["accounts"] == 6
        async with aiohttp.ClientSession() as http:
            body = {"name": "desk-2", "password": "pw-2", "cid": "8", "sec": "x"}
            async with http.post(f"{ready['rest_url']}/auth/accesstokenrequest", json=body) as r:
                token = await r.json()
            headers = {"Authorization": f"Bearer {token['accessToken']}"}
            async with http.get(f"{ready['rest_url']}/account/list", headers=headers) as r:
                listed = await r.json()
            assert len(listed) == 2 and {a["userId"] for a in listed} == {token["userId"]}
            async with http.get(f"{ready['admin_url']}/user_counters") as r:
                users = (await r.json())["result"]
            assert users["desk-2"]["sessions"] == 1 and users["desk-1"]["sessions"] == 0
    finally:
        proc.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(proc.wait(), 30)
    assert code == 0
