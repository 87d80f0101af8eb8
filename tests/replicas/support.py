"""Helpers for the delta log tests: a stand-in lease holder and a bounded event collector."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from redis.asyncio import Redis

from trading_gateway.server.replicas.delta_log import DeltaLog, DeltaLogKeys
from trading_gateway.server.replicas.delta_tail import DeltaTail, LogEntry, TailEvent
from trading_gateway.server.replicas.lease import LeaseKeys

LEASE_KEYS = LeaseKeys.for_login("test", "alpha")
KEYS = DeltaLogKeys.of(LEASE_KEYS)


@asynccontextmanager
async def raw_redis(url: str) -> AsyncIterator[Redis]:
    """A plain client for what a test does behind the log's back (lease, DEL, raw XADD)."""
    client = Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
    try:
        yield client
    finally:
        await client.aclose()


async def take_lease(redis: Redis, keys: DeltaLogKeys, epoch: int) -> None:
    """What the lease module's acquire leaves behind: the lease hash with the new epoch."""
    await redis.hset(keys.lease, mapping={"epoch": str(epoch), "holder": f"replica-{epoch}"})


def payload(sequence: int) -> bytes:
    return f"delta-{sequence}".encode()


def payloads(first: int, count: int) -> list[bytes]:
    return [payload(s) for s in range(first, first + count)]


async def append_range(log: DeltaLog, epoch: int, first: int, last: int, batch: int = 1) -> None:
    """Append ``first``..``last`` in batches of ``batch`` (one round trip each)."""
    sequence = first
    while sequence <= last:
        count = min(batch, last - sequence + 1)
        await log.append_batch(
            epoch, sequence, [payload(s) for s in range(sequence, sequence + count)]
        )
        sequence += count


async def next_event(events: AsyncIterator[TailEvent], within: float = 5.0) -> TailEvent:
    async with asyncio.timeout(within):
        return await anext(events)


async def entries_until(
    events: AsyncIterator[TailEvent], last: int, within: float = 10.0
) -> list[LogEntry]:
    """Every event up to the entry of sequence ``last``; fails on anything but entries."""
    got: list[LogEntry] = []
    async with asyncio.timeout(within):
        async for event in events:
            assert isinstance(event, LogEntry), f"expected entries only, got {event!r}"
            got.append(event)
            if event.sequence >= last:
                return got
    raise AssertionError("the tail ended")


def tail_of(url: str, keys: DeltaLogKeys, after: int | None = None) -> DeltaTail:
    """A tail with short waits, so the tests' bounds are tight."""
    return DeltaTail(
        url, keys, after=after, block=0.2, op_timeout=0.5, backoff_initial=0.05, backoff_max=0.2
    )
