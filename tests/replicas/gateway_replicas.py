"""Real `trading-gateway serve` processes as replicas of one deployment, for the wiring tests.

Each replica is a subprocess on its own loopback port, pointed at an in-process simulator
(over HTTP/WebSocket) and a real Redis, with GATEWAY_REPLICAS=redis and short lease times.
Its stderr (the log) is collected in the background; the lease record in Redis names the
holder by ``host:pid:random``, so a replica knows whether it holds the login.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from redis.asyncio import Redis
from tradovate_gateway.v1 import trading_pb2 as pb
from tradovate_gateway.v1 import trading_pb2_grpc as pb_grpc

from tests.conftest import free_port
from trading_gateway.simulator import Simulator

ROOT = Path(__file__).resolve().parents[2]
LOGIN = "default"  # the TRADOVATE_* shorthand's login


def replica_env(
    sim: Simulator, redis_url: str, deployment: str, ttl: float, poll: float
) -> dict[str, str]:
    creds = sim.credentials
    return {
        "PATH": os.environ.get("PATH", ""),
        "TRADOVATE_URL": sim.rest_url,
        "TRADOVATE_WS_URL": sim.ws_url,
        "TRADOVATE_MD_URL": sim.md_ws_url,
        "TRADOVATE_USERNAME": str(creds["name"]),
        "TRADOVATE_PASSWORD": str(creds["password"]),
        "TRADOVATE_APP_ID": str(creds["appId"]),
        "TRADOVATE_CID": str(creds["cid"]),
        "TRADOVATE_SECRET": str(creds["sec"]),
        "TRADOVATE_DEVICE_ID": "tests",
        "REDIS_URL": redis_url,
        "GATEWAY_REPLICAS": "redis",
        "GATEWAY_DEPLOYMENT": deployment,
        "GATEWAY_TOKEN_PLAINTEXT": "true",
        "GATEWAY_LEASE_TTL_S": str(ttl),
        "GATEWAY_LEASE_POLL_S": str(poll),
        "GATEWAY_METRICS_PORT": "0",
        "GATEWAY_ACCESS_LOG": "false",
        "GATEWAY_GRACE_S": "0.5",
        "GATEWAY_UPSTREAM_RATE_PER_SECOND": "0",
    }


class Replica:
    """One gateway process; ``log`` is its stderr so far."""

    def __init__(self, proc: asyncio.subprocess.Process, port: int) -> None:
        self.proc = proc
        self.port = port
        self.address = f"127.0.0.1:{port}"
        self.log = ""
        self._reader = asyncio.get_running_loop().create_task(self._read())

    @classmethod
    async def start(cls, env: dict[str, str]) -> Replica:
        port = free_port()
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "trading_gateway.server",
            "serve",
            env={**env, "GATEWAY_LISTEN": f"127.0.0.1:{port}"},
            cwd=ROOT,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        return cls(proc, port)

    async def _read(self) -> None:
        assert self.proc.stderr is not None
        while line := await self.proc.stderr.readline():
            self.log += line.decode(errors="replace")

    @property
    def pid(self) -> int:
        return self.proc.pid

    def signal(self, signum: int) -> None:
        self.proc.send_signal(signum)

    async def list_accounts(self, within: float = 3.0) -> list[str]:
        async with grpc.aio.insecure_channel(self.address) as channel:
            stub = pb_grpc.TradingServiceStub(channel)
            reply = await stub.ListAccounts(pb.ListAccountsRequest(), timeout=within)
        return sorted(account.name for account in reply.accounts)

    async def health(self, service: str) -> int:
        """The gRPC health status of ``service`` (HealthCheckResponse.ServingStatus)."""
        async with grpc.aio.insecure_channel(self.address) as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            reply = await stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=3)
        return int(reply.status)

    async def stream_error(self) -> grpc.aio.AioRpcError:
        """The status StreamUpdates over every account ends with before its first message."""
        async with grpc.aio.insecure_channel(self.address) as channel:
            stub = pb_grpc.TradingServiceStub(channel)
            call = stub.StreamUpdates(pb.StreamUpdatesRequest(), timeout=5)
            try:
                async for _ in call:
                    raise AssertionError("the stream sent a message")
            except grpc.aio.AioRpcError as error:
                return error
        raise AssertionError("the stream ended without a status")

    async def stop(self) -> None:
        if self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(signal.SIGCONT)
                self.proc.kill()
            await self.proc.wait()
        with contextlib.suppress(asyncio.CancelledError):
            self._reader.cancel()
            await asyncio.gather(self._reader, return_exceptions=True)


async def lease_holder_pid(redis: Redis, deployment: str) -> int | None:
    """The pid in the login's lease record (``host:pid:random``), None when nobody holds it."""
    holder = await redis.hget(f"tg:{deployment}:login:{{{LOGIN}}}:lease", "holder")
    if holder is None:
        return None
    text = holder.decode() if isinstance(holder, bytes) else holder
    return int(text.split(":")[1])


async def wait_until(
    condition: Callable[[], Awaitable[bool]], bound: float, what: str, step: float = 0.05
) -> float:
    """Poll ``condition`` (an async callable) until true; the seconds it took."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    while True:
        if await condition():
            return loop.time() - started
        if loop.time() - started > bound:
            raise AssertionError(f"not within {bound:.1f} s: {what}")
        await asyncio.sleep(step)
