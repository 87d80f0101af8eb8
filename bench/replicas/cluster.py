"""The processes of the replicas section: a private Redis, a simulator and gateway processes.

Each gateway is started as an operator starts one, ``python -m trading_gateway.server serve``
with its settings in the environment, on its own free loopback port (or, with ``workers``,
``serve --workers N`` on one port). The settings are the bench's (bench/gateway_proc.py: API
keys on, no client-side token buckets) with a free metrics port (``--workers N``: N in a
row, one per worker) plus, for replicas, GATEWAY_REPLICAS=
redis, the private Redis, one deployment name for the run, a plaintext shared token (a
private Redis) and the configured lease times. Each process's log goes to ``<name>.log`` in
the scratch folder. The lease record in Redis names the holder (``host:pid:random``).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import signal
import socket
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from pydantic import SecretStr
from redis.asyncio import Redis

from bench.config import BenchConfig
from bench.gateway_proc import api_key_sha256, no_ip_budget, with_api_key
from bench.replicas import metrics
from bench.sim_proc import SimHandle
from bench.tools.delta_log import private_redis
from trading_gateway.server.api.health import SERVICE_LIVE, SERVICE_TRADING
from trading_gateway.server.config import env_name
from trading_gateway.server.logins.spec import DEFAULT_LOGIN
from trading_gateway.server.replicas.lease import LeaseKeys
from trading_gateway.server.sim_settings import simulator_values

SERVING = health_pb2.HealthCheckResponse.SERVING
START_LIMIT_S = 120.0
STOP_GRACE_S = 10.0


@contextlib.contextmanager
def bench_redis() -> Iterator[str]:
    """A private redis-server (bench/tools/delta_log.py ``private_redis``) whose failure to
    start is a RuntimeError, as the bench records it, not the tool's SystemExit."""
    try:
        with private_redis() as url:
            yield url
    except SystemExit as exc:
        raise RuntimeError(f"the private redis-server: {exc}") from None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def free_ports(count: int) -> list[int]:
    """``count`` consecutive ports free now (the metrics of ``serve --workers``)."""
    for _ in range(50):
        base = free_port()
        held: list[socket.socket] = []
        try:
            for port in range(base, base + count):
                probe = socket.socket()
                held.append(probe)
                probe.bind(("127.0.0.1", port))
            return list(range(base, base + count))
        except OSError:
            continue
        finally:
            for probe in held:
                probe.close()
    raise RuntimeError(f"no {count} consecutive free ports")


def environment(values: Mapping[str, Any]) -> dict[str, str]:
    """Settings values (field name -> value) as the environment ``serve`` reads, over this
    process's environment less any gateway setting of its own."""
    base = {
        k: v
        for k, v in os.environ.items()
        if not k.upper().startswith(("GATEWAY_", "TRADOVATE_")) and k.upper() != "REDIS_URL"
    }
    for name, value in values.items():
        if isinstance(value, SecretStr):
            value = value.get_secret_value()
        elif isinstance(value, bool):
            value = "true" if value else "false"
        base[env_name(name)] = str(value)
    return base


@dataclass
class GatewayProc:
    """One ``serve`` process (its workers, with ``--workers``)."""

    name: str
    proc: asyncio.subprocess.Process
    address: str
    log: Path
    #: Where it serves metrics: one port, or with ``--workers N`` one per worker.
    metrics_ports: list[int] = field(default_factory=list)

    @property
    def pid(self) -> int:
        return int(self.proc.pid)

    @property
    def alive(self) -> bool:
        return self.proc.returncode is None

    def pids(self) -> list[int]:
        """This process and its children (the workers of ``serve --workers``)."""
        found = [self.pid]
        for task in Path(f"/proc/{self.pid}/task").glob("*/children"):
            with contextlib.suppress(OSError):
                found += [int(p) for p in task.read_text().split()]
        return found

    def log_tail(self, chars: int = 2000) -> str:
        with contextlib.suppress(OSError):
            return self.log.read_text(errors="replace")[-chars:]
        return ""

    async def serving(self) -> bool:
        """Ready for calls (health ``tradovate_gateway.v1.TradingService``: its login is
        done) and its live state serving (``tradovate_gateway.live``: the holder's from its
        socket, a follower's mirrored from the delta log), asked on one new connection (its
        own subchannel: channels to one target share one connection otherwise)."""
        options = [("grpc.use_local_subchannel_pool", 1)]
        async with grpc.aio.insecure_channel(self.address, options=options) as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            for service in (SERVICE_TRADING, SERVICE_LIVE):
                request = health_pb2.HealthCheckRequest(service=service)
                try:
                    reply = await stub.Check(request, timeout=2)
                except grpc.aio.AioRpcError:
                    return False
                if reply.status != SERVING:
                    return False
        return True

    async def wait_live(self, within: float = START_LIMIT_S) -> None:
        """Until it is ``serving``."""
        loop = asyncio.get_running_loop()
        until = loop.time() + within
        while not await self.serving():
            if not self.alive:
                raise RuntimeError(
                    f"{self.name} exited ({self.proc.returncode}):\n{self.log_tail()}"
                )
            if loop.time() > until:
                raise RuntimeError(f"{self.name}: not serving within {within:.0f} s")
            await asyncio.sleep(0.1)

    async def wait_workers_live(self, workers: int, within: float = START_LIMIT_S) -> None:
        """With ``serve --workers``: until every worker's metrics port answers (each worker
        is up) and ``4 * workers`` checks in a row, each on a new connection (the kernel
        picks a worker per connection), find it ``serving``. A worker not yet serving is
        missed with a chance of (1 - 1/workers) ** (4 * workers): under 2 % for 4."""
        loop = asyncio.get_running_loop()
        until = loop.time() + within
        while None in await metrics.scrape(self.metrics_ports, ""):
            if not self.alive or loop.time() > until:
                raise RuntimeError(f"{self.name}: not every worker's metrics answer")
            await asyncio.sleep(0.1)
        streak = 0
        while streak < 4 * workers:
            if not self.alive:
                raise RuntimeError(f"{self.name} exited ({self.proc.returncode})")
            if await self.serving():
                streak += 1
                continue
            streak = 0
            if loop.time() > until:
                raise RuntimeError(f"{self.name}: a worker not serving within {within:.0f} s")
            await asyncio.sleep(0.1)

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            self.proc.send_signal(signal.SIGKILL)

    async def stop(self) -> None:
        if self.alive:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.proc.wait(), STOP_GRACE_S)
            except TimeoutError:
                self.kill()
        await self.proc.wait()


