"""A follower's reader of one login's delta log: snapshot, then every delta once, in order.

``async with DeltaTail(url, keys) as tail: async for event in tail: ...`` yields:

- ``SnapshotLoaded``: replace your state with ``snapshot.state``; the deltas that follow
  start at ``snapshot.sequence + 1``. The first event, unless the tail was started
  ``after`` a sequence you already hold. With ``min_snapshot``, only a snapshot at that
  sequence or later is loaded (a reader that knows the writer is about to store one).
- ``LogEntry``: the next delta, exactly ``previous + 1``.
- ``ResyncNeeded``: the log can no longer continue what you hold: a range was trimmed
  before you read it, or the stream vanished or restarted below your position (Redis lost
  its data). Drop your state; a ``SnapshotLoaded`` follows once the holder has stored a
  snapshot this tail has not loaded yet that the log continues.
- ``RedisLost``: Redis stopped answering (once per outage). The tail keeps retrying with
  a growing pause (``backoff_initial`` doubling up to ``backoff_max``) and continues from
  where it was when Redis answers again; nothing is yielded twice.

Guarantees: sequences are yielded strictly increasing and gap-free between resyncs,
whatever Redis redelivers. Entries are read with XREAD (no consumer group: the position
is the tail's own, nothing is acknowledged, so there is no pending list to redeliver or
lose); each read blocks at most ``block`` seconds, and after a read that brought nothing
the tail checks that the stream is still there and not behind its position. Every Redis
wait is bounded (``block + op_timeout``), so a hung Redis is a ``RedisLost``, not a hang.
Exiting the ``async with`` closes the tail's own connection.

What breaks it: a holder restarting its sequence space below a stream it did not lose
(``delta_log.py`` forbids that); a stream that vanished and was rewritten past this
tail's position within one ``block`` with an unrelated sequence space.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Final, TypeVar

from redis.exceptions import RedisError

from trading_gateway.server.replicas.connection import bounded_redis
from trading_gateway.server.replicas.delta_log import (
    DEFAULT_OP_TIMEOUT,
    DeltaLogKeys,
    Snapshot,
    sequence_of,
    snapshot_from,
    stream_id,
    text_of,
)

T = TypeVar("T")

DEFAULT_BLOCK: Final = 1.0
DEFAULT_COUNT: Final = 512
DEFAULT_SNAPSHOT_POLL: Final = 0.1
DEFAULT_BACKOFF_INITIAL: Final = 0.05
DEFAULT_BACKOFF_MAX: Final = 1.0


@dataclass(frozen=True, slots=True)
class SnapshotLoaded:
    snapshot: Snapshot


@dataclass(frozen=True, slots=True)
class LogEntry:
    sequence: int
    epoch: int
    payload: bytes


@dataclass(frozen=True, slots=True)
class ResyncNeeded:
    reason: str
    #: The last sequence yielded before the log broke off.
    last_sequence: int


@dataclass(frozen=True, slots=True)
class RedisLost:
    error: str


TailEvent = SnapshotLoaded | LogEntry | ResyncNeeded | RedisLost


class _Lost(Exception):
    """A Redis call failed or timed out (internal: becomes one ``RedisLost``)."""


def _id_key(entry_id: str) -> tuple[int, int]:
    major, _, minor = entry_id.partition("-")
    return int(major), int(minor or 0)


class DeltaTail:
    """Tails one login's delta stream; see the module docstring."""

    def __init__(
        self,
        url: str,
        keys: DeltaLogKeys,
        *,
        after: int | None = None,
        min_snapshot: int = 0,
        block: float = DEFAULT_BLOCK,
        count: int = DEFAULT_COUNT,
        op_timeout: float = DEFAULT_OP_TIMEOUT,
        snapshot_poll: float = DEFAULT_SNAPSHOT_POLL,
        backoff_initial: float = DEFAULT_BACKOFF_INITIAL,
        backoff_max: float = DEFAULT_BACKOFF_MAX,
    ) -> None:
        if block <= 0 or op_timeout <= 0 or snapshot_poll <= 0:
            raise ValueError("block, op_timeout and snapshot_poll must be positive")
        if not 0 < backoff_initial <= backoff_max:
            raise ValueError("need 0 < backoff_initial <= backoff_max")
        if count < 1:
            raise ValueError("count must be at least 1")
        if after is not None and after < 0:
            raise ValueError("after is a sequence: 0 or more")
        self.keys = keys
        self._block_ms = max(1, round(block * 1000))
        self._count = count
        self._snapshot_poll = snapshot_poll
        self._backoff_initial = backoff_initial
        self._backoff_max = backoff_max
        self._redis = bounded_redis(
            url, timeout=block + op_timeout, name="trading-gateway-deltatail"
        )
        #: The last sequence yielded (None: waiting for a snapshot).
        self.last_sequence: int | None = after
        self._position = stream_id(after) if after is not None else "0-0"
        self._stream_seen = False
        self._loaded_id: str | None = None
        # A snapshot below this sequence is not loaded (the reader knows a later one is due).
        self._min_snapshot = min_snapshot
        self._in_outage = False
        self._events: AsyncGenerator[TailEvent, None] | None = None
        #: Entries skipped because their sequence was already yielded (redeliveries).
        self.duplicates = 0
        self.resyncs = 0

    async def __aenter__(self) -> DeltaTail:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._events is not None:
            await self._events.aclose()
        await self._redis.aclose()

    def __aiter__(self) -> AsyncIterator[TailEvent]:
        if self._events is None:
            self._events = self._run()
        return self._events

    # ------------------------------------------------------------------ the loop
    async def _run(self) -> AsyncGenerator[TailEvent, None]:
        pause = self._backoff_initial
        while True:
            try:
                if self.last_sequence is None:
                    snapshot = await self._usable_snapshot()
                    self._answered()
                    if snapshot is None:
                        await asyncio.sleep(self._snapshot_poll)
                        continue
                    self._anchor(snapshot.sequence)
                    self._loaded_id = snapshot.snapshot_id
                    yield SnapshotLoaded(snapshot)
                    continue
                reply = await self._call(self._read)
                self._answered()
                pause = self._backoff_initial
                if not reply:
                    reason = await self._call(self._broken_off)
                    if reason:
                        yield self._resync(reason)
                    continue
                for event in self._entries(reply):
                    yield event
                    if isinstance(event, ResyncNeeded):
                        break
            except _Lost as lost:
                if not self._in_outage:
                    self._in_outage = True
                    yield RedisLost(str(lost))
                await asyncio.sleep(pause)
                pause = min(pause * 2, self._backoff_max)

    def _entries(self, reply: list[tuple[bytes, dict[bytes, bytes]]]) -> list[TailEvent]:
        events: list[TailEvent] = []
        for raw_id, fields in reply:
            entry_id = raw_id.decode()
            sequence = sequence_of(entry_id)
            last = self.last_sequence
            assert last is not None
            self._position = entry_id
            self._stream_seen = True
            if sequence <= last:
                self.duplicates += 1
                continue
            if sequence != last + 1:
                events.append(
                    self._resync(
                        f"the log skips from {last} to {sequence}: a range was trimmed or lost"
                    )
                )
                return events
            self.last_sequence = sequence
            events.append(LogEntry(sequence, int(fields[b"e"]), fields[b"p"]))
        return events

    def _anchor(self, sequence: int) -> None:
        self.last_sequence = sequence
        self._position = stream_id(sequence)
        self._stream_seen = False

    def _resync(self, reason: str) -> ResyncNeeded:
        # The log broke off: any snapshot it continues will do, whatever was asked before.
        self._min_snapshot = 0
        last = self.last_sequence or 0
        self.last_sequence = None
        self.resyncs += 1
        return ResyncNeeded(reason, last)

    def _answered(self) -> None:
        self._in_outage = False

    # ------------------------------------------------------------------ Redis reads
    async def _read(self) -> list[tuple[bytes, dict[bytes, bytes]]]:
        reply = await self._redis.xread(
            {self.keys.deltas: self._position}, count=self._count, block=self._block_ms
        )
        if not reply:
            return []
        # One stream asked: [[key, [(id, fields), ...]]] (RESP2) or {key: [[...]]} (RESP3).
        streams = reply.values() if isinstance(reply, dict) else (s[1] for s in reply)
        for entries in streams:
            return list(entries[0] if isinstance(reply, dict) else entries)
        return []

    async def _broken_off(self) -> str | None:
        """After a read that brought nothing: why the log no longer continues ours, if so."""
        top = await self._redis.xrevrange(self.keys.deltas, "+", "-", count=1)
        if not top:
            return "the stream vanished (Redis lost it)" if self._stream_seen else None
        self._stream_seen = True
        top_id = text_of(top[0][0])
        if _id_key(top_id) < _id_key(self._position):
            return f"the stream restarted below our position ({top_id} < {self._position})"
        return None

    async def _usable_snapshot(self) -> Snapshot | None:
        """The stored snapshot, if this tail has not loaded it before and the log continues
        it (its next stored entry is exactly the one after it, or none is stored yet)."""
        snapshot = snapshot_from(await self._call(lambda: self._redis.hgetall(self.keys.snapshot)))
        if snapshot is None or snapshot.snapshot_id == self._loaded_id:
            return None
        if snapshot.sequence < self._min_snapshot:
            return None
        following = await self._call(
            lambda: self._redis.xrange(
                self.keys.deltas, stream_id(snapshot.sequence + 1), "+", count=1
            )
        )
        if following and sequence_of(following[0][0]) != snapshot.sequence + 1:
            return None
        return snapshot

    async def _call(self, run: Callable[[], Awaitable[T]]) -> T:
        try:
            return await run()
        except (RedisError, OSError, TimeoutError) as error:
            raise _Lost(f"{type(error).__name__}: {error}") from error
