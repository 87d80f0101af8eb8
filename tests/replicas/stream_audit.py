"""Subscribers that move between gateway replicas, and the audit of what they received.

A ``Recorder`` reads StreamUpdates (every account, every kind) from one replica over its
own channel and keeps every message with its arrival time. When a call ends, its
``where_next`` policy names the replica to resume on (``resume_from`` = the last
``login@epoch:seq`` it saw), or None to stop. ``audit`` then walks every call in order:
the chain (each delta's ``previous_sequence`` is the last sequence received), repeats,
announced resyncs, and the state the subscriber built (snapshot plus deltas).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, cast

import grpc
from redis.asyncio import Redis
from tradovate_gateway.v1 import trading_pb2 as pb
from tradovate_gateway.v1 import trading_pb2_grpc as pb_grpc

from tests.replicas.gateway_replicas import LOGIN
from trading_gateway.server.live.records import DeltaRecord, decode_step
from trading_gateway.server.replicas.delta_log import DeltaLogKeys

DELTAS = frozenset({"position", "order", "balance", "pnl", "account"})
Position = tuple[str, int]  # (epoch, sequence) of the one login


@dataclass
class Call:
    """One StreamUpdates call: where, the position it resumed after, what came, how it ended."""

    address: str
    asked: Position | None
    messages: list[tuple[float, pb.StreamUpdate]] = field(default_factory=list)
    error: grpc.aio.AioRpcError | None = None

    @property
    def opened(self) -> bool:
        return any(m.WhichOneof("payload") == "snapshot_complete" for _, m in self.messages)


WhereNext = Callable[["Recorder", Call], Awaitable[str | None]]


async def stop_here(recorder: Recorder, call: Call) -> str | None:
    return None


class Recorder:
    """One subscriber (see the module docstring)."""

    def __init__(
        self,
        name: str,
        address: str,
        where_next: WhereNext = stop_here,
        *,
        account: int | None = None,
    ) -> None:
        """``account``: follow that account's positions and orders only (a filtered stream,
        whose deltas chain by their own ``previous_sequence``); None: everything."""
        self.name = name
        self.account = account
        self.calls: list[Call] = []
        self.position: Position | None = None
        #: The calls the server (or a dead replica) ended, not this recorder's ``close``.
        self.ends: list[Call] = []
        self._where_next = where_next
        self._stopping = False
        self._stream: Any = None
        self._changed = asyncio.Event()
        self.task = asyncio.get_running_loop().create_task(self._run(address))

    def _request(self, asked: Position | None) -> pb.StreamUpdatesRequest:
        request = pb.StreamUpdatesRequest()
        if self.account is not None:
            request.selector.accounts.append(str(self.account))
            request.kinds.extend([pb.UPDATE_KIND_POSITIONS, pb.UPDATE_KIND_ORDERS])
        if asked is not None:
            epoch, sequence = asked
            request.resume_from.append(
                pb.StreamPosition(login=LOGIN, epoch=epoch, sequence=sequence)
            )
        return request

    async def _run(self, address: str | None) -> None:
        asked: Position | None = None
        while address is not None and not self._stopping:
            call = Call(address, asked)
            self.calls.append(call)
            async with grpc.aio.insecure_channel(address) as channel:
                stub = pb_grpc.TradingServiceStub(channel)
                self._stream = stub.StreamUpdates(self._request(asked))
                try:
                    async for update in self._stream:
                        call.messages.append((time.time(), update))
                        self._note(update)
                        self._changed.set()
                except grpc.aio.AioRpcError as exc:
                    call.error = exc
            self._changed.set()
            if self.closing():
                return
            self.ends.append(call)
            address = await self._where_next(self, call)
            asked = self.position

    def closing(self) -> bool:
        """``close`` was called (a method: it changes while ``_run`` awaits)."""
        return self._stopping

    def _note(self, update: pb.StreamUpdate) -> None:
        which = update.WhichOneof("payload")
        if which == "snapshot_complete":
            self.position = (update.epoch, update.snapshot_complete.sequence)
        elif which in DELTAS:
            self.position = (update.epoch, update.sequence)

    @property
    def current(self) -> Call:
        return self.calls[-1]

    def deltas(self) -> list[tuple[float, pb.StreamUpdate]]:
        return [
            (t, m)
            for call in self.calls
            for t, m in call.messages
            if m.WhichOneof("payload") in DELTAS
        ]

    async def wait_for(self, check: Callable[[Recorder], bool], within: float, what: str) -> None:
        try:
            async with asyncio.timeout(within):
                while not check(self):
                    if self.task.done():
                        ends = [
                            (c.address, c.error and c.error.code(), c.error and c.error.details())
                            for c in self.ends
                        ]
                        raise AssertionError(f"{self.name}: stopped before {what}: {ends}")
                    self._changed.clear()
                    await self._changed.wait()
        except TimeoutError:
            raise AssertionError(f"{self.name}: not within {within:.1f} s: {what}") from None

    async def opened(self, within: float) -> None:
        await self.wait_for(lambda r: bool(r.calls) and r.current.opened, within, "its snapshot")

    async def close(self) -> None:
        self._stopping = True
        if self._stream is not None:
            self._stream.cancel()
        await asyncio.gather(self.task, return_exceptions=True)


@dataclass
class Audit:
    """What one subscriber received, checked (see ``audit``)."""

    gaps: list[str] = field(default_factory=list)
    duplicates: list[Position] = field(default_factory=list)
    resyncs: int = 0
    deltas: int = 0
    #: The state it built: positions by id (net_pos), orders by id (status name).
    positions: dict[int, int] = field(default_factory=dict)
    orders: dict[int, str] = field(default_factory=dict)
    #: The first snapshot's positions and orders (the state before its first delta).
    initial_positions: dict[int, int] = field(default_factory=dict)
    initial_orders: dict[int, str] = field(default_factory=dict)
    #: Per entity ("position"/"order", id): each delta's value, and each resync
    #: snapshot's, with its arrival time.
    history: dict[tuple[str, int], list[tuple[float, int | str]]] = field(default_factory=dict)
    #: Per resync: from the last delta before it to the resync's SnapshotComplete (arrival
    #: times): the states logged in between come as the snapshot's, not as deltas.
    resync_windows: list[tuple[float, float]] = field(default_factory=list)
    #: The account of each entity it holds, so a resync snapshot replaces an account's.
    owners: dict[tuple[str, int], int] = field(default_factory=dict)


def status_name(value: pb.OrderStatus.ValueType) -> str:
    """ORDER_STATUS_PENDING_NEW -> "pendingnew": Tradovate's ordStatus, lower-cased."""
    return pb.OrderStatus.Name(value).removeprefix("ORDER_STATUS_").replace("_", "").lower()