@dataclass
class ReplicaCluster:
    """Gateways against one simulator and one Redis; ``aclose`` stops every one started."""

    config: BenchConfig
    sim: SimHandle
    redis_url: str
    workdir: Path
    deployment: str = field(default_factory=lambda: f"bench{secrets.token_hex(3)}")
    gateways: list[GatewayProc] = field(default_factory=list)
    _count: int = 0
    _redis: Redis | None = None

    def settings(self, listen: str, metrics_port: int, *, replicas: bool) -> dict[str, Any]:
        sim = self.sim
        values: dict[str, Any] = {
            **simulator_values(
                rest_url=sim.rest_url,
                ws_url=sim.ws_url,
                md_url=sim.md_ws_url,
                credentials=sim.credentials,
                device_id="bench",
            ),
            "listen": listen,
            "metrics_port": metrics_port,
            "upstream_rate_per_second": 0,
            **no_ip_budget(),
            "grace_s": 0.5,
        }
        if replicas:
            values |= {
                "replicas": "redis",
                "redis_url": self.redis_url,
                "deployment": self.deployment,
                "token_plaintext": True,
                "lease_ttl_s": self.config.replicas_lease_ttl_s,
                "lease_poll_s": self.config.replicas_lease_poll_s,
            }
        return with_api_key(values, api_key_sha256())

    async def start(self, *, replicas: bool = True, workers: int = 1) -> GatewayProc:
        """One more ``serve`` process (not waited for: see ``GatewayProc.wait_live``)."""
        self._count += 1
        kind = "replica" if replicas else "gateway"
        name = f"{kind}-{self._count}" + (f"-x{workers}" if workers > 1 else "")
        address = f"127.0.0.1:{free_port()}"
        metrics_ports = free_ports(workers)
        log = self.workdir / f"{name}.log"
        args = ["-m", "trading_gateway.server", "serve"]
        if workers > 1:
            args += ["--workers", str(workers)]
        with log.open("wb") as out:
            proc = await asyncio.create_subprocess_exec(
                sys.executable,
                *args,
                env=environment(self.settings(address, metrics_ports[0], replicas=replicas)),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=out,
                stderr=out,
            )
        gateway = GatewayProc(name, proc, address, log, metrics_ports)
        self.gateways.append(gateway)
        return gateway

    async def started(self, count: int, *, replicas: bool = True) -> list[GatewayProc]:
        """``count`` more processes, started together, once each one's live state serves."""
        made = [await self.start(replicas=replicas) for _ in range(count)]
        await asyncio.gather(*(g.wait_live() for g in made))
        return made

    def running(self) -> list[GatewayProc]:
        return [g for g in self.gateways if g.alive]

    async def holder_pid(self) -> int | None:
        """The pid in the login's lease record, None while nobody holds it."""
        if self._redis is None:
            self._redis = Redis.from_url(
                self.redis_url, socket_timeout=1.0, socket_connect_timeout=1.0
            )
        key = LeaseKeys.for_login(self.deployment, DEFAULT_LOGIN).lease
        holder = await self._redis.hget(key, "holder")
        if holder is None:
            return None
        text = holder.decode() if isinstance(holder, bytes) else str(holder)
        return int(text.split(":")[1])

    async def holder(self) -> GatewayProc | None:
        pid = await self.holder_pid()
        return next((g for g in self.running() if pid in g.pids()), None)

    async def remove(self, gateway: GatewayProc) -> None:
        await gateway.stop()
        self.gateways.remove(gateway)

    async def aclose(self) -> None:
        await asyncio.gather(*(g.stop() for g in self.gateways), return_exceptions=True)
        self.gateways.clear()
        if self._redis is not None:
            await self._redis.aclose()
            self._redis = None
