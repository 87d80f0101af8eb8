"""Both backends against the same `Cache` contract (Redis is a real private redis-server)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest

from trading_gateway.server.cache import Cache, MemoryCache, RedisCache, build_cache


@pytest.fixture(params=["memory", "redis"])
async def cache(request: pytest.FixtureRequest) -> AsyncIterator[Cache]:
    if request.param == "memory":
        store: Cache = MemoryCache(max_entries=1000)
    else:
        store = RedisCache(request.getfixturevalue("redis_url"))
    async with store:
        yield store


async def test_identity_and_health(cache: Cache) -> None:
    assert cache.backend in ("memory", "redis")
    assert cache.healthy
    assert await cache.ping()


async def test_missing_key_is_none(cache: Cache) -> None:
    assert await cache.get("tg:test:1:positions:404") is None


async def test_set_then_get_round_trips_binary(cache: Cache) -> None:
    value = bytes(range(256)) * 4
    await cache.set("tg:test:1:positions:1", value, ttl=30)
    assert await cache.get("tg:test:1:positions:1") == value


async def test_overwrite_replaces(cache: Cache) -> None:
    await cache.set("k:overwrite", b"one", ttl=30)
    await cache.set("k:overwrite", b"two", ttl=30)
    assert await cache.get("k:overwrite") == b"two"


async def test_delete(cache: Cache) -> None:
    await cache.set("k:delete", b"v", ttl=30)
    await cache.delete("k:delete")
    await cache.delete("k:never-set")
    assert await cache.get("k:delete") is None


async def test_non_positive_ttl_stores_nothing_and_drops_old_value(cache: Cache) -> None:
    await cache.set("k:ttl0", b"old", ttl=30)
    await cache.set("k:ttl0", b"new", ttl=0)
    assert await cache.get("k:ttl0") is None
    await cache.set_many({"k:a": b"a"}, ttl=30)
    await cache.set_many({"k:a": b"a2", "k:b": b"b"}, ttl=-1)
    assert await cache.get_many(["k:a", "k:b"]) == [None, None]


async def test_get_many_keeps_order_and_reports_missing(cache: Cache) -> None:
    await cache.set_many({"k:1": b"one", "k:3": b"three"}, ttl=30)
    assert await cache.get_many(["k:3", "k:2", "k:1", "k:3"]) == [b"three", None, b"one", b"three"]
    assert await cache.get_many([]) == []


async def test_set_many_then_get_each(cache: Cache) -> None:
    items = {f"tg:test:7:orders:{i}": f"payload-{i}".encode() for i in range(50)}
    await cache.set_many(items, ttl=30)
    await cache.set_many({}, ttl=30)
    for key, value in items.items():
        assert await cache.get(key) == value


async def test_entries_expire_after_ttl(cache: Cache) -> None:
    await cache.set("k:short", b"s", ttl=0.05)
    await cache.set_many({"k:short-many": b"m"}, ttl=0.05)
    await cache.set("k:long", b"l", ttl=60)
    deadline = time.monotonic() + 10  # hang guard only; expiry takes ~50 ms
    while await cache.get_many(["k:short", "k:short-many"]) != [None, None]:
        assert time.monotonic() < deadline, "short-TTL entries never expired"
        await asyncio.sleep(0.02)
    assert await cache.get("k:long") == b"l"


async def test_counters_track_hits_and_misses(cache: Cache) -> None:
    before = (cache.counters.hits, cache.counters.misses)
    await cache.set("k:count", b"v", ttl=30)
    await cache.get("k:count")
    await cache.get("k:absent")
    await cache.get_many(["k:count", "k:absent", "k:absent2"])
    assert cache.counters.hits - before[0] == 2
    assert cache.counters.misses - before[1] == 3
    assert cache.counters.errors == 0


async def test_build_cache_chooses_backend(redis_url: str) -> None:
    async with build_cache(None, max_entries=5) as memory:
        assert memory.backend == "memory"
    async with build_cache("", max_entries=5) as memory:
        assert memory.backend == "memory"
    async with build_cache(redis_url, op_timeout=0.5) as redis:
        assert redis.backend == "redis"
        await redis.set("k:built", b"x", ttl=10)
        assert await redis.get("k:built") == b"x"
