"""The replica wiring inside one real gateway (in process), over a real Redis and the
simulator: the fenced token write, and a holder that loses its lease to another replica
steps down to a follower and later takes the login back reusing its token."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from redis.asyncio import Redis
from tradovate_gateway.v1 import trading_pb2 as pb

from tests.conftest import RedisServer
from tests.logins.stack import running_logins
from tests.replicas.gateway_replicas import wait_until
from tests.replicas.tokens import new_key, token
from tests.support.stack import running_stack
from trading_gateway.server.main import Gateway
from trading_gateway.server.replicas.lease import LeaseKeys
from trading_gateway.server.replicas.replicated_live import ReplicatedLive
from trading_gateway.server.replicas.token_errors import StaleHolder
from trading_gateway.server.replicas.token_seal import TokenSealer
from trading_gateway.server.replicas.token_store import TokenStore

pytestmark = pytest.mark.timeout(90)

LOGIN = "default"


@pytest.fixture
async def redis(settled_redis: RedisServer) -> AsyncIterator[Redis]:
    client = Redis.from_url(settled_redis.url, socket_timeout=2.0)
    try:
        yield client
    finally:
        await client.aclose()


async def test_a_fenced_token_write_needs_the_lease_records_epoch(redis: Redis) -> None:
    store = TokenStore(redis, TokenSealer(new_key()), prefix="tg:fence:", fenced=True)
    lease = LeaseKeys.for_login("fence", LOGIN).lease
    assert store.lease_key(LOGIN) == lease
    with pytest.raises(StaleHolder, match="no holder"):
        await store.write(LOGIN, token(), 7)  # nobody holds the lease
    await redis.hset(lease, mapping={"holder": "a", "epoch": "7", "ttl_ms": "5000"})
    assert await store.write(LOGIN, token(), 7)
    await redis.hset(lease, mapping={"holder": "b", "epoch": "9"})
    with pytest.raises(StaleHolder, match="the holder's epoch is 9"):
        await store.write(LOGIN, token(), 8)  # higher than the stored token's, still stale
    published = await store.read(LOGIN)
    assert published is not None and published.epoch == 7


def _runtime_is(gateway: Gateway) -> Callable[[bool], Callable[[], Awaitable[bool]]]:
    def runtime_is(holder: bool) -> Callable[[], Awaitable[bool]]:
        async def check() -> bool:
            runtime = gateway.logins[LOGIN]
            return runtime.ready.is_set() and (runtime.term is not None) == holder

        return check

    return runtime_is


async def test_a_holder_that_loses_its_lease_follows_then_takes_it_back_with_its_token(
    redis: Redis, settled_redis: RedisServer
) -> None:
    deployment = f"roles{secrets.token_hex(3)}"
    lease = LeaseKeys.for_login(deployment, LOGIN).lease
    async with running_stack(
        accounts=2,
        redis_url=settled_redis.url,
        replicas="redis",
        deployment=deployment,
        token_plaintext=True,
        lease_ttl_s=1.0,
        lease_poll_s=0.1,
    ) as stack:
        gateway, sim = stack.gateway, stack.sim
        user = str(sim.credentials["name"])

        def counters() -> dict[str, int]:
            return sim.control.user_counters()[user]

        runtime_is = _runtime_is(gateway)
        await wait_until(runtime_is(True), 20, "it holds the login")
        assert gateway.logins[LOGIN].live is not None
        assert (counters()["logins"], counters()["sessions"]) == (1, 1)

        # Another replica takes the lease over (a newer epoch): the next renewal sees it.
        epoch = int(await redis.hget(lease, "epoch") or 0)
        await redis.hset(lease, mapping={"holder": "other", "epoch": str(epoch + 1)})
        await redis.pexpire(lease, 1500)
        holder_live = gateway.logins[LOGIN].live
        await wait_until(runtime_is(False), 5, "it steps down to a follower")
        follower = gateway.logins[LOGIN]
        # A holder's live state is never handed on: the follower mirrors the log afresh.
        assert isinstance(follower.live, ReplicatedLive) and follower.follower
        assert follower.live is not holder_live and follower.live.mirror is not None
        reply = await stack.stub.ListAccounts(pb.ListAccountsRequest(), timeout=5)
        assert len(reply.accounts) == 2
        live = follower.live

        async def mirrored_state() -> bool:
            return live.healthy

        await wait_until(mirrored_state, 5, "the follower loaded the log's snapshot")
        # The follower streams the state it mirrored: status, snapshot, completion.
        call = stack.stub.StreamUpdates(pb.StreamUpdatesRequest(), timeout=5)
        kinds = []
        async for update in call:
            kinds.append(update.WhichOneof("payload"))
            if kinds[-1] == "snapshot_complete":
                break
        call.cancel()
        assert kinds[0] == "subscription" and "snapshot" in kinds, kinds
        mirrored = follower.live

        # "other" never renews: its record lapses and this replica takes the login back.
        await wait_until(runtime_is(True), 5, "it holds the login again")
        holder = gateway.logins[LOGIN]
        # The follower's live state (and its streams) passed to the holder it became.
        assert holder.live is mirrored and mirrored.journal is not None
        assert holder.broker.token_manager.adoptions == 1  # the shared token, reused
        assert (counters()["logins"], counters()["sessions"]) == (1, 1)
        reply = await stack.stub.ListAccounts(pb.ListAccountsRequest(), timeout=5)
        assert len(reply.accounts) == 2


async def test_without_redis_the_holder_steps_down_keeps_reading_and_takes_its_session_back(
    settled_redis: RedisServer,
) -> None:
    """Redis stopped (its data lost: no persistence): the holder cannot renew, steps down
    and serves reads as a follower with the token it had; Redis back, it holds the login
    again after the restart quarantine, reusing that token: one login, one session."""
    async with running_stack(
        accounts=2,
        redis_url=settled_redis.url,
        replicas="redis",
        deployment=f"outage{secrets.token_hex(3)}",
        token_plaintext=True,
        lease_ttl_s=1.0,
        lease_poll_s=0.1,
    ) as stack:
        gateway, sim = stack.gateway, stack.sim
        user = str(sim.credentials["name"])
        runtime_is = _runtime_is(gateway)
        await wait_until(runtime_is(True), 20, "it holds the login")
        most = 0

        async def sample() -> None:
            nonlocal most
            while True:
                most = max(most, sim.control.user_counters()[user]["sessions"])
                await asyncio.sleep(0.02)

        sampler = asyncio.get_running_loop().create_task(sample())
        try:
            settled_redis.stop()
            await wait_until(runtime_is(False), 5, "it steps down without Redis")
            # A follower that cannot read the delta log has no live state to serve.
            live = gateway.logins[LOGIN].live
            assert isinstance(live, ReplicatedLive) and not live.healthy
            reply = await stack.stub.ListAccounts(pb.ListAccountsRequest(), timeout=10)
            assert len(reply.accounts) == 2
            settled_redis.start()
            # The restart quarantine: ceil(TTL) + 1 s of Redis uptime before any acquire.
            await wait_until(runtime_is(True), 10, "it holds the login again")
            holder_live = gateway.logins[LOGIN].live
            assert isinstance(holder_live, ReplicatedLive)

            async def live_again() -> bool:
                return holder_live.healthy

            await wait_until(live_again, 10, "its live state serving again")
            counters = sim.control.user_counters()[user]
            assert (counters["logins"], counters["sessions"]) == (1, 1)
            assert most == 1, f"{most} sessions at once"
        finally:
            sampler.cancel()
            await asyncio.gather(sampler, return_exceptions=True)


async def test_a_reload_that_removes_a_login_releases_its_lease(
    redis: Redis, settled_redis: RedisServer
) -> None:
    deployment = f"reload{secrets.token_hex(3)}"
    async with running_logins(
        users=2,
        accounts=1,
        ready=[],
        redis_url=settled_redis.url,
        replicas="redis",
        deployment=deployment,
        token_plaintext=True,
        lease_ttl_s=1.0,
        lease_poll_s=0.1,
        live_enabled=False,
    ) as stack:
        gateway = stack.gateway
        specs = [runtime.spec for runtime in gateway.logins.values()]
        kept, removed = specs[0].name, specs[1].name

        async def both_held() -> bool:
            return all(
                runtime.ready.is_set() and runtime.term is not None
                for runtime in gateway.logins.values()
            )

        await wait_until(both_held, 20, "both logins held")
        leases = {name: LeaseKeys.for_login(deployment, name).lease for name in (kept, removed)}
        assert await redis.exists(*leases.values()) == 2
        await gateway.apply_logins(specs[:1])
        # Released at once (compare-and-delete), not left to lapse after the TTL.
        assert await redis.exists(leases[removed]) == 0
        assert await redis.exists(leases[kept]) == 1
        assert list(gateway.logins) == [kept]
