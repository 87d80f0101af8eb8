"""Watch: StreamUpdates as an async iterator that resumes by itself, without gaps.

    async with TradingClient(address) as client:
        async for update in client.watch(["DEMO1"], kinds=["positions", "pnl"]):
            ...

Each login has its own sequence space (``StreamUpdate.login``), so the watch keeps one
position per login: its epoch and the last delta sequence yielded (``positions``). When
the stream ends (the server drained, the upstream went away, this subscriber was too
slow, a login was removed, the network broke) or goes silent for longer than
``stall_after`` (no message, not even a heartbeat), it reconnects with ``resume_from``
(one ``StreamPosition`` per login; a stream over one login also sets
``resume_after_sequence``/``resume_epoch``): per login, the resume point the server's end
status named (metadata ``resume_from``) when it is lower, else the last sequence yielded.
The server replays what was missed, or sends that login a fresh snapshot marked
``resync``; a login the watch has no position for starts with its own snapshot.

It checks the chain contract (protos/.../trading.proto, ``StreamUpdate``) per login:
each delta's ``previous_sequence`` must name that login's delta before it on the same
call, and a delta that stands for merged ones says so in ``merged_count``. ``stats``
counts what it saw: deltas yielded, deltas the server merged (latest state kept,
nothing lost), gaps (a broken chain: something was lost in transit), repeats dropped,
resyncs and reconnects. A gap is logged as a warning naming its login (counted in
``stats.gaps_by_login``) and the stream resumes from the last delta yielded, or, with
``strict=True``, raises ``StreamGapError``. The caller sees every delta once and in
order. Statuses that retrying cannot fix (bad request, unknown account, credentials)
raise ``ClientError``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
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
    #: The same, per login (StreamUpdate.login; "" for a server that names none).
    gaps_by_login: dict[str, int] = field(default_factory=dict)
    #: Deltas sent again after a resume and dropped (the caller already had them).
    duplicates: int = 0
    resyncs: int = 0
    reconnects: int = 0

    def summary(self) -> str:
        return (
            f"{self.delivered} deltas delivered, {self.merged} merged by the server, "
            f"{self.gaps} gaps, {self.duplicates} repeats dropped, {self.resyncs} resyncs, "
            f"{self.reconnects} reconnects" + self._gaps_by_login()
        )

    def _gaps_by_login(self) -> str:
        named = [f"{login} {n}" for login, n in self.gaps_by_login.items() if login]
        return f" (gaps by login: {', '.join(named)})" if named else ""


class StreamGapError(Exception):
    """A delta did not follow the one before it: something was lost (``strict`` watch)."""

    def __init__(self, sequence: int, previous: int, expected: int, login: str = "") -> None:
        where = f" in login {login}" if login else ""
        super().__init__(
            f"stream gap{where}: delta {sequence} follows {previous}, but the last delta "
            f"received was {expected}; the deltas between them were lost"
        )
        self.sequence = sequence
        self.previous = previous
        self.expected = expected
        self.login = login


@dataclass(slots=True)
class LoginPosition:
    """Where a watch is in one login's sequence space."""

    epoch: str = ""
    #: The sequence of the last delta (or snapshot) yielded.
    last_sequence: int = 0
    #: The sequence the current call's next delta of this login must name as its previous.
    chain: int = 0
    #: A resume point the server named below ``last_sequence`` (used once).
    resume_from: int | None = None
    #: The resume point the current call asked for (0: none). A resync snapshot on that
    #: call stands for every delta of this login after it.
    resumed_after: int = 0


