"""ReadCache over a real Redis that dies or hangs: bounded waits, local stand-ins, stale values."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import AsyncIterator, Iterator

import pytest

from tests.conftest import RedisServer
from trading_gateway.server.cache import RedisCache
from trading_gateway.server.reads.readcache import ReadCache
from trading_gateway.server.reads.records import Fetched, Kind, PositionsData, now_epoch

TIMEOUT = 0.1
TTL = 0.5
STALE_WINDOW = 1.0
# Event-loop lag allowed on top of the timeout on a shared, loaded machine.
LAG = 0.1


@pytest.fixture
async def read_cache(redis_url: str) -> AsyncIterator[ReadCache]:
    store = RedisCache(redis_url, op_timeout=TIMEOUT, backoff_initial=5.0, backoff_max=5.0)
    async with store:
        cache = ReadCache(
            store,
            env="demo",
            ttls=dict.fromkeys(Kind, TTL),
            timeout=TIMEOUT,
            stale_window=STALE_WINDOW,
        )
        cache.set_user(42)
        yield cache


@pytest.fixture
def paused(redis_server: RedisServer) -> Iterator[RedisServer]:
    """Resume a SIGSTOPped redis-server whatever the test's outcome."""
    yield redis_server
    if redis_server.proc is not None and redis_server.proc.poll() is None:
        os.kill(redis_server.proc.pid, signal.SIGCONT)


def _value(as_of: float) -> Fetched[PositionsData]:
    return Fetched(PositionsData(positions=[], contracts={}), as_of)


async def _timed_get(cache: ReadCache, ids: list[int]) -> tuple[float, set[int]]:
    started = time.monotonic()
    hits = await cache.get_many(Kind.POSITIONS, ids)
    return time.monotonic() - started, set(hits)


async def test_no_read_waits_on_a_hung_redis_longer_than_the_timeout(
    read_cache: ReadCache, paused: RedisServer
) -> None:
    assert paused.proc is not None
    os.kill(paused.proc.pid, signal.SIGSTOP)  # accepts connections, never answers
    waits = [(await _timed_get(read_cache, [1, 2]))[0] for _ in range(5)]
    assert max(waits) < TIMEOUT + LAG, waits
    assert not read_cache.healthy
    # Once the circuit is open, reads do not wait on Redis at all.
    assert waits[-1] < TIMEOUT / 2, waits


async def test_no_read_waits_on_a_dead_redis_longer_than_the_timeout(
    read_cache: ReadCache, redis_server: RedisServer
) -> None:
    redis_server.stop()
    waits = [(await _timed_get(read_cache, [1]))[0] for _ in range(5)]
    assert max(waits) < TIMEOUT + LAG, waits
    assert not read_cache.healthy


async def test_during_an_outage_the_processs_own_copies_answer_within_the_ttl(
    read_cache: ReadCache, redis_server: RedisServer
) -> None:
    fresh = _value(now_epoch())
    await read_cache.put_many(Kind.POSITIONS, {1: fresh, 2: _value(now_epoch() - 2 * TTL)})
    assert set(await read_cache.get_many(Kind.POSITIONS, [1, 2])) == {1, 2}  # from Redis

    redis_server.stop()
    for _ in range(3):  # the failures that open the circuit, then skipped calls
        await read_cache.get_many(Kind.POSITIONS, [1])
    assert not read_cache.healthy
    hits = await read_cache.get_many(Kind.POSITIONS, [1, 2, 3])
    assert hits == {1: fresh}  # within its TTL (by as_of); 2 is too old, 3 was never known
    await asyncio.sleep(TTL)
    assert await read_cache.get_many(Kind.POSITIONS, [1]) == {}


async def test_local_copies_do_not_shadow_a_healthy_redis(
    read_cache: ReadCache, redis_server: RedisServer
) -> None:
    await read_cache.put_many(Kind.POSITIONS, {1: _value(now_epoch())})
    redis_server.flush()  # Redis says "gone"; it is healthy, so that is the answer
    assert read_cache.healthy
    assert await read_cache.get_many(Kind.POSITIONS, [1]) == {}


async def test_stale_values_are_bounded_by_ttl_plus_window(read_cache: ReadCache) -> None:
    now = now_epoch()
    await read_cache.put_many(
        Kind.POSITIONS,
        {
            1: _value(now - TTL / 2),  # fresh
            2: _value(now - TTL - STALE_WINDOW / 2),  # stale, inside the window
            3: _value(now - TTL - 2 * STALE_WINDOW),  # too old
        },
    )
    assert set(read_cache.stale(Kind.POSITIONS, [1, 2, 3, 4])) == {1, 2}
    # The newest value wins: an older one written later does not replace it.
    await read_cache.put_many(Kind.POSITIONS, {2: _value(now - 10 * STALE_WINDOW)})
    assert read_cache.stale(Kind.POSITIONS, [2])[2].as_of == now - TTL - STALE_WINDOW / 2


async def test_a_zero_window_serves_nothing_stale(redis_url: str) -> None:
    store = RedisCache(redis_url, op_timeout=TIMEOUT)
    async with store:
        cache = ReadCache(store, env="demo", ttls=dict.fromkeys(Kind, TTL), timeout=TIMEOUT)
        cache.set_user(42)
        await cache.put_many(Kind.POSITIONS, {1: _value(now_epoch())})
        assert cache.stale(Kind.POSITIONS, [1]) == {}
