"""The holder's side of the delta log on a real Redis: fencing, sequencing, batches, snapshots."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import AsyncIterator, Iterator

import pytest

from tests.conftest import RedisServer, free_port
from tests.replicas.support import KEYS, LEASE_KEYS, append_range, payload, raw_redis, take_lease
from trading_gateway.server.replicas.connection import bounded_redis
from trading_gateway.server.replicas.delta_log import (
    DeltaLog,
    DeltaLogKeys,
    Fenced,
    LogUnavailable,
    SequenceMismatch,
    StaleSnapshot,
    sequence_of,
    text_of,
)
from trading_gateway.server.replicas.lease import LeaseKeys, LoginLease


@pytest.fixture
async def log(redis_url: str) -> AsyncIterator[DeltaLog]:
    async with DeltaLog(redis_url, KEYS, capacity=1_000, op_timeout=0.5) as opened:
        yield opened


async def stream_ids(url: str, keys: DeltaLogKeys) -> list[str]:
    async with raw_redis(url) as redis:
        return [text_of(entry_id) for entry_id, _ in await redis.xrange(keys.deltas) or []]


async def test_appends_are_numbered_by_sequence_and_start_a_new_log_once(
    log: DeltaLog, redis_url: str
) -> None:
    async with raw_redis(redis_url) as redis:
        await take_lease(redis, log.keys, 7)
    first = await log.append(7, 1, payload(1))
    second = await log.append_batch(7, 2, [payload(2), payload(3)])
    assert (first.last_sequence, first.new_log) == (1, True)
    assert (second.last_sequence, second.new_log) == (3, False)
    assert await stream_ids(redis_url, log.keys) == ["1-0", "2-0", "3-0"]
    assert await log.head() == 3


async def test_a_sequence_that_does_not_follow_is_refused_and_nothing_is_appended(
    log: DeltaLog, redis_url: str
) -> None:
    async with raw_redis(redis_url) as redis:
        await take_lease(redis, log.keys, 1)
    await append_range(log, 1, 1, 5)
    for wrong in (5, 3, 7):  # a retried append, an old one, one that skips
        with pytest.raises(SequenceMismatch) as refused:
            await log.append_batch(1, wrong, [payload(wrong), payload(wrong + 1)])
        assert (refused.value.given, refused.value.expected) == (wrong, 6)
    assert await log.head() == 5
    assert len(await stream_ids(redis_url, log.keys)) == 5


async def test_a_stale_writer_is_fenced_once_a_new_holder_bumped_the_epoch(
    log: DeltaLog, redis_url: str
) -> None:
    async with raw_redis(redis_url) as redis:
        await take_lease(redis, log.keys, 1)
        await append_range(log, 1, 1, 3)
        await log.write_snapshot(1, 3, b"state@3")
        await take_lease(redis, log.keys, 2)  # a new holder took over

        with pytest.raises(Fenced) as fenced:
            await log.append(1, 4, payload(4))
        assert (fenced.value.epoch, fenced.value.current) == (1, 2)
        with pytest.raises(Fenced):
            await log.write_snapshot(1, 4, b"stale state")
        assert await log.head() == 3
        snapshot = await log.read_snapshot()
        assert snapshot is not None and snapshot.state == b"state@3"

        # The new holder continues the same sequence space.
        assert (await log.append(2, 4, payload(4))).last_sequence == 4

        await redis.delete(log.keys.lease)  # lease lapsed, nobody holds it
        with pytest.raises(Fenced) as lapsed:
            await log.append(2, 5, payload(5))
        assert lapsed.value.current is None
    assert await log.head() == 4


async def test_a_batch_is_one_round_trip(log: DeltaLog, redis_url: str) -> None:
    async with raw_redis(redis_url) as redis:
        await take_lease(redis, log.keys, 1)
        await log.append(1, 1, payload(1))  # loads the script
        await redis.config_resetstat()
        await log.append_batch(1, 2, [payload(s) for s in range(2, 12)])
        stats = await redis.info("commandstats")
    assert stats["cmdstat_evalsha"]["calls"] == 1
    assert stats["cmdstat_xadd"]["calls"] == 10
    assert await log.head() == 11


async def test_the_stream_is_trimmed_to_about_the_capacity(redis_url: str) -> None:
    async with DeltaLog(redis_url, KEYS, capacity=50) as log, raw_redis(redis_url) as redis:
        await take_lease(redis, log.keys, 1)
        await append_range(log, 1, 1, 1_000, batch=100)
        length = await redis.xlen(log.keys.deltas)
        oldest = await redis.xrange(log.keys.deltas, count=1)
    assert oldest
    first = oldest[0][0]
    # MAXLEN ~ trims whole macro nodes (100 entries by default): at least 50 stay.
    assert 50 <= length <= 150
    assert sequence_of(first) == 1_000 - length + 1


async def test_an_emptied_stream_refuses_sequences_at_or_below_its_last_id(
    log: DeltaLog, redis_url: str
) -> None:
    async with raw_redis(redis_url) as redis:
        await take_lease(redis, log.keys, 1)
        await append_range(log, 1, 1, 4)
        await redis.xtrim(log.keys.deltas, maxlen=0)
    with pytest.raises(SequenceMismatch) as refused:
        await log.append(1, 2, payload(2))
    assert refused.value.expected == 5
    assert (await log.append(1, 5, payload(5))).last_sequence == 5


async def test_a_snapshot_never_goes_back(log: DeltaLog, redis_url: str) -> None:
    async with raw_redis(redis_url) as redis:
        await take_lease(redis, log.keys, 3)
    assert await log.read_snapshot() is None
    first_id = await log.write_snapshot(3, 10, b"state@10")
    with pytest.raises(StaleSnapshot) as stale:
        await log.write_snapshot(3, 9, b"state@9")
    assert (stale.value.given, stale.value.current) == (9, 10)
    second_id = await log.write_snapshot(3, 10, b"state@10 again")
    snapshot = await log.read_snapshot()
    assert snapshot is not None
    assert (snapshot.state, snapshot.sequence, snapshot.epoch) == (b"state@10 again", 10, 3)
    assert snapshot.snapshot_id == second_id != first_id


def test_keys_sit_under_the_login_lease_prefix_and_its_hash_tag() -> None:
    lease_keys = LeaseKeys.for_login("prod", "alpha")
    keys = DeltaLogKeys.of(lease_keys)
    assert keys == DeltaLogKeys.for_login("prod", "alpha")
    assert (keys.lease, keys.deltas, keys.snapshot) == (
        lease_keys.lease,
        "tg:prod:login:{alpha}:deltas",
        "tg:prod:login:{alpha}:snapshot",
    )
    with pytest.raises(ValueError, match="login name"):
        DeltaLogKeys.for_login("prod", "Bad Name")


@pytest.fixture
def paused(redis_server: RedisServer) -> Iterator[RedisServer]:
    """Resume a SIGSTOPped redis-server whatever the test's outcome."""
    yield redis_server
    if redis_server.proc is not None and redis_server.proc.poll() is None:
        os.kill(redis_server.proc.pid, signal.SIGCONT)


