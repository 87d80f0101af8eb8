"""What one login's live state is made of, as records another process can replay.

The lease holder's live service records every input it applies (a sync frame, a quote,
fetched figures, resolved contracts) and every delta its hub numbers, in the order they
happened; a follower replays them in that order on its own live service and ends up with
the same state and the same hub, delta for delta (server/replicas/live_log.py carries
them through Redis). ``LiveDump`` is the whole state at one point, for a follower that
starts from nothing.

The encoding is msgpack (msgspec), typed on both sides: broker structs round-trip exactly
(decimals as text, times as timestamps), and a record this version does not know is a
``RecordError``, never a guess.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Final

import msgspec

from trading_gateway.server.broker.events import (
    ChangeType,
    Entity,
    EntityChange,
    EntityRef,
    SyncEvent,
    SyncSnapshot,
    SyncStatus,
)
from trading_gateway.server.broker.schemas import (
    Account,
    CashBalance,
    Contract,
    ContractInfo,
    ContractMaturity,
    Fill,
    MarginSnapshot,
    Order,
    OrderVersion,
    Position,
    Product,
    Quote,
)
from trading_gateway.server.broker.sync_codec import ENTITY_STRUCTS
from trading_gateway.server.live.figures import AccountFigures
from trading_gateway.server.live.kinds import UpdateKind
from trading_gateway.server.live.queue import Delta

FORMAT: Final = 1


class RecordError(Exception):
    """Bytes that are not records of this format (a newer writer, or damage)."""


# ---------------------------------------------------------------------- the records
@dataclass(frozen=True, slots=True)
class FrameRecord:
    """Events of one user-sync frame, applied together (``LiveService.handle_all``)."""

    events: tuple[SyncEvent, ...]


@dataclass(frozen=True, slots=True)
class QuoteRecord:
    """A market-data quote; ``at``: when the holder read it (epoch seconds)."""

    quote: Quote
    at: float


@dataclass(frozen=True, slots=True)
class FiguresRecord:
    """Tradovate figures the background refresh stored, per account (one fetch's, as it
    ends), and the accounts whose balances a round's end refreshes (``changed``)."""

    figures: tuple[tuple[int, AccountFigures], ...]
    changed: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class InfosRecord:
    """Contracts resolved over REST; ``at_ns``: when (their views' change time)."""

    infos: tuple[ContractInfo, ...]
    at_ns: int


@dataclass(frozen=True, slots=True)
class DeltaRecord:
    """A delta the holder's hub numbered; ``now_ns``: its publish time."""

    delta: Delta
    now_ns: int


@dataclass(frozen=True, slots=True)
class EpochRecord:
    """A new holder's first record: its hub continues from ``sequence`` of ``epoch``."""

    epoch: str
    sequence: int


Record = FrameRecord | QuoteRecord | FiguresRecord | InfosRecord | DeltaRecord | EpochRecord


@dataclass(frozen=True, slots=True)
class LiveDump:
    """A live service's whole state: what a follower loads before replaying records."""

    #: The entities; applied only when ``synced`` (the holder had its first snapshot).
    sync: SyncSnapshot
    synced: bool
    contract_infos: tuple[ContractInfo, ...]
    #: (contract id, last price, when it changed) per contract with a price.
    prices: tuple[tuple[int, Decimal, float], ...]
    figures: tuple[tuple[int, AccountFigures], ...]
    upstream_up: bool
    down_reason: str
    synced_at: float
    last_change_ns: int
    epoch: str
    sequence: int
    #: Per account: (account id, publish time ns, sequence) of its last delta.
    last_events: tuple[tuple[int, int, int], ...]


# ---------------------------------------------------------------------- wire shapes
class _Snapshot(msgspec.Struct, tag="s", array_like=True):
    accounts: tuple[Account, ...]
    positions: tuple[Position, ...]
    orders: tuple[Order, ...]
    order_versions: tuple[OrderVersion, ...]
    fills: tuple[Fill, ...]
    cash_balances: tuple[CashBalance, ...]
    margin_snapshots: tuple[MarginSnapshot, ...]
    contracts: tuple[Contract, ...]
    contract_maturities: tuple[ContractMaturity, ...]
    products: tuple[Product, ...]
    user_ids: tuple[int, ...]
    received_at: dt.datetime
    reconnect: bool


