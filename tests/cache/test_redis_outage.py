"""RedisCache when Redis dies, hangs and comes back: misses, not errors; one log line; recovery."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import time
from collections.abc import AsyncIterator, Iterator

import pytest

from tests.conftest import RedisServer, free_port
from trading_gateway.server.cache import RedisCache

# Hang guard for a single cache call. The store's own budget is op_timeout (0.2 s here);
# without it a dead or stopped Redis would block a call for the OS TCP timeout.
CALL_BOUND = 3.0
LOGGER = "trading_gateway.server.cache.redis_store"


@pytest.fixture
def state_changes() -> list[bool]:
    return []


@pytest.fixture
async def cache(redis_url: str, state_changes: list[bool]) -> AsyncIterator[RedisCache]:
    store = RedisCache(
        redis_url,
        op_timeout=0.2,
        failure_threshold=2,
        backoff_initial=0.05,
        backoff_max=0.2,
        on_state_change=state_changes.append,
    )
    async with store:
        yield store


@pytest.fixture
def paused(redis_server: RedisServer) -> Iterator[RedisServer]:
    """Resume a SIGSTOPped redis-server whatever the test's outcome."""
    yield redis_server
    if redis_server.proc is not None and redis_server.proc.poll() is None:
        os.kill(redis_server.proc.pid, signal.SIGCONT)


def healthy(cache: RedisCache) -> bool:
    """Read the flag through a call so type narrowing from earlier asserts does not stick."""
    return cache.healthy


async def wait_until_healthy(cache: RedisCache) -> None:
    deadline = time.monotonic() + 15
    while not cache.healthy:
        assert time.monotonic() < deadline, "cache did not recover by itself"
        await asyncio.sleep(0.02)


