"""Helpers for the end-to-end stream tests: a subscriber task and chain checks."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from typing import Any, cast

import grpc
from tradovate_gateway.v1 import trading_pb2 as pb
from tradovate_gateway.v1 import trading_pb2_grpc as pb_grpc

from tests.support.stack import Stack
from trading_gateway.client.errors import from_rpc_error
from trading_gateway.server.deadline import Deadline
from trading_gateway.server.live.components import BrokerLiveSubsystem
from trading_gateway.server.live.queue import Delta
from trading_gateway.server.live.service import LiveService

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


def reached(read: Callable[[], int], target: int) -> Callable[[], bool]:
    """A check for ``until``: ``read()`` is at least ``target`` (bound now, not when called)."""
    return lambda: read() >= target


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
        self.resynced: set[int] = set()
        self.gaps = 0
        self.merges = 0
        self.repeats = 0

    def add_resync(self, asked: int, snapshot: int) -> None:
        """A resume after ``asked`` got a resync snapshot at ``snapshot``: the deltas in
        between are covered by that state, not sent (the replay buffer or the queue could
        not hold them)."""
        self.resynced.update(range(asked + 1, snapshot + 1))

    def add_stream(self, deltas: list[pb.StreamUpdate], start: int | None) -> None:
        """One call's deltas after ``start`` (None: deltas already chain-checked, e.g. by
        TradingClient.watch, whose calls it joined)."""
        previous = start
        sent_here = {d.sequence for d in deltas}
        for update in deltas:
            if previous is not None:
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
            if wanted(self.hub[s])
            and s not in self.sent
            and s not in self.merged
            and s not in self.resynced
        ]


class SlowReader:
    """A subscriber that reads one message per ``pace`` seconds over its own channel and
    resumes at the resume point each server-ended stream names. ``decisions`` holds the
    loop times at which the hub decided to end it (one per end, filled by the caller);
    ``ends`` notes, per end, the seconds from the decision to the status, the messages
    read in between and the resume point named.

    ``window``: the channel's fixed HTTP/2 window per stream (None: grpc's default,
    which grows with BDP probing). ``drain_after_end``: once the hub has decided, read
    as fast as possible, to count the messages queued ahead of the status without
    waiting for them at ``pace``, and stop at the status.
    """

    def __init__(
        self,
        address: str,
        request: pb.StreamUpdatesRequest,
        *,
        pace: float,
        decisions: list[float],
        window: int | None = None,
        drain_after_end: bool = False,
    ) -> None:
        options: list[tuple[str, Any]] = []
        if window is not None:
            options = [("grpc.http2.bdp_probe", 0), ("grpc.http2.lookahead_bytes", window)]
        self._channel = grpc.aio.insecure_channel(address, options=options)
        self._stub = pb_grpc.TradingServiceStub(self._channel)
        self._request = request
        self._pace = pace
        self._decisions = decisions
        self._drain = drain_after_end
        #: Per call: the sequence it asked to resume after (None: a fresh stream), the
        #: sequence it started after, and the deltas it received.
        self.streams: list[tuple[int | None, int, list[pb.StreamUpdate]]] = []
        self.ends: list[tuple[float, int, int]] = []
        self.other_errors: list[grpc.aio.AioRpcError] = []

    def _decided(self) -> float | None:
        n = len(self.ends)
        return self._decisions[n] if len(self._decisions) > n else None

    async def run(self, stop: Callable[[], bool], head: Callable[[], int]) -> None:
        """Read slowly until ``stop()``, then at full speed until a delta reaches
        ``head()`` (the hub's sequence), so that what was merged behind it arrives."""
        loop = asyncio.get_running_loop()
        request, epoch = self._request, ""
        asked: int | None = None
        while True:
            start, deltas = -1, []
            read_since_decision = 0
            call = self._stub.StreamUpdates(request)
            try:
                async for update in call:
                    epoch = update.epoch or epoch
                    if update.WhichOneof("payload") == "snapshot_complete":
                        start = update.snapshot_complete.sequence
                    elif is_delta(update):
                        deltas.append(update)
                    if self._decided() is not None:
                        read_since_decision += 1
                    elif stop():
                        if deltas and deltas[-1].sequence >= head():
                            call.cancel()
                            break
                        continue
                    if self._decided() is None or not self._drain:
                        await asyncio.sleep(self._pace)
            except grpc.aio.AioRpcError as exc:
                decided = self._decided()
                if exc.code() is not grpc.StatusCode.RESOURCE_EXHAUSTED or decided is None:
                    self.other_errors.append(exc)
                    return
                point = int(from_rpc_error(exc).metadata["resume_after_sequence"])
                self.ends.append((loop.time() - decided, read_since_decision, point))
                if self._drain:
                    return  # measured: the one end is what it is for
                request = pb.StreamUpdatesRequest()
                request.CopyFrom(self._request)
                request.resume_after_sequence = point
                request.resume_epoch = epoch
                continue
            finally:
                self.streams.append((asked, start, deltas))
                asked = request.resume_after_sequence or None
            return

    def ledger(self, hub_deltas: Iterable[Delta]) -> Ledger:
        """Every call's deltas accounted for; a resume that got a resync covers the
        deltas between the point asked and the snapshot."""
        ledger = Ledger(hub_deltas)
        for asked, start, deltas in self.streams:
            if asked is not None and start != asked:
                ledger.add_resync(asked, start)
            ledger.add_stream(deltas, start)
        return ledger

    async def close(self) -> None:
        await self._channel.close()


async def live_synced(stack: Stack, within: float = 10.0) -> LiveService:
    """The stack's live service, once it has its first snapshot (streams open only then)."""
    service = cast(BrokerLiveSubsystem, stack.gateway.live).service
    assert await service.wait_synced(Deadline.after(within)), "live state never synced"
    return service
