"""Helpers for the end-to-end stream tests: a subscriber task and chain checks."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from typing import Any

import grpc
from tradovate_gateway.v1 import trading_pb2 as pb
from tradovate_gateway.v1 import trading_pb2_grpc as pb_grpc

from server.live.queue import Delta

DELTAS = frozenset({"position", "order", "balance", "pnl", "account"})
WAIT = 20.0


def is_delta(update: pb.StreamUpdate) -> bool:
    return update.WhichOneof("payload") in DELTAS


class Subscriber:
    """Reads one StreamUpdates call in a task and keeps every message."""

    def __init__(
        self, stub: pb_grpc.TradingServiceAsyncStub, request: pb.StreamUpdatesRequest
    ) -> None:
        self.call = stub.StreamUpdates(request)
        self.messages: list[pb.StreamUpdate] = []
        self.error: grpc.aio.AioRpcError | None = None
        self._changed = asyncio.Event()
        self.task = asyncio.create_task(self._read())

    async def _read(self) -> None:
        try:
            async for update in self.call:
                self.messages.append(update)
                self._changed.set()
        except grpc.aio.AioRpcError as exc:
            self.error = exc
        finally:
            self._changed.set()

    @property
    def deltas(self) -> list[pb.StreamUpdate]:
        return [m for m in self.messages if is_delta(m)]

    @property
    def last_sequence(self) -> int:
        deltas = self.deltas
        if deltas:
            return deltas[-1].sequence
        done = [m for m in self.messages if m.WhichOneof("payload") == "snapshot_complete"]
        return done[-1].snapshot_complete.sequence if done else 0

    async def wait_for(self, check: Callable[[Subscriber], bool], within: float = WAIT) -> None:
        async with asyncio.timeout(within):
            while not check(self):
                if self.task.done():
                    raise AssertionError(f"stream ended early: {self.error}")
                self._changed.clear()
                await self._changed.wait()

    async def reach(self, sequence: int) -> None:
        """Until a delta at or after ``sequence`` arrived (or the snapshot is past it)."""
        await self.wait_for(lambda s: s.last_sequence >= sequence)

    async def close(self) -> None:
        self.call.cancel()
        await asyncio.gather(self.task, return_exceptions=True)


def assert_chained(deltas: list[pb.StreamUpdate], start: int) -> None:
    """Each delta names the one before it (or the snapshot): nothing missed, nothing twice."""
    previous = start
    for delta in deltas:
        assert delta.previous_sequence == previous, (delta.sequence, delta.previous_sequence)
        assert delta.sequence > previous
        previous = delta.sequence


def entity_key(update: pb.StreamUpdate) -> tuple[str, int]:
    which = str(update.WhichOneof("payload"))
    inner: Any = getattr(update, which)
    if which == "position":
        return which, inner.position.id
    if which == "order":
        return which, inner.order.id
    if which == "account":
        return which, inner.account.id
    return which, update.account_id


def payload_bytes(update: pb.StreamUpdate) -> bytes:
    which = str(update.WhichOneof("payload"))
    inner: Any = getattr(update, which)
    data: bytes = inner.SerializeToString(deterministic=True)
    return data


async def until(check: Callable[[], bool], step: float = 0.005) -> None:
    """Poll state owned by another component (simulator, gateway) until ``check`` holds."""
    async with asyncio.timeout(WAIT):
        while not check():  # noqa: ASYNC110 - nothing to wait on but the state itself
            await asyncio.sleep(step)


class Ledger:
    """Accounts for a subscriber's deltas against the hub's full sequence of deltas.

    ``add_stream`` checks one call's deltas: each names the one before it (a broken
    chain is a gap), and each merge it marks names exactly the hub's deltas of the same
    entity it replaced, none of which was sent. ``missing`` lists the hub's deltas (in a
    range) that no stream sent or marked as merged: it must be empty.
    """

    def __init__(self, hub_deltas: Iterable[Delta]) -> None:
        self.hub = {d.sequence: d for d in hub_deltas}
        self.sent: set[int] = set()
        self.merged: set[int] = set()
        self.gaps = 0
        self.merges = 0
        self.repeats = 0

    def add_stream(self, deltas: list[pb.StreamUpdate], start: int) -> None:
        previous = start
        sent_here = {d.sequence for d in deltas}
        for update in deltas:
            if update.previous_sequence != previous:
                self.gaps += 1
            assert update.sequence > previous, (update.sequence, previous)
            previous = update.sequence
            if update.sequence in self.sent or update.sequence in self.merged:
                self.repeats += 1
            self.sent.add(update.sequence)
            if update.merged_count == 0:
                assert update.merged_from_sequence == 0
                continue
            self.merges += 1
            key = self.hub[update.sequence].key
            replaced = [
                s
                for s in range(update.merged_from_sequence, update.sequence)
                if s in self.hub and self.hub[s].key == key
            ]
            assert len(replaced) == update.merged_count, (update.sequence, replaced)
            assert replaced[0] == update.merged_from_sequence
            assert not sent_here & set(replaced), (update.sequence, replaced)
            self.merged.update(replaced)

    def missing(self, after: int, through: int, wanted: Callable[[Delta], bool]) -> list[int]:
        return [
            s
            for s in range(after + 1, through + 1)
            if wanted(self.hub[s]) and s not in self.sent and s not in self.merged
        ]
