"""Followers tailing the delta log on a real Redis: order, gaps, vanished streams, restarts."""

from __future__ import annotations

import asyncio
import os
import random
import shutil
import signal
import tempfile
import time
from collections.abc import AsyncIterator, Iterator

import pytest

from tests.conftest import RedisServer, free_port, redis_server_binary
from tests.replicas.support import (
    KEYS,
    append_range,
    entries_until,
    next_event,
    payload,
    raw_redis,
    tail_of,
    take_lease,
)
from trading_gateway.server.replicas.delta_log import DeltaLog, SequenceMismatch
from trading_gateway.server.replicas.delta_tail import (
    LogEntry,
    RedisLost,
    ResyncNeeded,
    SnapshotLoaded,
    TailEvent,
)

EPOCH = 1


@pytest.fixture
async def log(redis_url: str) -> AsyncIterator[DeltaLog]:
    async with DeltaLog(redis_url, KEYS, capacity=10_000, op_timeout=0.5) as opened:
        async with raw_redis(redis_url) as redis:
            await take_lease(redis, opened.keys, EPOCH)
        yield opened


def assert_gap_free(entries: list[LogEntry], first: int, last: int) -> None:
    assert [e.sequence for e in entries] == list(range(first, last + 1))
    assert all(e.payload == payload(e.sequence) and e.epoch == EPOCH for e in entries)


async def test_three_tails_see_every_delta_once_in_order_under_an_appending_loop(
    log: DeltaLog, redis_url: str
) -> None:
    total = 600
    await log.write_snapshot(EPOCH, 0, b"empty")
    rng = random.Random(19)

    async def appender() -> None:
        sequence = 1
        while sequence <= total:
            count = min(rng.randint(1, 8), total - sequence + 1)
            await append_range(log, EPOCH, sequence, sequence + count - 1, batch=count)
            sequence += count
            await asyncio.sleep(rng.choice((0, 0, 0.001, 0.005)))

    async def follower() -> list[LogEntry]:
        async with tail_of(redis_url, log.keys) as tail:
            events = aiter(tail)
            first = await next_event(events)
            assert isinstance(first, SnapshotLoaded) and first.snapshot.state == b"empty"
            return await entries_until(events, total, within=30)

    async with asyncio.TaskGroup() as group:
        tails = [group.create_task(follower()) for _ in range(3)]
        await asyncio.sleep(0.05)  # the tails start before (most of) the appends
        group.create_task(appender())
    for task in tails:
        assert_gap_free(task.result(), 1, total)


async def test_a_tail_started_mid_log_loads_the_snapshot_then_continues_it(
    log: DeltaLog, redis_url: str
) -> None:
    await append_range(log, EPOCH, 1, 40, batch=10)
    await log.write_snapshot(EPOCH, 25, b"state@25")
    async with tail_of(redis_url, log.keys) as tail:
        events = aiter(tail)
        loaded = await next_event(events)
        assert isinstance(loaded, SnapshotLoaded) and loaded.snapshot.sequence == 25
        assert_gap_free(await entries_until(events, 40), 26, 40)


async def test_a_trimmed_range_yields_resync_needed_then_the_next_snapshot(
    redis_url: str,
) -> None:
    async with DeltaLog(redis_url, KEYS, capacity=50) as log, raw_redis(redis_url) as redis:
        await take_lease(redis, log.keys, EPOCH)
        await append_range(log, EPOCH, 1, 5)
        async with tail_of(redis_url, log.keys, after=2) as tail:  # a follower behind, at 2
            await append_range(log, EPOCH, 6, 1_000, batch=100)  # trims 3.. away
            events = aiter(tail)
            gap = await next_event(events)
            assert isinstance(gap, ResyncNeeded), gap
            assert gap.last_sequence == 2 and "trimmed" in gap.reason
            await log.write_snapshot(EPOCH, 1_000, b"state@1000")
            loaded = await next_event(events)
            assert isinstance(loaded, SnapshotLoaded) and loaded.snapshot.sequence == 1_000
            await log.append(EPOCH, 1_001, payload(1_001))
            assert_gap_free(await entries_until(events, 1_001), 1_001, 1_001)
            assert tail.resyncs == 1


