"""The TTL cache behind the read policies, with both backends (memory and a real Redis)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis
from tradovate_gateway.v1 import trading_pb2 as pb

from tests.conftest import RedisServer
from tests.support.stack import Stack, running_stack
from tests.support.waiting import eventually

pytestmark = pytest.mark.timeout(60)

CACHED = pb.READ_POLICY_CACHED
FRESH = pb.READ_POLICY_FRESH
UPSTREAM = pb.READ_POLICY_UPSTREAM


@pytest.fixture
async def cache_stack(cache_url: str | None) -> AsyncIterator[Stack]:
    async with running_stack(
        accounts=3, redis_url=cache_url, live_enabled=False, ttl_positions_s=0.3
    ) as stack:
        await stack.stub.GetPositions(pb.GetPositionsRequest(), timeout=5)  # warm contracts
        stack.sim.control.reset_counters()
        yield stack


async def _positions(stack: Stack, policy: pb.ReadPolicy.ValueType) -> pb.GetPositionsResponse:
    return await stack.stub.GetPositions(pb.GetPositionsRequest(read_policy=policy), timeout=5)


def _sources(reply: pb.GetPositionsResponse) -> set[int]:
    return {a.meta.source for a in reply.accounts}


async def test_miss_then_hit_then_expiry(cache_stack: Stack) -> None:
    await cache_stack.stub.GetPositions(
        pb.GetPositionsRequest(read_policy=UPSTREAM), timeout=5
    )  # fills the cache
    await asyncio.sleep(0.35)
    cache_stack.sim.control.reset_counters()

    miss = await _positions(cache_stack, CACHED)
    assert _sources(miss) == {pb.SOURCE_UPSTREAM}
    assert cache_stack.upstream_calls("position/ldeps") == 1

    hit = await _positions(cache_stack, CACHED)
    assert _sources(hit) == {pb.SOURCE_CACHE}
    assert cache_stack.upstream_calls("position/ldeps") == 1
    assert [a.meta.as_of for a in hit.accounts] == [a.meta.as_of for a in miss.accounts]
    assert [list(a.positions) for a in hit.accounts] == [list(a.positions) for a in miss.accounts]

    await asyncio.sleep(0.35)  # TTL 0.3 s
    expired = await _positions(cache_stack, CACHED)
    assert _sources(expired) == {pb.SOURCE_UPSTREAM}
    assert cache_stack.upstream_calls("position/ldeps") == 2


async def test_fresh_never_reads_the_cache_and_upstream_refreshes_it(cache_stack: Stack) -> None:
    first = await _positions(cache_stack, FRESH)
    second = await _positions(cache_stack, FRESH)
    assert _sources(first) == _sources(second) == {pb.SOURCE_UPSTREAM}
    assert cache_stack.upstream_calls("position/ldeps") == 2

    refreshed = await _positions(cache_stack, UPSTREAM)
    assert _sources(refreshed) == {pb.SOURCE_UPSTREAM}
    hit = await _positions(cache_stack, CACHED)
    assert _sources(hit) == {pb.SOURCE_CACHE}
    assert [a.meta.as_of for a in hit.accounts] == [a.meta.as_of for a in refreshed.accounts]
    assert cache_stack.upstream_calls("position/ldeps") == 3


async def test_cached_data_tracks_upstream_changes_after_the_ttl(cache_stack: Stack) -> None:
    control = cache_stack.sim.control
    account_id = control.account_ids()[0]
    selector = pb.AccountSelector(accounts=[str(account_id)])
    request = pb.GetOrdersRequest(selector=selector, read_policy=CACHED)
    before = await cache_stack.stub.GetOrders(request, timeout=5)
    placed = control.place_order(account_id, "ESZ6", "Buy", 1, price="4000")
    still_cached = await cache_stack.stub.GetOrders(request, timeout=5)
    assert still_cached.accounts[0].meta.source == pb.SOURCE_CACHE
    assert placed not in {o.id for o in still_cached.accounts[0].orders}
    await asyncio.sleep(1.05)  # orders TTL 1 s (default)
    after = await cache_stack.stub.GetOrders(request, timeout=5)
    assert after.accounts[0].meta.source == pb.SOURCE_UPSTREAM
    assert placed in {o.id for o in after.accounts[0].orders}
    assert len(after.accounts[0].orders) == len(before.accounts[0].orders) + 1


async def test_redis_keys_are_namespaced_and_expire(redis_url: str) -> None:
    async with running_stack(accounts=2, redis_url=redis_url, live_enabled=False) as stack:
        await stack.stub.GetBalances(pb.GetBalancesRequest(), timeout=5)
        user_id = stack.sim.config.user_id
        ids = await stack.account_ids()
        client = aioredis.from_url(redis_url)
        try:
            keys = sorted(
                k.decode() if isinstance(k, bytes) else k for k in await client.keys("tg:*")
            )
            expected = [f"tg:demo:{user_id}:balances:{i}" for i in ids]
            assert set(expected) <= set(keys)
            assert f"tg:demo:{user_id}:accounts:all" in keys
            ttl_ms = await client.pttl(expected[0])
            assert 0 < ttl_ms <= 2000  # balances TTL 2 s
        finally:
            await client.aclose()


async def test_redis_outage_never_fails_a_request(
    redis_server: RedisServer, redis_url: str
) -> None:
    async with running_stack(
        accounts=3, redis_url=redis_url, live_enabled=False, ttl_positions_s=0.2
    ) as stack:
        cache_service = "tradovate_gateway.cache"
        serving, not_serving = 1, 2
        await stack.stub.GetPositions(pb.GetPositionsRequest(read_policy=CACHED), timeout=5)
        assert await stack.health_status(cache_service) == serving

        redis_server.stop()
        for _ in range(10):
            reply = await stack.stub.GetPositions(
                pb.GetPositionsRequest(read_policy=CACHED), timeout=5
            )
            assert all(a.meta.status.code == 0 for a in reply.accounts)
            # The gateway's own copies stand in for Redis, within the TTL; the rest is upstream.
            assert _sources(reply) <= {pb.SOURCE_UPSTREAM, pb.SOURCE_CACHE}

        async def degraded() -> bool:
            return await stack.health_status(cache_service) == not_serving

        await eventually(degraded, within=10)
        assert await stack.health_status("") == serving
        assert await stack.health_status("tradovate_gateway.v1.TradingService") == serving

        redis_server.start()

        async def recovered() -> bool:
            return await stack.health_status(cache_service) == serving

        await eventually(recovered, within=15)
        await _positions(stack, CACHED)

        async def cached_again() -> bool:
            reply = await _positions(stack, CACHED)
            return _sources(reply) == {pb.SOURCE_CACHE}

        await eventually(cached_again, within=5)