class _Change(msgspec.Struct, tag="c", array_like=True):
    entity_type: str
    change: str
    #: Only an id (``EntityRef``): a Deleted event that carried no more.
    ref_only: bool
    entity: msgspec.Raw
    received_at: dt.datetime


class _Status(msgspec.Struct, tag="t", array_like=True):
    connected: bool
    reason: str
    at: dt.datetime


_Event = _Snapshot | _Change | _Status


class _Frame(msgspec.Struct, tag="f", array_like=True):
    events: list[_Event]


class _Quote(msgspec.Struct, tag="q", array_like=True):
    quote: Quote
    at: float


class _Figures(msgspec.Struct, tag="g", array_like=True):
    figures: list[tuple[int, AccountFigures]]
    changed: list[int]


class _Infos(msgspec.Struct, tag="i", array_like=True):
    infos: list[ContractInfo]
    at_ns: int


class _Delta(msgspec.Struct, tag="d", array_like=True):
    sequence: int
    account_id: int
    kind: int
    entity_id: int
    event_time_ns: int
    body: bytes
    now_ns: int


class _Epoch(msgspec.Struct, tag="e", array_like=True):
    epoch: str
    sequence: int


_Wire = _Frame | _Quote | _Figures | _Infos | _Delta | _Epoch


class _Step(msgspec.Struct, array_like=True):
    format: int
    records: list[_Wire]


class _Dump(msgspec.Struct, array_like=True):
    format: int
    sync: _Snapshot
    synced: bool
    contract_infos: list[ContractInfo]
    prices: list[tuple[int, Decimal, float]]
    figures: list[tuple[int, AccountFigures]]
    upstream_up: bool
    down_reason: str
    synced_at: float
    last_change_ns: int
    epoch: str
    sequence: int
    last_events: list[tuple[int, int, int]]


_ENCODER: Final = msgspec.msgpack.Encoder()
_STEP_DECODER: Final = msgspec.msgpack.Decoder(_Step)
_DUMP_DECODER: Final = msgspec.msgpack.Decoder(_Dump)
_ENTITY_DECODERS: Final[Mapping[str, msgspec.msgpack.Decoder[Any]]] = {
    name: msgspec.msgpack.Decoder(struct) for name, struct in ENTITY_STRUCTS.items()
}
_REF_DECODER: Final = msgspec.msgpack.Decoder(EntityRef)
_KINDS: Final = {kind.value: kind for kind in UpdateKind}


# ---------------------------------------------------------------------- encoding
def encode_step(records: Sequence[Record]) -> bytes:
    """Records, in order, as one log entry's payload."""
    return _ENCODER.encode(_Step(FORMAT, [_wire(record) for record in records]))


def decode_step(payload: bytes) -> list[Record]:
    try:
        step = _STEP_DECODER.decode(payload)
        if step.format != FORMAT:
            raise RecordError(f"record format {step.format}; this gateway reads {FORMAT}")
        return [_record(wire) for wire in step.records]
    except (msgspec.DecodeError, msgspec.ValidationError, KeyError, ValueError) as exc:
        raise RecordError(f"not a step of live records: {exc}") from exc


def encode_dump(dump: LiveDump) -> bytes:
    return _ENCODER.encode(
        _Dump(
            FORMAT,
            _snapshot_wire(dump.sync),
            dump.synced,
            list(dump.contract_infos),
            list(dump.prices),
            list(dump.figures),
            dump.upstream_up,
            dump.down_reason,
            dump.synced_at,
            dump.last_change_ns,
            dump.epoch,
            dump.sequence,
            list(dump.last_events),
        )
    )


