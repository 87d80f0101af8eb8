"""`trading-gateway demo --replicas 3` as a real subprocess: its banner fits 80x24 and
names three gateways that each answer, one of them the session's holder (the kill
command's pid); a killed holder is replaced and its gateway started again; SIGINT stops
the demo with exit 0 and leaves no process behind (gateways, Redis)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import socket
import sys
from pathlib import Path

import grpc
import pytest
from tradovate_gateway.v1 import trading_pb2 as pb
from tradovate_gateway.v1 import trading_pb2_grpc as pb_grpc

from tests.api.test_demo import READY_LINE

pytestmark = pytest.mark.timeout(150)

CLI = str(Path(sys.executable).parent / "trading-gateway")
GATEWAY = re.compile(r"^  gateway (\d): (\S+)  pid (\d+)(  holds the session)?$")


def descendants(root: int) -> set[int]:
    """Every process below ``root`` now, from /proc."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        with contextlib.suppress(OSError):
            stat = Path(f"/proc/{entry}/stat").read_text()
            parent = int(stat.rpartition(")")[2].split()[1])
            children.setdefault(parent, []).append(int(entry))
    found: set[int] = set()
    todo = [root]
    while todo:
        for child in children.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except OSError:
        return False
    return state != "Z"


async def answers(address: str) -> int:
    async with grpc.aio.insecure_channel(address) as channel:
        stub = pb_grpc.TradingServiceStub(channel)
        reply = await stub.ListAccounts(pb.ListAccountsRequest(), timeout=5)
    return len(reply.accounts)


async def read_line(proc: asyncio.subprocess.Process, within: float) -> str:
    assert proc.stdout is not None
    async with asyncio.timeout(within):
        raw = await proc.stdout.readline()
    assert raw, "the demo ended"
    return raw.decode().rstrip("\n")


async def test_demo_with_three_replicas_answers_on_each_and_stops_without_orphans(
    tmp_path: Path,
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TRADOVATE_", "GATEWAY_"))}
    env.pop("REDIS_URL", None)
    with (tmp_path / "stderr.log").open("wb") as stderr:
        proc = await asyncio.create_subprocess_exec(
            CLI,
            "demo",
            "--replicas",
            "3",
            "--listen",
            "127.0.0.1:0",
            "--activity-rate",
            "0",
            stdout=asyncio.subprocess.PIPE,
            stderr=stderr,
            env=env,
        )
    started: set[int] = set()
    try:
        banner: list[str] = []
        while not banner or banner[-1] != READY_LINE:
            banner.append(await read_line(proc, 90))
        assert all(len(line) <= 80 for line in banner), banner
        assert len(banner) <= 22, banner
        gateways = [m for line in banner if (m := GATEWAY.match(line))]
        assert [m[1] for m in gateways] == ["1", "2", "3"], banner
        assert sum(1 for m in gateways if m[4]) == 1, banner
        for m in gateways:
            assert await answers(m[2]) == 4
        holder = next(m for m in gateways if m[4])
        redis_url = next(line.split("=", 1)[1] for line in banner if "export REDIS_URL=" in line)
        assert any("replicas holders --pid default)" in line for line in banner)

        holders = await asyncio.create_subprocess_exec(
            CLI,
            "replicas",
            "holders",
            "--pid",
            "default",
            env={**env, "REDIS_URL": redis_url},
            stdout=asyncio.subprocess.PIPE,
        )
        printed, _ = await holders.communicate()
        assert printed.decode() == f"{holder[3]}\n"

        # kill -9 the holder: another gateway takes the session, the killed one comes back.
        started = descendants(proc.pid)
        os.kill(int(holder[3]), signal.SIGKILL)
        said: list[str] = []
        while not any(re.match(r"  session holder: gateway \d \(epoch", s) for s in said):
            said.append(await read_line(proc, 20))
        assert (
            said[0] == f"  gateway {holder[1]} (pid {holder[3]}) exited (killed by SIGKILL); "
            "starting it again"
        ), said
        while not any(s.startswith(f"  gateway {holder[1]}: pid ") for s in said):
            said.append(await read_line(proc, 20))
        started |= descendants(proc.pid)

        proc.send_signal(signal.SIGINT)
        async with asyncio.timeout(30):
            assert await proc.wait() == 0
        left = [pid for pid in started if alive(pid)]
        assert left == [], left
        assert len(started) >= 4  # three gateways (one started again) and Redis
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        for pid in started:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        print((tmp_path / "stderr.log").read_text()[-4000:])


async def test_a_busy_port_among_the_replicas_is_one_line_and_starts_nothing() -> None:
    with socket.socket() as first, socket.socket() as busy:
        first.bind(("127.0.0.1", 0))
        port = first.getsockname()[1]
        first.close()
        try:
            busy.bind(("127.0.0.1", port + 1))
        except OSError:
            pytest.skip("the port after a free one is taken already")
        busy.listen()
        proc = await asyncio.create_subprocess_exec(
            CLI,
            "demo",
            "--replicas",
            "3",
            "--listen",
            f"127.0.0.1:{port}",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        async with asyncio.timeout(30):
            out, err = await proc.communicate()
    assert proc.returncode == 2
    assert out == b""
    lines = err.decode().splitlines()
    assert len(lines) == 1, lines
    assert f"127.0.0.1:{port + 1}: cannot listen there" in lines[0]