def audit(recorder: Recorder) -> Audit:
    """Walk every call: a delta must follow the last sequence received (or the snapshot's,
    or, after a resume, the position asked); a sequence may come only once per epoch; a
    resumed call that could not be replayed must say so (``resync``)."""
    out = Audit()
    last: Position | None = None
    seen: set[Position] = set()
    first_snapshot = True
    last_at = 0.0
    for number, call in enumerate(recorder.calls):
        chunk_accounts: set[int] = set()
        for at, m in call.messages:
            which = m.WhichOneof("payload")
            if which == "snapshot":
                account = m.account_id
                if account not in chunk_accounts:
                    chunk_accounts.add(account)
                    _drop_account(out, account)
                snap = m.snapshot.account
                for p in snap.positions.positions:
                    out.positions[p.id] = p.net_pos
                    out.owners["position", p.id] = p.account_id
                    if not first_snapshot:  # a resync: the entity's state as given now
                        out.history.setdefault(("position", p.id), []).append((at, p.net_pos))
                for o in snap.orders.orders:
                    out.orders[o.id] = status_name(o.status)
                    out.owners["order", o.id] = o.account_id
                    if not first_snapshot:
                        out.history.setdefault(("order", o.id), []).append((at, out.orders[o.id]))
            elif which == "snapshot_complete":
                done = m.snapshot_complete
                here: Position = (m.epoch, done.sequence)
                if done.resync:
                    out.resyncs += 1
                    out.resync_windows.append((last_at, at))
                elif call.asked is not None and here != call.asked:
                    out.gaps.append(f"call {number}: resumed at {here}, asked {call.asked}")
                if first_snapshot:
                    out.initial_positions = dict(out.positions)
                    out.initial_orders = dict(out.orders)
                    first_snapshot = False
                last = here
            elif which in DELTAS:
                out.deltas += 1
                position: Position = (m.epoch, m.sequence)
                if last is None:
                    out.gaps.append(f"call {number}: delta {position} before any snapshot")
                elif m.epoch != last[0]:
                    out.gaps.append(f"call {number}: delta {position} after epoch {last[0]}")
                elif m.previous_sequence != last[1]:
                    out.gaps.append(
                        f"call {number}: delta {m.sequence} names {m.previous_sequence}, "
                        f"the last received was {last[1]}"
                    )
                if position in seen:
                    out.duplicates.append(position)
                seen.add(position)
                last = position
                last_at = at
                _apply(out, at, m)
    return out