def decode_dump(payload: bytes) -> LiveDump:
    try:
        wire = _DUMP_DECODER.decode(payload)
        if wire.format != FORMAT:
            raise RecordError(f"dump format {wire.format}; this gateway reads {FORMAT}")
        return LiveDump(
            sync=_snapshot(wire.sync),
            synced=wire.synced,
            contract_infos=tuple(wire.contract_infos),
            prices=tuple(wire.prices),
            figures=tuple(wire.figures),
            upstream_up=wire.upstream_up,
            down_reason=wire.down_reason,
            synced_at=wire.synced_at,
            last_change_ns=wire.last_change_ns,
            epoch=wire.epoch,
            sequence=wire.sequence,
            last_events=tuple(wire.last_events),
        )
    except (msgspec.DecodeError, msgspec.ValidationError, KeyError, ValueError) as exc:
        raise RecordError(f"not a live dump: {exc}") from exc


def _wire(record: Record) -> _Wire:
    match record:
        case FrameRecord(events):
            return _Frame([_event_wire(event) for event in events])
        case QuoteRecord(quote, at):
            return _Quote(quote, at)
        case FiguresRecord(figures, changed):
            return _Figures(list(figures), list(changed))
        case InfosRecord(infos, at_ns):
            return _Infos(list(infos), at_ns)
        case DeltaRecord(delta, now_ns):
            return _Delta(
                delta.sequence,
                delta.account_id,
                delta.kind.value,
                delta.entity_id,
                delta.event_time_ns,
                delta.body,
                now_ns,
            )
        case EpochRecord(epoch, sequence):
            return _Epoch(epoch, sequence)
    raise TypeError(f"not a live record: {record!r}")


def _record(wire: _Wire) -> Record:
    match wire:
        case _Frame(events):
            return FrameRecord(tuple(_event(event) for event in events))
        case _Quote(quote, at):
            return QuoteRecord(quote, at)
        case _Figures(figures, changed):
            return FiguresRecord(tuple(figures), tuple(changed))
        case _Infos(infos, at_ns):
            return InfosRecord(tuple(infos), at_ns)
        case _Delta(sequence, account_id, kind, entity_id, event_ns, body, now_ns):
            delta = Delta(sequence, account_id, _KINDS[kind], entity_id, event_ns, body)
            return DeltaRecord(delta, now_ns)
        case _Epoch(epoch, sequence):
            return EpochRecord(epoch, sequence)
    raise RecordError(f"unknown record {wire!r}")


def _event_wire(event: SyncEvent) -> _Event:
    if isinstance(event, SyncSnapshot):
        return _snapshot_wire(event)
    if isinstance(event, EntityChange):
        return _Change(
            event.entity_type,
            event.change.value,
            isinstance(event.entity, EntityRef),
            msgspec.Raw(_ENCODER.encode(event.entity)),
            event.received_at,
        )
    return _Status(event.connected, event.reason, event.at)


def _event(wire: _Event) -> SyncEvent:
    if isinstance(wire, _Snapshot):
        return _snapshot(wire)
    if isinstance(wire, _Change):
        decoder = _REF_DECODER if wire.ref_only else _ENTITY_DECODERS[wire.entity_type]
        entity: Entity = decoder.decode(wire.entity)
        return EntityChange(wire.entity_type, ChangeType(wire.change), entity, wire.received_at)
    return SyncStatus(wire.connected, wire.reason, wire.at)


def _snapshot_wire(snapshot: SyncSnapshot) -> _Snapshot:
    return _Snapshot(
        snapshot.accounts,
        snapshot.positions,
        snapshot.orders,
        snapshot.order_versions,
        snapshot.fills,
        snapshot.cash_balances,
        snapshot.margin_snapshots,
        snapshot.contracts,
        snapshot.contract_maturities,
        snapshot.products,
        snapshot.user_ids,
        snapshot.received_at,
        snapshot.reconnect,
    )


def _snapshot(wire: _Snapshot) -> SyncSnapshot:
    return SyncSnapshot(
        accounts=wire.accounts,
        positions=wire.positions,
        orders=wire.orders,
        order_versions=wire.order_versions,
        fills=wire.fills,
        cash_balances=wire.cash_balances,
        margin_snapshots=wire.margin_snapshots,
        contracts=wire.contracts,
        contract_maturities=wire.contract_maturities,
        products=wire.products,
        user_ids=wire.user_ids,
        received_at=wire.received_at,
        reconnect=wire.reconnect,
    )