async def test_killed_redis_reads_as_miss_then_recovers_by_itself(
    cache: RedisCache,
    redis_server: RedisServer,
    state_changes: list[bool],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    await cache.set("k:before", b"v", ttl=60)
    assert await cache.get("k:before") == b"v"

    redis_server.stop()
    for _ in range(20):
        assert await asyncio.wait_for(cache.get("k:before"), CALL_BOUND) is None
        assert await asyncio.wait_for(cache.get_many(["k:a", "k:b"]), CALL_BOUND) == [None, None]
        await asyncio.wait_for(cache.set("k:during", b"x", ttl=60), CALL_BOUND)
        await asyncio.wait_for(cache.set_many({"k:m": b"x"}, ttl=60), CALL_BOUND)
        await asyncio.wait_for(cache.delete("k:before"), CALL_BOUND)

    assert not cache.healthy
    assert state_changes == [False]
    # The circuit opened after `failure_threshold` failures; later calls skipped Redis.
    assert 2 <= cache.counters.errors < 10
    assert cache.counters.skipped > 80
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1, [r.getMessage() for r in warnings]
    assert "unavailable" in warnings[0].getMessage()

    redis_server.start()
    await wait_until_healthy(cache)  # no calls made: the background probe found Redis
    assert state_changes == [False, True]
    await cache.set("k:after", b"back", ttl=60)
    assert await cache.get("k:after") == b"back"
    assert any("recovered" in r.getMessage() for r in caplog.records)


async def test_second_outage_is_logged_and_signalled_again(
    cache: RedisCache,
    redis_server: RedisServer,
    state_changes: list[bool],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger=LOGGER)
    for _ in range(2):
        redis_server.stop()
        for _ in range(5):
            assert await asyncio.wait_for(cache.get("k"), CALL_BOUND) is None
        redis_server.start()
        await wait_until_healthy(cache)
    assert state_changes == [False, True, False, True]
    assert len([r for r in caplog.records if r.levelno == logging.WARNING]) == 2


async def test_hung_redis_costs_at_most_the_timeout(
    cache: RedisCache, paused: RedisServer, state_changes: list[bool]
) -> None:
    await cache.set("k:hang", b"v", ttl=60)
    assert paused.proc is not None
    os.kill(paused.proc.pid, signal.SIGSTOP)  # accepts TCP, never answers
    try:
        for _ in range(5):
            assert await asyncio.wait_for(cache.get("k:hang"), CALL_BOUND) is None
        assert not cache.healthy
        assert state_changes == [False]
        assert cache.counters.errors == 2  # two timeouts opened the circuit
        assert cache.counters.skipped == 3
    finally:
        os.kill(paused.proc.pid, signal.SIGCONT)
    await wait_until_healthy(cache)
    assert await cache.get("k:hang") == b"v"  # Redis kept its data while paused
    assert state_changes == [False, True]


async def test_ping_reports_a_redis_that_was_never_there() -> None:
    changes: list[bool] = []
    store = RedisCache(
        f"redis://127.0.0.1:{free_port()}/0", op_timeout=0.2, on_state_change=changes.append
    )
    async with store:
        assert await asyncio.wait_for(store.ping(), CALL_BOUND) is False
        assert not store.healthy
        assert changes == [False]
        assert await store.get("k") is None
    assert not store.healthy  # closed: the probe task is gone and calls skip Redis
    assert await store.get("k") is None


async def test_failing_state_callback_does_not_break_the_cache(
    redis_server: RedisServer,
) -> None:
    def explode(healthy: bool) -> None:
        raise RuntimeError(f"callback bug ({healthy})")

    store = RedisCache(
        redis_server.url, op_timeout=0.2, failure_threshold=1, on_state_change=explode
    )
    async with store:
        redis_server.stop()
        assert await asyncio.wait_for(store.get("k"), CALL_BOUND) is None
        assert not store.healthy


async def test_ping_closes_the_circuit_as_soon_as_redis_is_back(
    redis_server: RedisServer,
) -> None:
    changes: list[bool] = []
    store = RedisCache(
        redis_server.url,
        op_timeout=0.2,
        failure_threshold=1,
        backoff_initial=5.0,  # the background probe would take seconds; ping() does not wait
        backoff_max=5.0,
        on_state_change=changes.append,
    )
    async with store:
        redis_server.stop()
        assert await asyncio.wait_for(store.get("k"), CALL_BOUND) is None
        assert not store.healthy
        redis_server.start()
        assert await asyncio.wait_for(store.ping(), CALL_BOUND) is True
        assert healthy(store)
        await store.set("k", b"v", ttl=60)
        assert await store.get("k") == b"v"
    assert changes == [False, True]


async def test_a_call_the_caller_abandons_is_not_a_redis_failure(
    paused: RedisServer,
) -> None:
    store = RedisCache(paused.url, op_timeout=2.0, failure_threshold=1)
    async with store:
        assert await store.ping()
        assert paused.proc is not None
        os.kill(paused.proc.pid, signal.SIGSTOP)
        try:
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(store.get("k"), 0.05)
        finally:
            os.kill(paused.proc.pid, signal.SIGCONT)
        # Cancellation is the caller's decision: no error counted, the circuit stays closed.
        assert store.counters.errors == 0
        assert store.healthy


async def test_a_guard_as_long_as_op_timeout_still_sees_a_miss(paused: RedisServer) -> None:
    store = RedisCache(paused.url, op_timeout=1.0, failure_threshold=1)
    async with store:
        assert await store.ping()
        assert paused.proc is not None
        os.kill(paused.proc.pid, signal.SIGSTOP)
        try:
            # The store gives up waiting at 80 % of op_timeout, before the caller's guard.
            assert await asyncio.wait_for(store.get("k"), store.op_timeout) is None
        finally:
            os.kill(paused.proc.pid, signal.SIGCONT)
        assert store.counters.errors == 1
        assert not healthy(store)


async def test_a_ping_waits_longer_than_a_read_so_a_slow_moment_is_not_an_outage(
    paused: RedisServer,
) -> None:
    changes: list[bool] = []
    store = RedisCache(
        paused.url,
        op_timeout=0.05,
        failure_threshold=5,
        ping_timeout=2.0,
        on_state_change=changes.append,
    )
    async with store:
        assert await store.ping()
        assert paused.proc is not None
        pid = paused.proc.pid
        os.kill(pid, signal.SIGSTOP)  # Redis stalls for 0.3 s, then answers again
        asyncio.get_running_loop().call_later(0.3, os.kill, pid, signal.SIGCONT)
        started = time.monotonic()
        assert await asyncio.wait_for(store.get("k"), CALL_BOUND) is None  # the read gave up
        assert time.monotonic() - started < 0.3
        assert await asyncio.wait_for(store.ping(), CALL_BOUND)  # the PING waited it out
        assert time.monotonic() - started >= 0.25
        assert healthy(store)
    assert changes == []
