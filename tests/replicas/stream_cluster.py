"""Gateway replicas under load for the replicated-stream tests: the cluster, the load and a
sampler of the simulator's sessions and sockets."""

from __future__ import annotations

import asyncio
import secrets
import socket
import subprocess
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import grpc
from redis.asyncio import Redis
from redis.exceptions import RedisError
from tradovate_gateway.v1 import trading_pb2 as pb
from tradovate_gateway.v1 import trading_pb2_grpc as pb_grpc

from tests.conftest import RedisServer
from tests.replicas.gateway_replicas import Replica, lease_holder_pid, replica_env, wait_until
from trading_gateway.server.api.health import SERVICE_LIVE, SERVING
from trading_gateway.simulator import SimConfig, Simulator

TTL = 1.0
POLL = 0.1
START_BOUND = 60.0
# Process start-up and scheduling on a loaded 2-core machine, added to every bound.
SLACK = 2.0


class PersistentRedis(RedisServer):
    """A private redis-server that appends every write to its file and syncs it at once
    (``appendfsync always``): killed with SIGKILL and started again, it keeps its data."""

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [
                self.binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
                "--dir",
                self.workdir,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as s:
                    s.sendall(b"PING\r\n")
                    if s.recv(16).startswith(b"+PONG"):  # not -LOADING: the file is read
                        return
            except OSError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"redis-server did not start on port {self.port}")


class Sampler:
    """The simulator's live sessions of the user and its synced user sockets, every 20 ms.

    ``max_sessions`` is the most sessions seen at once; ``sockets`` the (time, synced
    sockets) samples where the count changed."""

    def __init__(self, sim: Simulator) -> None:
        self._sim = sim
        self._user = str(sim.credentials["name"])
        self.max_sessions = 0
        self.samples = 0
        self.sockets: list[tuple[float, int]] = []
        self._task = asyncio.get_running_loop().create_task(self._run())

    def now(self) -> dict[str, int]:
        return self._sim.control.user_counters()[self._user]

    async def _run(self) -> None:
        control = self._sim.control
        while True:
            self.max_sessions = max(self.max_sessions, self.now()["sessions"])
            synced = int(control.counters()["synced_sockets"])
            if not self.sockets or self.sockets[-1][1] != synced:
                self.sockets.append((time.time(), synced))
            self.samples += 1
            await asyncio.sleep(0.02)

    def synced_again(self, after: float) -> float | None:
        """When a user socket synced after ``after``: the first sample past it where the
        count of synced sockets went up."""
        previous: int | None = None
        for at, count in self.sockets:
            if at >= after and previous is not None and count > previous:
                return at
            previous = count
        return None

    async def aclose(self) -> None:
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)


class Cluster:
    """N ``serve`` replicas of one deployment, one simulator, one Redis."""

    def __init__(self, sim: Simulator, redis: Redis, redis_url: str) -> None:
        self.sim = sim
        self.redis = redis
        self.deployment = f"s{secrets.token_hex(3)}"
        self.env = replica_env(sim, redis_url, self.deployment, TTL, POLL)
        self.replicas: list[Replica] = []

    async def start(self, count: int) -> None:
        self.replicas = list(await asyncio.gather(*(Replica.start(self.env) for _ in range(count))))

    async def holder(self) -> Replica | None:
        """The replica the lease record names (None: nobody, or Redis cannot answer)."""
        try:
            pid = await lease_holder_pid(self.redis, self.deployment)
        except RedisError:
            return None
        return next((r for r in self.replicas if r.pid == pid), None)

    async def all_live(self, replicas: list[Replica] | None = None) -> bool:
        for replica in replicas if replicas is not None else self.replicas:
            try:
                if await replica.health(SERVICE_LIVE) != int(SERVING):
                    return False
            except grpc.aio.AioRpcError:
                return False
        return True

    async def ready(self, replicas: list[Replica] | None = None) -> Replica:
        """Every replica (or those given) logged in (it lists the accounts: a replica's live
        state may serve the log's snapshot before its login is ready) and its live state
        serving; the holder."""
        chosen = replicas if replicas is not None else self.replicas

        async def logged_in() -> bool:
            for replica in chosen:
                try:
                    await replica.list_accounts()
                except grpc.aio.AioRpcError:
                    return False
            return True

        await wait_until(logged_in, START_BOUND, "every replica logged in")
        await wait_until(
            lambda: self.all_live(chosen), START_BOUND, "every replica's live state serving"
        )
        holder = await self.holder()
        assert holder is not None, "nobody holds the login"
        return holder


@asynccontextmanager
async def running_cluster(
    redis_server: RedisServer, sim_config: SimConfig
) -> AsyncIterator[Cluster]:
    """A simulator and a Redis client; the replicas the test starts are killed at the end
    (their logs printed, shown by pytest when the test failed)."""
    redis = Redis.from_url(redis_server.url, socket_timeout=2.0)
    try:
        async with Simulator(sim_config).running(host="127.0.0.1", port=0) as sim:
            made = Cluster(sim, redis, redis_server.url)
            try:
                yield made
            finally:
                sim.control.set_activity(0)
                await asyncio.gather(*(r.stop() for r in made.replicas))
                for replica in made.replicas:
                    print(f"--- replica pid {replica.pid}:\n{replica.log[-5000:]}")
    finally:
        await redis.aclose()


class Load:
    """Random orders, fills and cancels at ``rate`` per second and a price walk, in the
    simulator; ``stop`` ends both."""

    def __init__(self, sim: Simulator, rate: float, price_interval: float) -> None:
        self._control = sim.control
        self._control.set_activity(rate)
        self._control.set_price_interval(price_interval)

    def stop(self) -> None:
        self._control.set_activity(0)
        self._control.set_price_interval(0)


def user_accounts(sim: Simulator) -> set[int]:
    user = str(sim.credentials["name"])
    return set(next(u["accountIds"] for u in sim.control.users() if u["name"] == user))


def ledgers(sim: Simulator) -> list[dict[str, Any]]:
    return [sim.control.ledger(a)[0] for a in sorted(user_accounts(sim))]


async def live_reads(replica: Replica) -> dict[str, Any]:
    """GetPositions, GetOrders, GetBalances and GetSnapshot on ``replica`` (default policy):
    every account's meta.source and the positions (id: net_pos) they answered."""
    async with grpc.aio.insecure_channel(replica.address) as channel:
        stub = pb_grpc.TradingServiceStub(channel)
        positions = await stub.GetPositions(pb.GetPositionsRequest(), timeout=5)
        orders = await stub.GetOrders(pb.GetOrdersRequest(), timeout=5)
        balances = await stub.GetBalances(pb.GetBalancesRequest(), timeout=5)
        snapshot = await stub.GetSnapshot(pb.GetSnapshotRequest(), timeout=5)
    sources = [a.meta.source for a in positions.accounts]
    sources += [a.meta.source for a in orders.accounts]
    sources += [a.meta.source for a in balances.accounts]
    sources += [a.positions.meta.source for a in snapshot.accounts]
    sources += [a.orders.meta.source for a in snapshot.accounts]
    return {
        "sources": sources,
        "positions": {p.id: p.net_pos for a in positions.accounts for p in a.positions},
        "orders": {o.id for a in orders.accounts for o in a.orders},
    }