def parse_positions(text: str) -> dict[str, tuple[str, int]]:
    """``login@epoch:sequence,...`` (an end status's ``resume_from`` metadata) by login;
    malformed entries are left out."""
    out: dict[str, tuple[str, int]] = {}
    for entry in text.split(","):
        login, at, rest = entry.strip().partition("@")
        epoch, colon, sequence = rest.rpartition(":")
        if at and colon and login and sequence.isdigit():
            out[login] = (epoch, int(sequence))
    return out


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
        #: Per login (StreamUpdate.login): its epoch and the last sequence seen. The
        #: legacy resume fields of the first request count for the one login they name
        #: (kept under "" until the server names it).
        self.positions: dict[str, LoginPosition] = {
            p.login: LoginPosition(p.epoch, p.sequence, p.sequence) for p in request.resume_from
        }
        if request.resume_epoch and not self.positions:
            seq = request.resume_after_sequence
            self.positions[""] = LoginPosition(request.resume_epoch, seq, seq, None, seq)
        self.stats = WatchStats()

    def _only(self) -> LoginPosition:
        return next(iter(self.positions.values())) if len(self.positions) == 1 else LoginPosition()

    @property
    def epoch(self) -> str:
        """The epoch of a stream over one login ("" over several: see ``positions``)."""
        return self._only().epoch

    @property
    def last_sequence(self) -> int:
        """The last sequence of a stream over one login (0 over several: ``positions``)."""
        return self._only().last_sequence

    @property
    def resumed_after(self) -> int:
        """The resume point the current call asked for, over one login (``positions``)."""
        return self._only().resumed_after

    def _position(self, login: str) -> LoginPosition:
        position = self.positions.get(login)
        if position is None:
            # The first request's legacy resume fields named this login's position.
            position = self.positions.pop("", None) if login else None
            self.positions[login] = position = position or LoginPosition()
        return position

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
        request.ClearField("resume_from")
        known = {login: p for login, p in self.positions.items() if p.epoch}
        for login, position in known.items():
            resume = position.last_sequence
            if position.resume_from is not None:
                resume, position.resume_from = min(resume, position.resume_from), None
            position.chain = position.resumed_after = resume
            if login:
                request.resume_from.append(
                    trading_pb2.StreamPosition(login=login, epoch=position.epoch, sequence=resume)
                )
        if len(known) == 1:
            # One login: the legacy fields too (a server from before resume_from).
            (position,) = known.values()
            request.resume_epoch = position.epoch
            request.resume_after_sequence = position.chain
        elif known:
            request.ClearField("resume_epoch")
            request.ClearField("resume_after_sequence")
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
            logger.info("watch: %s; resuming (%s) in %.3f s", reason, self.where(), wait)
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

    def where(self) -> str:
        """Every login's position, ``login@epoch:sequence,...`` (as the server writes them)."""
        return ",".join(
            f"{login or '-'}@{p.epoch}:{p.last_sequence}" for login, p in self.positions.items()
        )

    def _note_resume_point(self, metadata: dict[str, str]) -> None:
        """Keep the server's resume points that are below the last delta yielded: it
        ended the stream with merged deltas unsent, and resuming there loses nothing."""
        points = parse_positions(metadata.get("resume_from", ""))
        legacy = metadata.get("resume_after_sequence", "")
        if not points and legacy.isdigit():
            # A server that names one login's point only (or none: "").
            login = metadata.get("login", "")
            if login not in self.positions and len(self.positions) == 1:
                login = next(iter(self.positions))
            points = {login: (metadata.get("resume_epoch", ""), int(legacy))}
        for login, (epoch, sequence) in points.items():
            position = self.positions.get(login)
            same = position is not None and position.epoch == epoch
            if position is not None and same and sequence < position.last_sequence:
                position.resume_from = sequence

    def _accept(self, update: trading_pb2.StreamUpdate) -> bool | None:
        """True to yield, False to drop (a repeat), None for a gap (reconnect)."""
        payload = update.WhichOneof("payload")
        if payload == "snapshot_complete":
            done = update.snapshot_complete
            position = self._position(update.login)
            if position.epoch != update.epoch:
                position.last_sequence = 0  # another sequence space: nothing to repeat
            position.epoch = update.epoch
            position.chain = done.sequence
            if done.resync:
                self.stats.resyncs += 1
            if done.resync or done.sequence > position.last_sequence:
                position.last_sequence = done.sequence
            return True
        if payload not in DELTA_PAYLOADS:
            return True
        login = update.login
        known = self.positions.get(login)
        if known is None or update.epoch != known.epoch:
            return None
        position = known
        if update.previous_sequence != position.chain:
            self.stats.gaps += 1
            self.stats.gaps_by_login[login] = self.stats.gaps_by_login.get(login, 0) + 1
            if self._strict:
                raise StreamGapError(
                    update.sequence, update.previous_sequence, position.chain, login
                )
            logger.warning(
                "watch: gap in login %s: delta %d follows %d, but the last delta received "
                "was %d; resuming after %d",
                login or "-",
                update.sequence,
                update.previous_sequence,
                position.chain,
                position.last_sequence,
            )
            return None
        position.chain = update.sequence
        if update.sequence <= position.last_sequence:
            self.stats.duplicates += 1
            return False
        position.last_sequence = update.sequence
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