async def test_a_hung_or_absent_redis_is_a_typed_error_within_the_timeout(
    paused: RedisServer,
) -> None:
    assert paused.proc is not None
    async with DeltaLog(paused.url, KEYS, capacity=10, op_timeout=0.3) as log:
        os.kill(paused.proc.pid, signal.SIGSTOP)
        started = time.monotonic()
        with pytest.raises(LogUnavailable):
            async with asyncio.timeout(3):
                await log.append(1, 1, payload(1))
        assert time.monotonic() - started < 1.5
    async with DeltaLog(f"redis://127.0.0.1:{free_port()}/0", KEYS, capacity=10) as nowhere:
        with pytest.raises(LogUnavailable):
            async with asyncio.timeout(3):
                await nowhere.read_snapshot()


async def test_a_holder_whose_lease_lapsed_is_fenced_by_the_next_holder(
    log: DeltaLog, redis_url: str, settled_redis: RedisServer
) -> None:
    """The split brain of issue 19 with the real lease: A pauses past its TTL, B takes over.
    (``settled_redis``: past the lease's quarantine after an earlier test's Redis restart.)"""
    client = bounded_redis(redis_url, timeout=0.5)
    try:
        first = LoginLease(client, LEASE_KEYS, "replica-a", ttl=0.3, op_timeout=0.05)
        second = LoginLease(client, LEASE_KEYS, "replica-b", ttl=0.3, op_timeout=0.05)
        term_a = await first.try_acquire()
        assert term_a is not None
        await append_range(log, term_a.epoch, 1, 3)
        assert await second.try_acquire() is None  # A still holds it

        await asyncio.sleep(0.4)  # A is paused past its TTL and renews nothing
        term_b = await second.try_acquire()
        assert term_b is not None and term_b.epoch > term_a.epoch
        with pytest.raises(Fenced) as fenced:
            await log.append(term_a.epoch, 4, payload(4))
        assert fenced.value.current == term_b.epoch
        assert (await log.append(term_b.epoch, 4, payload(4))).last_sequence == 4
        await second.release()
    finally:
        await client.aclose()