def _drop_account(out: Audit, account: int) -> None:
    """A snapshot chunk replaces what the subscriber had for its account."""
    for (kind, entity_id), owner in list(out.owners.items()):
        if owner == account:
            del out.owners[kind, entity_id]
            (out.positions if kind == "position" else out.orders).pop(entity_id, None)


def _apply(out: Audit, at: float, m: pb.StreamUpdate) -> None:
    which = m.WhichOneof("payload")
    if which == "position":
        p = m.position.position
        if m.position.change == pb.CHANGE_TYPE_DELETED:
            out.positions.pop(p.id, None)
        else:
            out.positions[p.id] = p.net_pos
            out.owners["position", p.id] = p.account_id
        out.history.setdefault(("position", p.id), []).append((at, p.net_pos))
    elif which == "order":
        o = m.order.order
        if m.order.change == pb.CHANGE_TYPE_DELETED:
            out.orders.pop(o.id, None)
        else:
            out.orders[o.id] = status_name(o.status)
            out.owners["order", o.id] = o.account_id
        out.history.setdefault(("order", o.id), []).append((at, status_name(o.status)))


def normalized(update: pb.StreamUpdate) -> bytes:
    """A delta as the hub serialized it: without the fields one stream sets for itself."""
    copy = pb.StreamUpdate()
    copy.CopyFrom(update)
    copy.previous_sequence = 0
    copy.merged_count = 0
    copy.merged_from_sequence = 0
    return copy.SerializeToString(deterministic=True)


def disagreements(recorders: Iterable[Recorder]) -> tuple[int, list[str]]:
    """Deltas of the same epoch and sequence must be the same bytes on every subscriber of
    every replica: (how many positions were compared on two or more, the differences)."""
    bodies: dict[Position, dict[bytes, list[str]]] = {}
    for recorder in recorders:
        for _, m in recorder.deltas():
            bodies.setdefault((m.epoch, m.sequence), {}).setdefault(normalized(m), []).append(
                recorder.name
            )
    shared = sum(1 for by_body in bodies.values() if sum(map(len, by_body.values())) > 1)
    problems = [
        f"{position}: {[names for names in by_body.values()]}"
        for position, by_body in bodies.items()
        if len(by_body) > 1
    ]
    return shared, problems


# ---------------------------------------------------------------- the simulator's truth


def sim_truth(
    ledgers: list[dict[str, Any]], account: int | None = None
) -> tuple[dict[int, int], dict[int, str]]:
    """Positions by id (netPos) and orders by id (status, lower-cased) from the ledger, of
    every account or of ``account``."""
    mine = [led for led in ledgers if account is None or led["accountId"] == account]
    positions = {int(p["id"]): int(p["netPos"]) for led in mine for p in led["positions"]}
    orders = {int(o["id"]): str(o["status"]).lower() for led in mine for o in led["orders"]}
    return positions, orders


def state_problems(found: Audit, positions: dict[int, int], orders: dict[int, str]) -> list[str]:
    """Differences between the state a subscriber built and the simulator's."""
    problems = [
        f"position {pid}: {found.positions.get(pid)} != {net}"
        for pid, net in positions.items()
        if found.positions.get(pid, 0) != net
    ]
    problems += [
        f"position {pid} not in the simulator" for pid in found.positions if pid not in positions
    ]
    problems += [
        f"order {oid}: {found.orders.get(oid)} != {status}"
        for oid, status in orders.items()
        if found.orders.get(oid) != status
    ]
    problems += [f"order {oid} not in the simulator" for oid in found.orders if oid not in orders]
    return problems


@dataclass
class Coverage:
    checked: int = 0
    #: Logged states not streamed: inside a blind window; left within one frame.
    in_window: int = 0
    coalesced: int = 0
    problems: list[str] = field(default_factory=list)