async def test_a_stream_deleted_mid_tail_yields_resync_needed_and_the_tail_goes_on(
    log: DeltaLog, redis_url: str
) -> None:
    await log.write_snapshot(EPOCH, 0, b"empty")
    async with tail_of(redis_url, log.keys) as tail, raw_redis(redis_url) as redis:
        events = aiter(tail)
        assert isinstance(await next_event(events), SnapshotLoaded)
        await append_range(log, EPOCH, 1, 10)
        assert_gap_free(await entries_until(events, 10), 1, 10)

        await redis.delete(log.keys.deltas)  # Redis lost the stream
        vanished = await next_event(events)
        assert isinstance(vanished, ResyncNeeded), vanished
        assert vanished.last_sequence == 10 and "vanished" in vanished.reason

        # The holder continues: its append starts a new log, so it stores a snapshot.
        appended = await log.append(EPOCH, 11, payload(11))
        assert appended.new_log
        await log.write_snapshot(EPOCH, 11, b"state@11")
        loaded = await next_event(events)
        assert isinstance(loaded, SnapshotLoaded) and loaded.snapshot.state == b"state@11"
        await append_range(log, EPOCH, 12, 20)
        assert_gap_free(await entries_until(events, 20), 12, 20)


async def test_a_stream_rewritten_below_the_position_yields_resync_needed(
    log: DeltaLog, redis_url: str
) -> None:
    await append_range(log, EPOCH, 1, 30)
    async with tail_of(redis_url, log.keys, after=30) as tail, raw_redis(redis_url) as redis:
        events = aiter(tail)
        await redis.delete(log.keys.deltas)
        await append_range(log, EPOCH, 1, 3)  # a log restarted from scratch, below us
        restarted = await next_event(events)
        assert isinstance(restarted, ResyncNeeded), restarted
        assert "restarted below" in restarted.reason


async def test_redelivered_sequences_are_not_yielded_twice(log: DeltaLog, redis_url: str) -> None:
    async with tail_of(redis_url, log.keys, after=0) as tail, raw_redis(redis_url) as redis:
        events = aiter(tail)
        await append_range(log, EPOCH, 1, 3)
        # The same sequence again, as a redelivery after a failover would bring it.
        for again in ("3-1", "3-2"):
            await redis.xadd(log.keys.deltas, {"e": str(EPOCH), "p": b"again"}, id=again)
        await append_range(log, EPOCH, 4, 6)
        got = await entries_until(events, 6)
        assert_gap_free(got, 1, 6)
        assert tail.duplicates == 2


@pytest.fixture
def restartable_redis() -> Iterator[RedisServer]:
    """A private redis-server that keeps its data over a restart (SHUTDOWN SAVE)."""
    workdir = tempfile.mkdtemp(prefix="tg-redis-deltalog-")
    server = RedisServer(binary=redis_server_binary(), port=free_port(), workdir=workdir)
    server.start()
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(workdir, ignore_errors=True)


async def test_redis_restarted_mid_tail_the_tail_reconnects_and_resumes_without_duplicate(
    restartable_redis: RedisServer,
) -> None:
    url = restartable_redis.url
    seen: list[tuple[float, TailEvent]] = []
    caught_up = asyncio.Event()

    async def consume(events: AsyncIterator[TailEvent]) -> None:
        async for event in events:
            seen.append((time.monotonic(), event))
            if isinstance(event, LogEntry) and event.sequence == 20:
                caught_up.set()
            if isinstance(event, LogEntry) and event.sequence == 30:
                return

    async with (
        DeltaLog(url, KEYS, capacity=1_000, op_timeout=0.5) as log,
        tail_of(url, log.keys, after=0) as tail,
        raw_redis(url) as redis,
    ):
        await take_lease(redis, log.keys, EPOCH)
        await append_range(log, EPOCH, 1, 20, batch=5)
        consumer = asyncio.create_task(consume(aiter(tail)))
        try:
            async with asyncio.timeout(10):
                await caught_up.wait()
            await redis.shutdown(save=True)  # persists the stream and the lease
            assert restartable_redis.proc is not None
            restartable_redis.proc.wait(timeout=10)
            await asyncio.sleep(0.5)  # down long enough for the tail to notice
            restartable_redis.start()
            restarted = time.monotonic()

            # A writer retrying its last batch after the restart is refused.
            with pytest.raises(SequenceMismatch):
                await log.append_batch(EPOCH, 16, [payload(s) for s in range(16, 21)])
            await append_range(log, EPOCH, 21, 30)
            async with asyncio.timeout(10):
                await consumer
        finally:
            consumer.cancel()

    events = [event for _, event in seen]
    entries = [e for e in events if isinstance(e, LogEntry)]
    assert_gap_free(entries, 1, 30)
    assert any(isinstance(e, RedisLost) for e in events), "the outage was reported"
    assert not [e for e in events if isinstance(e, ResyncNeeded | SnapshotLoaded)]
    resumed_at = next(at for at, e in seen if isinstance(e, LogEntry) and e.sequence == 21)
    # The tail's pause tops out at 0.2 s and a read waits at most block + op_timeout.
    assert resumed_at - restarted < 2.0


