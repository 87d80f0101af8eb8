"""MemoryCache specifics: monotonic TTL with an injected clock, LRU bound, eviction counts."""

from __future__ import annotations

import pytest

from trading_gateway.server.cache import MemoryCache


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_ttl_uses_the_clock() -> None:
    clock = FakeClock()
    cache = MemoryCache(clock=clock)
    await cache.set("a", b"1", ttl=2.0)
    clock.now += 1.999
    assert await cache.get("a") == b"1"
    clock.now += 0.001
    assert await cache.get("a") is None
    assert len(cache) == 0  # the expired entry was dropped on read


async def test_lru_bound_evicts_least_recently_used() -> None:
    cache = MemoryCache(max_entries=3)
    for key in ("a", "b", "c"):
        await cache.set(key, key.encode(), ttl=60)
    assert await cache.get("a") == b"a"  # "a" is now most recent; "b" is the LRU entry
    await cache.set("d", b"d", ttl=60)
    assert len(cache) == 3
    assert await cache.get_many(["a", "b", "c", "d"]) == [b"a", None, b"c", b"d"]
    assert cache.counters.evictions == 1


async def test_overwrite_refreshes_recency_without_growing() -> None:
    cache = MemoryCache(max_entries=2)
    await cache.set("a", b"1", ttl=60)
    await cache.set("b", b"2", ttl=60)
    await cache.set("a", b"3", ttl=60)
    await cache.set("c", b"4", ttl=60)
    assert await cache.get_many(["a", "b", "c"]) == [b"3", None, b"4"]


async def test_set_many_respects_the_bound() -> None:
    cache = MemoryCache(max_entries=10)
    await cache.set_many({f"k{i}": b"v" for i in range(25)}, ttl=60)
    assert len(cache) == 10
    assert await cache.get("k24") == b"v"
    assert await cache.get("k14") is None
    assert cache.counters.evictions == 15


async def test_expired_entries_leave_without_counting_as_evictions() -> None:
    clock = FakeClock()
    cache = MemoryCache(max_entries=2, clock=clock)
    await cache.set("old1", b"x", ttl=1)
    await cache.set("old2", b"x", ttl=1)
    clock.now += 5
    await cache.set("new1", b"y", ttl=60)
    await cache.set("new2", b"y", ttl=60)
    assert len(cache) == 2
    assert cache.counters.evictions == 0
    assert await cache.get_many(["new1", "new2"]) == [b"y", b"y"]


async def test_always_healthy_and_close_clears() -> None:
    changes: list[bool] = []
    cache = MemoryCache(on_state_change=changes.append)
    await cache.set("a", b"1", ttl=60)
    assert cache.healthy and await cache.ping()
    await cache.aclose()
    assert len(cache) == 0
    assert changes == []


def test_rejects_empty_bound() -> None:
    with pytest.raises(ValueError, match="max_entries"):
        MemoryCache(max_entries=0)
