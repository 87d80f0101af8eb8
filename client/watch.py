"""Watch: StreamUpdates as an async iterator that resumes by itself, without gaps.

    async with TradingClient(address) as client:
        async for update in client.watch(["DEMO1"], kinds=["positions", "pnl"]):
            ...

It remembers the stream's epoch and the last delta sequence it yielded. When the stream
ends (the server drained, the upstream went away, this subscriber was too slow, the
network broke) or goes silent for longer than ``stall_after`` (no message, not even a
heartbeat), it reconnects with ``resume_after_sequence``/``resume_epoch``: the resume
point the server's end status named when it gave one, else the last sequence yielded.
The server replays what was missed, or sends a fresh snapshot marked ``resync``.

It checks the chain contract (protos/.../trading.proto, ``StreamUpdate``): each delta's
``previous_sequence`` must name the delta before it on the same call, and a delta that
stands for merged ones says so in ``merged_count``. ``stats`` counts what it saw:
deltas yielded, deltas the server merged (latest state kept, nothing lost), gaps (a
broken chain: something was lost in transit), repeats dropped, resyncs and reconnects.
A gap is logged as a warning and the stream resumes from the last delta yielded, or,
with ``strict=True``, raises ``StreamGapError``. The caller sees every delta once and
in order. Statuses that retrying cannot fix (bad request, unknown account, credentials)
raise ``ClientError``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import grpc
from google.protobuf import duration_pb2
from tradovate_gateway.v1 import trading_pb2

from trading_gateway.client import values
from trading_gateway.client.errors import from_rpc_error
from trading_gateway.client.retry import RetryPolicy

if TYPE_CHECKING:
    from tradovate_gateway.v1 import trading_pb2_grpc

logger = logging.getLogger(__name__)

DELTA_PAYLOADS = frozenset({"position", "order", "balance", "pnl", "account"})

#: Statuses after which reconnecting with the resume point can succeed.
RESUMABLE = frozenset(
    {
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        grpc.StatusCode.ABORTED,
        grpc.StatusCode.CANCELLED,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.UNKNOWN,
    }
)

KIND_NAMES = {
    "positions": trading_pb2.UPDATE_KIND_POSITIONS,
    "orders": trading_pb2.UPDATE_KIND_ORDERS,
    "balances": trading_pb2.UPDATE_KIND_BALANCES,
    "pnl": trading_pb2.UPDATE_KIND_PNL,
    "accounts": trading_pb2.UPDATE_KIND_ACCOUNTS,
}


@dataclass(slots=True)
class WatchStats:
    """What a watch saw, over every call it made."""

    #: Deltas yielded to the caller.
    delivered: int = 0
    #: Deltas the server merged into a later delta of the same entity (marked with
    #: ``merged_count``): not sent, their entity's latest state was. Nothing lost.
    merged: int = 0
    #: Broken chains: a delta whose ``previous_sequence`` was not the delta before it.
    gaps: int = 0
    #: Deltas sent again after a resume and dropped (the caller already had them).
    duplicates: int = 0
    resyncs: int = 0
    reconnects: int = 0

    def summary(self) -> str:
        return (
            f"{self.delivered} deltas delivered, {self.merged} merged by the server, "
            f"{self.gaps} gaps, {self.duplicates} repeats dropped, {self.resyncs} resyncs, "
            f"{self.reconnects} reconnects"
        )


class StreamGapError(Exception):
    """A delta did not follow the one before it: something was lost (``strict`` watch)."""

    def __init__(self, sequence: int, previous: int, expected: int) -> None:
        super().__init__(
            f"stream gap: delta {sequence} follows {previous}, but the last delta received "
            f"was {expected}; the deltas between them were lost"
        )
        self.sequence = sequence
        self.previous = previous
        self.expected = expected


def update_kinds(kinds: Iterable[trading_pb2.UpdateKind.ValueType | str]) -> list[int]:
    """ "positions", "UPDATE_KIND_ORDERS" or an UpdateKind value, for each entry."""
    out: list[int] = []
    for kind in kinds:
        if isinstance(kind, int):
            out.append(kind)
            continue
        name = kind.strip().lower().removeprefix("update_kind_")
        if name not in KIND_NAMES:
            raise ValueError(f"unknown update kind {kind!r}; use one of {', '.join(KIND_NAMES)}")
        out.append(KIND_NAMES[name])
    return out


class Watch:
    """An auto-resuming StreamUpdates subscription; iterate it, then ``aclose()`` it."""

    def __init__(
        self,
        stub: trading_pb2_grpc.TradingServiceAsyncStub,
        metadata: tuple[tuple[str, str], ...],
        request: trading_pb2.StreamUpdatesRequest,
        *,
        stall_after: float,
        retry_policy: RetryPolicy,
        max_reconnects: int | None = None,
        strict: bool = False,
    ) -> None:
        self._stub = stub
        self._metadata = metadata
        self._request = request
        self._stall_after = stall_after
        self._policy = retry_policy
        self._max_reconnects = max_reconnects
        self._call: (
            grpc.aio.UnaryStreamCall[trading_pb2.StreamUpdatesRequest, trading_pb2.StreamUpdate]
            | None
        ) = None
        self._stalled = False
        self._watchdog: asyncio.TimerHandle | None = None
        self._last_message = 0.0
        self._closed = False
        self._strict = strict
        #: The stream's epoch and the sequence of the last delta (or snapshot) seen.
        self.epoch = request.resume_epoch
        self.last_sequence = request.resume_after_sequence
        #: The sequence the current call's next delta must name as its previous.
        self._chain = request.resume_after_sequence
        #: A resume point the server named below ``last_sequence`` (used once).
        self._resume_from: int | None = None
        #: The resume point the current call asked for (0: it asked for none). A resync
        #: snapshot on that call stands for every delta after it.
        self.resumed_after = request.resume_after_sequence
        self.stats = WatchStats()

    @property
    def reconnects(self) -> int:
        return self.stats.reconnects

    @property
    def resyncs(self) -> int:
        return self.stats.resyncs

    @property
    def gaps(self) -> int:
        return self.stats.gaps

    @property
    def duplicates(self) -> int:
        return self.stats.duplicates

    def __aiter__(self) -> AsyncIterator[trading_pb2.StreamUpdate]:
        return self._run()

    @property
    def closed(self) -> bool:
        return self._closed

    async def aclose(self) -> None:
        self._closed = True
        if self._call is not None:
            self._call.cancel()

    def _next_request(self) -> trading_pb2.StreamUpdatesRequest:
        request = trading_pb2.StreamUpdatesRequest()
        request.CopyFrom(self._request)
        if self.epoch:
            resume = self.last_sequence
            if self._resume_from is not None:
                resume, self._resume_from = min(resume, self._resume_from), None
            request.resume_epoch = self.epoch
            request.resume_after_sequence = self._chain = self.resumed_after = resume
        return request

    async def _run(self) -> AsyncIterator[trading_pb2.StreamUpdate]:
        loop = asyncio.get_running_loop()
        failures = 0
        while not self._closed:
            self._stalled = False
            call = self._stub.StreamUpdates(self._next_request(), metadata=self._metadata)
            self._call = call
            self._last_message = loop.time()
            self._watchdog = loop.call_later(self._stall_after, self._check_stall, call)
            reason = "the server ended the stream"
            try:
                async for update in call:
                    self._last_message = loop.time()
                    failures = 0
                    accepted = self._accept(update)
                    if accepted is None:
                        reason = "a gap in the delta chain"
                        call.cancel()
                        break
                    if accepted:
                        yield update
            except grpc.aio.AioRpcError as rpc_error:
                if rpc_error.code() not in RESUMABLE:
                    raise from_rpc_error(rpc_error) from rpc_error
                reason = f"{rpc_error.code().name}: {rpc_error.details()}"
                ended = from_rpc_error(rpc_error)
                hint = ended.retry_after
                self._note_resume_point(ended.metadata)
            except asyncio.CancelledError:
                task = asyncio.current_task()
                if self.closed and (task is None or task.cancelling() == 0):
                    # aclose() cancelled the call, not our task: end the iteration quietly
                    # (a stray CancelledError would confuse TaskGroup and asyncio.timeout).
                    return
                if not self._stalled or self._closed:
                    raise
                reason = f"no message for {self._stall_after:g} s"
                hint = None
            else:
                hint = None
            finally:
                if self._watchdog is not None:
                    self._watchdog.cancel()
                    self._watchdog = None
                self._call = None
            if self.closed:
                return
            if self._max_reconnects is not None and self.reconnects >= self._max_reconnects:
                raise ConnectionError(f"stream lost ({reason}) and reconnects are used up")
            wait = self._policy.delay(min(failures, 10), hint)
            failures += 1
            self.stats.reconnects += 1
            logger.info("watch: %s; resuming after %d in %.3f s", reason, self.last_sequence, wait)
            await asyncio.sleep(wait)

    def _check_stall(self, call: grpc.aio.Call) -> None:
        loop = asyncio.get_running_loop()
        idle = loop.time() - self._last_message
        if idle >= self._stall_after:
            self._watchdog = None
            self._stalled = True
            call.cancel()
            return
        self._watchdog = loop.call_later(self._stall_after - idle, self._check_stall, call)

    def _note_resume_point(self, metadata: dict[str, str]) -> None:
        """Keep the server's resume point when it is below the last delta yielded: it
        ended the stream with merged deltas unsent, and resuming there loses nothing."""
        point = metadata.get("resume_after_sequence", "")
        same_epoch = metadata.get("resume_epoch") == self.epoch
        if point.isdigit() and same_epoch and int(point) < self.last_sequence:
            self._resume_from = int(point)

    def _accept(self, update: trading_pb2.StreamUpdate) -> bool | None:
        """True to yield, False to drop (a repeat), None for a gap (reconnect)."""
        payload = update.WhichOneof("payload")
        if payload == "snapshot_complete":
            done = update.snapshot_complete
            self.epoch = update.epoch
            self._chain = done.sequence
            if done.resync:
                self.stats.resyncs += 1
            if done.resync or done.sequence > self.last_sequence:
                self.last_sequence = done.sequence
            return True
        if payload not in DELTA_PAYLOADS:
            return True
        if update.epoch != self.epoch:
            return None
        if update.previous_sequence != self._chain:
            self.stats.gaps += 1
            if self._strict:
                raise StreamGapError(update.sequence, update.previous_sequence, self._chain)
            logger.warning(
                "watch: gap: delta %d follows %d, but the last delta received was %d; "
                "resuming after %d",
                update.sequence,
                update.previous_sequence,
                self._chain,
                self.last_sequence,
            )
            return None
        self._chain = update.sequence
        if update.sequence <= self.last_sequence:
            self.stats.duplicates += 1
            return False
        self.last_sequence = update.sequence
        self.stats.delivered += 1
        self.stats.merged += update.merged_count
        return True


def watch_request(
    accounts: values.AccountsArg,
    kinds: Iterable[trading_pb2.UpdateKind.ValueType | str],
    *,
    with_snapshot: bool,
    heartbeat_interval: float | None,
    resume_after_sequence: int,
    resume_epoch: str,
) -> trading_pb2.StreamUpdatesRequest:
    request = trading_pb2.StreamUpdatesRequest(
        selector=values.selector(accounts),
        kinds=update_kinds(kinds),  # type: ignore[arg-type]
        with_snapshot=with_snapshot,
        resume_after_sequence=resume_after_sequence,
        resume_epoch=resume_epoch,
    )
    if heartbeat_interval is not None:
        whole = int(heartbeat_interval)
        request.heartbeat_interval.CopyFrom(
            duration_pb2.Duration(seconds=whole, nanos=int((heartbeat_interval - whole) * 1e9))
        )
    return request