async def test_a_tail_starts_only_from_a_snapshot_the_log_still_continues(
    redis_url: str,
) -> None:
    async with DeltaLog(redis_url, KEYS, capacity=50) as log, raw_redis(redis_url) as redis:
        await take_lease(redis, log.keys, EPOCH)
        await log.write_snapshot(EPOCH, 0, b"empty")
        await append_range(log, EPOCH, 1, 1_000, batch=100)  # 1.. trimmed away
        async with tail_of(redis_url, log.keys) as tail:
            events = aiter(tail)
            waiting = asyncio.create_task(next_event(events))
            await asyncio.sleep(0.5)
            assert not waiting.done(), "a snapshot the log no longer continues was loaded"
            await log.write_snapshot(EPOCH, 1_000, b"state@1000")
            loaded = await waiting
            assert isinstance(loaded, SnapshotLoaded) and loaded.snapshot.sequence == 1_000


@pytest.fixture
def paused(redis_server: RedisServer) -> Iterator[RedisServer]:
    """Resume a SIGSTOPped redis-server whatever the test's outcome."""
    yield redis_server
    if redis_server.proc is not None and redis_server.proc.poll() is None:
        os.kill(redis_server.proc.pid, signal.SIGCONT)


async def test_a_hung_redis_is_reported_within_the_bound_and_the_tail_goes_on(
    log: DeltaLog, paused: RedisServer
) -> None:
    assert paused.proc is not None
    async with tail_of(paused.url, log.keys, after=0) as tail:
        events = aiter(tail)
        await append_range(log, EPOCH, 1, 3)
        assert_gap_free(await entries_until(events, 3), 1, 3)
        os.kill(paused.proc.pid, signal.SIGSTOP)
        stopped = time.monotonic()
        lost = await next_event(events, within=5)
        # A read waits at most block + op_timeout (0.2 + 0.5 s here).
        assert isinstance(lost, RedisLost) and time.monotonic() - stopped < 1.5
        os.kill(paused.proc.pid, signal.SIGCONT)
        await append_range(log, EPOCH, 4, 6)
        assert_gap_free(await entries_until(events, 6), 4, 6)


async def test_redis_restarted_empty_the_tail_resyncs_and_converges_without_a_restart(
    log: DeltaLog, redis_server: RedisServer
) -> None:
    await log.write_snapshot(EPOCH, 0, b"empty")
    async with tail_of(redis_server.url, log.keys) as tail:
        events = aiter(tail)
        assert isinstance(await next_event(events), SnapshotLoaded)
        await append_range(log, EPOCH, 1, 10)
        assert_gap_free(await entries_until(events, 10), 1, 10)

        redis_server.stop()  # kill -9, no persistence: the stream, snapshot and lease are gone
        redis_server.start()
        seen: list[TailEvent] = []
        async with asyncio.timeout(5):
            async for event in events:
                seen.append(event)
                if isinstance(event, ResyncNeeded):
                    break
        assert isinstance(seen[-1], ResyncNeeded) and seen[-1].last_sequence == 10
        assert all(isinstance(e, RedisLost) for e in seen[:-1])

        # The holder takes the lease again and continues its sequence into a new log.
        async with raw_redis(redis_server.url) as redis:
            await take_lease(redis, log.keys, EPOCH + 1)
        assert await log.head() is None
        assert (await log.append(EPOCH + 1, 11, payload(11))).new_log
        await log.write_snapshot(EPOCH + 1, 11, b"state@11")
        loaded = await next_event(events)
        assert isinstance(loaded, SnapshotLoaded) and loaded.snapshot.sequence == 11
        await log.append(EPOCH + 1, 12, payload(12))
        entry = await next_event(events)
        assert isinstance(entry, LogEntry) and (entry.sequence, entry.epoch) == (12, EPOCH + 1)