def coverage(
    log: list[dict[str, Any]],
    found: Audit,
    accounts: set[int],
    blind: list[tuple[float, float]],
    coalesce: float = 0.1,
) -> Coverage:
    """The subscriber's deltas against the simulator's event log (entries after its snapshot).

    Per position (netPos) and order (ordStatus), consecutive repeats merged: the values
    its deltas gave must be the logged ones, in the logged order (nothing that never
    happened), every logged value must be among them unless it was logged inside a
    ``blind`` window (when no replica had a socket: a new holder's resync brings the
    entity's latest state only), inside one of the subscriber's own resyncs, or the
    entity changed again within ``coalesce`` seconds (the same upstream frame, which the
    gateway publishes as each entity's final state: the simulator's socket writer sends
    what gathered while it waited, and it shares the test's busy event loop; 30 ms apart
    in one frame was seen); the last value given must be the last logged.
    """
    logged: dict[tuple[str, int], list[tuple[float, int | str]]] = {}
    for entry in log:
        kind = entry["entityType"]
        if kind not in ("position", "order") or entry["eventType"] == "Deleted":
            continue
        entities = entry["entity"] if isinstance(entry["entity"], list) else [entry["entity"]]
        for entity in entities:
            if int(entity["accountId"]) not in accounts:
                continue
            value: int | str = (
                int(entity["netPos"]) if kind == "position" else str(entity["ordStatus"]).lower()
            )
            logged.setdefault((kind, int(entity["id"])), []).append(
                (float(entry["timestamp"]), value)
            )
    out = Coverage()
    blind = blind + found.resync_windows
    for key, events in logged.items():
        kind, entity_id = key
        initial: int | str | None = (
            found.initial_positions.get(entity_id)
            if kind == "position"
            else found.initial_orders.get(entity_id)
        )
        # A state the entity left within ``coalesce`` came in the same upstream frame as
        # its successor: the gateway publishes each frame's final state per entity.
        why = [
            "window"
            if _inside(t, blind)
            else "frame"
            if n + 1 < len(events) and events[n + 1][0] - t < coalesce
            else ""
            for n, (t, _) in enumerate(events)
        ]
        wanted = _runs([(v, w) for (_, v), w in zip(events, why, strict=True)], initial)
        given = [v for v, _ in _runs([(v, "") for _, v in found.history.get(key, [])], initial)]
        j = 0
        for value, excuse in wanted:
            out.checked += 1
            if j < len(given) and given[j] == value:
                j += 1
            elif excuse == "window":
                out.in_window += 1
            elif excuse == "frame":
                out.coalesced += 1
            else:
                out.problems.append(
                    f"{kind} {entity_id}: logged {value!r} never streamed (logged "
                    f"{[(round(t, 3), v) for t, v in events]}, streamed {given})"
                )
        if j < len(given):
            out.problems.append(
                f"{kind} {entity_id}: streamed {given[j:]} not in the logged order {wanted}"
            )
        final = events[-1][1]
        current = (
            found.positions.get(entity_id) if kind == "position" else found.orders.get(entity_id)
        )
        if current != final:
            out.problems.append(f"{kind} {entity_id}: ends at {current!r}, logged {final!r}")
    return out


def _inside(at: float, windows: list[tuple[float, float]]) -> bool:
    return any(start <= at <= end for start, end in windows)


def _runs(
    values: list[tuple[int | str, str]], initial: int | str | None
) -> list[tuple[int | str, str]]:
    """Consecutive equal values merged (excused only if each of them is), after ``initial``."""
    out: list[tuple[int | str, str]] = []
    previous = initial
    for value, excuse in values:
        if out and out[-1][0] == value:
            out[-1] = (value, "" if "" in (out[-1][1], excuse) else excuse)
        elif not out and value == previous:
            continue
        else:
            out.append((value, excuse))
    return out


async def logged_deltas(redis: Redis, keys: DeltaLogKeys) -> dict[Position, bytes]:
    """Every delta in the login's delta log (each step's DeltaRecords), normalized."""
    out: dict[Position, bytes] = {}
    entries = cast(list[tuple[bytes, dict[bytes, bytes]]], await redis.xrange(keys.deltas))
    for _, fields in entries:
        for record in decode_step(fields[b"p"]):
            if isinstance(record, DeltaRecord):
                update = pb.StreamUpdate.FromString(record.delta.body)
                out[update.epoch, update.sequence] = normalized(update)
    return out


def not_logged(
    recorder: Recorder, logged: dict[Position, bytes], calls: int | None = None
) -> list[str]:
    """The deltas of the recorder's first ``calls`` calls (all: None) that the log does not
    hold, byte for byte."""
    problems = []
    for call in recorder.calls[:calls]:
        for _, m in call.messages:
            if m.WhichOneof("payload") not in DELTAS:
                continue
            body = logged.get((m.epoch, m.sequence))
            if body is None:
                problems.append(f"{recorder.name}: {m.epoch}:{m.sequence} is not in the log")
            elif body != normalized(m):
                problems.append(f"{recorder.name}: {m.epoch}:{m.sequence} differs from the log")
    return problems
