"""GATEWAY_REPLICAS=redis with three real gateway processes, one login, one simulator.

Exactly one replica holds the login's Tradovate session (the simulator's per-user
counters: one login, one live session, sampled all along); every replica answers unary
reads; the holder killed with SIGKILL is replaced within the lease's bound and the new
holder reuses the shared token (still one login, one session); a holder paused by SIGSTOP
past its lease wakes up fenced and steps down; every replica's live state serves, the
followers' mirrored from the holder's delta log without a socket of their own.
"""

from __future__ import annotations

import asyncio
import secrets
import signal
from collections.abc import AsyncIterator

import grpc
import pytest
from redis.asyncio import Redis

from tests.conftest import RedisServer
from tests.replicas.gateway_replicas import (
    LOGIN,
    Replica,
    lease_holder_pid,
    replica_env,
    wait_until,
)
from tests.replicas.stream_cluster import Sampler
from trading_gateway.server.api.health import (
    SERVICE_LIVE,
    SERVING,
)
from trading_gateway.simulator import SimConfig, Simulator

pytestmark = pytest.mark.timeout(150)

TTL = 1.0
POLL = 0.1
# Process start-up and scheduling on a loaded 2-core machine, added to every bound.
SLACK = 2.0
START_BOUND = 60.0


class Cluster:
    def __init__(self, sim: Simulator, redis: Redis, redis_url: str) -> None:
        self.sim = sim
        self.redis = redis
        self.deployment = f"t{secrets.token_hex(3)}"
        self.env = replica_env(sim, redis_url, self.deployment, TTL, POLL)
        self.replicas: list[Replica] = []

    async def start(self, count: int) -> None:
        self.replicas = list(await asyncio.gather(*(Replica.start(self.env) for _ in range(count))))

    async def holder(self) -> Replica | None:
        pid = await lease_holder_pid(self.redis, self.deployment)
        return next((r for r in self.replicas if r.pid == pid), None)

    async def all_answer(self, replicas: list[Replica], expected: list[str]) -> bool:
        for replica in replicas:
            try:
                if await replica.list_accounts() != expected:
                    return False
            except grpc.aio.AioRpcError:
                return False
        return True


@pytest.fixture
async def cluster(settled_redis: RedisServer) -> AsyncIterator[Cluster]:
    redis = Redis.from_url(settled_redis.url, socket_timeout=2.0)
    sim_config = SimConfig(accounts=2, seed=7, price_interval=0.0)
    try:
        async with Simulator(sim_config).running(host="127.0.0.1", port=0) as sim:
            made = Cluster(sim, redis, settled_redis.url)
            try:
                yield made
            finally:
                await asyncio.gather(*(r.stop() for r in made.replicas))
                for replica in made.replicas:  # shown by pytest when the test failed
                    print(f"--- replica pid {replica.pid}:\n{replica.log[-6000:]}")
    finally:
        await redis.aclose()


def expected_accounts(sim: Simulator) -> list[str]:
    user = str(sim.credentials["name"])
    ids = next(u["accountIds"] for u in sim.control.users() if u["name"] == user)
    return sorted(str(a["name"]) for a in sim.control.accounts() if a["id"] in ids)


async def test_three_replicas_one_session_reads_everywhere_and_kill9_failover_reuses_it(
    cluster: Cluster,
) -> None:
    sim = cluster.sim
    sessions = Sampler(sim)
    try:
        await cluster.start(3)
        expected = expected_accounts(sim)
        await wait_until(
            lambda: cluster.all_answer(cluster.replicas, expected), START_BOUND, "3 replicas read"
        )
        assert (await cluster.holder()) is not None
        assert (sessions.now()["logins"], sessions.now()["sessions"]) == (1, 1)

        # Only the holder has the sockets; every replica has the live state, the
        # followers' mirrored from the delta log.
        holder = await cluster.holder()
        assert holder is not None

        async def all_live() -> bool:
            states = [await r.health(SERVICE_LIVE) for r in cluster.replicas]
            return states == [int(SERVING)] * len(states)

        await wait_until(all_live, 10, "every replica's live state serving")
        assert "user sync: snapshot" not in "".join(
            r.log for r in cluster.replicas if r is not holder
        )

        holder.signal(signal.SIGKILL)
        killed = asyncio.get_running_loop().time()
        survivors = [r for r in cluster.replicas if r is not holder]

        async def taken_over() -> bool:
            return (await cluster.holder()) in survivors

        failover = await wait_until(taken_over, TTL + POLL + SLACK, "a survivor holds the lease")
        new_holder = await cluster.holder()
        assert new_holder is not None
        # A follower has no user-sync socket: its first snapshot comes once it holds.
        await wait_until(
            lambda: _logged(new_holder, "user sync: snapshot"), 10, "the new holder's socket"
        )
        synced = asyncio.get_running_loop().time() - killed
        assert "reusing the session of user" in new_holder.log
        await wait_until(
            lambda: cluster.all_answer(survivors, expected), 10 + SLACK, "survivors read"
        )
        await asyncio.sleep(2 * TTL)  # renewals and the new holder's sockets settle
        assert sessions.now()["logins"] == 1, "the new holder logged in instead of reusing"
        assert sessions.max_sessions == 1, f"{sessions.max_sessions} sessions at once"
        print(
            f"failover: kill -9 to lease taken {failover:.2f} s, "
            f"to the new holder's user-sync snapshot {synced:.2f} s"
        )
    finally:
        await sessions.aclose()


async def _logged(replica: Replica, text: str) -> bool:
    return text in replica.log


async def test_a_holder_paused_past_its_lease_wakes_up_fenced_and_steps_down(
    cluster: Cluster,
) -> None:
    sim = cluster.sim
    sessions = Sampler(sim)
    try:
        await cluster.start(2)
        expected = expected_accounts(sim)
        await wait_until(
            lambda: cluster.all_answer(cluster.replicas, expected), START_BOUND, "2 replicas read"
        )
        paused = await cluster.holder()
        assert paused is not None
        other = next(r for r in cluster.replicas if r is not paused)
        paused.signal(signal.SIGSTOP)

        async def other_holds() -> bool:
            return (await cluster.holder()) is other

        await wait_until(other_holds, TTL + POLL + SLACK, "the other replica holds the lease")
        await wait_until(lambda: _logged(other, "reusing the session of user"), 10, "token reused")
        paused.signal(signal.SIGCONT)
        await wait_until(
            lambda: _logged(paused, "no longer holds its session"), 5 + SLACK, "stepped down"
        )
        await asyncio.sleep(2 * TTL)
        assert (await cluster.holder()) is other
        # The shared token is the new holder's (its epoch), not the woken one's.
        prefix = f"tg:{cluster.deployment}:login:{{{LOGIN}}}"
        lease_epoch = await cluster.redis.hget(f"{prefix}:lease", "epoch")
        assert lease_epoch is not None
        assert await cluster.redis.hget(f"{prefix}:token", "epoch") == lease_epoch
        # It goes on as a follower: reads answer with the shared token.
        await wait_until(lambda: cluster.all_answer([paused], expected), 10, "it reads again")
        assert sessions.now()["logins"] == 1
        assert sessions.max_sessions == 1, f"{sessions.max_sessions} sessions at once"
    finally:
        await sessions.aclose()
