"""Read responses as bytes, assembled from per-account parts serialized once and reused.

Building protobuf messages is most of a read's cost, and most reads return the same
per-account data as the previous one (live state between events, a cache entry until
its TTL). So each per-account part (AccountPositions, AccountOrders, AccountBalance,
Account) is serialized once per distinct content and kept; a response is those bytes
framed as its repeated field, plus the small per-call fields (totals, server_time).

This relies on protobuf's wire format: a message is the concatenation of its fields,
and an embedded (or repeated) message field is ``tag, varint length, bytes``. The RPCs
using it return these bytes (see server/api/wrapping.py ``without_response_serializer``).

A part is keyed by its content: the account, source, as_of, the request's options and
the msgpack encoding of the record (the same bytes the cache stores). When a read
returns the very same record object as last time (a cache hit decoded once, see
server/reads/readcache.py) the part is found without encoding anything. Parts of accounts
that failed are built per call: their status goes through ``status_of``, which counts
the error.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Hashable, Iterable, Sequence
from typing import Any, Final, NamedTuple

import msgspec
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp
from tradovate_gateway.v1 import trading_pb2 as pb

from trading_gateway.server import convert
from trading_gateway.server.broker.schemas import Account
from trading_gateway.server.reads.records import (
    AccountRead,
    BalanceData,
    LoginProblem,
    OrdersData,
    PositionsData,
    Snapshot,
)
from trading_gateway.server.wire import number, shared_number, tag, varint

logger = logging.getLogger(__name__)

_ENCODER: Final = msgspec.msgpack.Encoder()

# Field numbers, from the descriptors (server/wire.py).
_RESPONSES: Final = (
    pb.GetPositionsResponse.DESCRIPTOR,
    pb.GetOrdersResponse.DESCRIPTOR,
    pb.GetBalancesResponse.DESCRIPTOR,
    pb.GetSnapshotResponse.DESCRIPTOR,
)
_PARTS: Final = (
    pb.AccountPositions.DESCRIPTOR,
    pb.AccountOrders.DESCRIPTOR,
    pb.AccountBalance.DESCRIPTOR,
)
_SNAPSHOT: Final = pb.AccountSnapshot.DESCRIPTOR
META_FIELD: Final = shared_number(_PARTS, "meta")
TOTALS_FIELD: Final = shared_number(_RESPONSES[2:], "totals")
SNAPSHOT_ACCOUNT: Final = number(_SNAPSHOT, "account")
SNAPSHOT_POSITIONS: Final = number(_SNAPSHOT, "positions")
SNAPSHOT_ORDERS: Final = number(_SNAPSHOT, "orders")
SNAPSHOT_BALANCE: Final = number(_SNAPSHOT, "balance")
# server_time follows accounts, or accounts and totals.
TIME_FIELD: Final = shared_number(_RESPONSES[:2], "server_time")
TIME_AFTER_TOTALS: Final = shared_number(_RESPONSES[2:], "server_time")
UNAVAILABLE_FIELD: Final = shared_number(_RESPONSES[:2], "unavailable_logins")
UNAVAILABLE_AFTER_TOTALS: Final = shared_number(_RESPONSES[2:], "unavailable_logins")


def field(number: int, payload: bytes) -> bytes:
    """One length-delimited field: tag, length, payload."""
    return varint(number << 3 | 2) + varint(len(payload)) + payload


def timestamp_field(number: int, seconds: float | None = None) -> bytes:
    """A Timestamp field, to the microsecond (as convert.epoch_fields); now by default."""
    now = seconds is None
    micros = (time.time_ns() + 500) // 1000 if now else round((seconds or 0.0) * 1_000_000)
    whole, nanos = divmod(micros, 1_000_000)
    body = Timestamp(seconds=whole, nanos=nanos * 1000).SerializeToString()
    return field(number, body)


class PartCache:
    """Serialized parts by content key, bounded by entries and bytes (oldest out first)."""

    def __init__(self, *, max_entries: int = 8192, max_bytes: int = 64 << 20) -> None:
        self._parts: dict[Hashable, bytes] = {}
        self._size = 0
        self._max_entries = max_entries
        self._max_bytes = max_bytes
        # The last part per (kind, account, options): its record object and key.
        self._last: dict[Hashable, tuple[object, Hashable, bytes]] = {}

    def __len__(self) -> int:
        return len(self._parts)

    def get(self, key: Hashable, build: Callable[[], bytes]) -> bytes:
        found = self._parts.get(key)
        if found is not None:
            return found
        value = build()
        self._parts[key] = value
        self._size += len(value)
        while len(self._parts) > self._max_entries or self._size > self._max_bytes:
            oldest = next(iter(self._parts))
            self._size -= len(self._parts.pop(oldest))
        return value

    def reused(self, slot: Hashable, record: object, head: tuple[Any, ...]) -> bytes | None:
        """Last time's part for this slot, when ``record`` is last time's object."""
        last = self._last.get(slot)
        if last is not None and last[0] is record and last[1] == head:
            return last[2]
        return None

    def part(
        self,
        slot: Hashable,
        record: object,
        head: tuple[Any, ...],
        body_head: tuple[Any, ...],
        build_body: Callable[[], bytes],
        build_meta: Callable[[], bytes],
    ) -> bytes:
        """The part for ``record``: by identity when it is last time's object, else content.

        A part is its meta (source, as_of: they change with every fetch) and its body (the
        entities, built from the record): the body is kept by content, the meta is small
        and built whenever the part is not last time's.
        """
        found = self.reused(slot, record, head)
        if found is not None:
            return found
        body = self.get((body_head, _ENCODER.encode(record)), build_body)
        value = build_meta() + body
        self._last[slot] = (record, head, value)
        if len(self._last) > self._max_entries:
            self._last.pop(next(iter(self._last)))
        return value


def _head(read: AccountRead[Any], *options: Any) -> tuple[Any, ...]:
    return (read.account, read.source, read.as_of, read.login, *options)


def _meta(read: AccountRead[Any], status_of: convert.StatusOf) -> Callable[[], bytes]:
    def build() -> bytes:
        meta = pb.AccountMeta(**convert.meta_fields(read, status_of))
        return field(META_FIELD, meta.SerializeToString())

    return build


class _PartKind(NamedTuple):
    """A kind of per-account part: its cache tag, message and repeated items field."""

    tag: str
    message: Callable[..., Message]
    items: str


_POSITIONS: Final = _PartKind("p", pb.AccountPositions, "positions")
_ORDERS: Final = _PartKind("o", pb.AccountOrders, "orders")
_BALANCE: Final = _PartKind("b", pb.AccountBalance, "balance")


class ResponseEncoder:
    """Serialized Get{Positions,Orders,Balances,Snapshot} responses."""

    def __init__(self, cache: PartCache | None = None) -> None:
        self.cache = cache or PartCache()
        # Per RPC: the records the last totals were summed from (held, compared by
        # identity), and those totals.
        self._last_totals: dict[str, tuple[tuple[object, ...], bytes]] = {}

    def _positions(
        self, read: AccountRead[PositionsData], status_of: convert.StatusOf, include_flat: bool
    ) -> bytes:
        def fields() -> convert.Fields:
            return convert.positions_part(read, status_of, include_flat=include_flat)

        return self._part(_POSITIONS, read, (include_flat,), status_of, fields)

    def _orders(
        self,
        read: AccountRead[OrdersData],
        status_of: convert.StatusOf,
        options: tuple[int, tuple[int, ...]],
        keep: Callable[[convert.Fields], bool],
    ) -> bytes:
        def fields() -> convert.Fields:
            return convert.orders_part(read, status_of, keep)

        return self._part(_ORDERS, read, (options,), status_of, fields)

    def _balance(self, read: AccountRead[BalanceData], status_of: convert.StatusOf) -> bytes:
        def fields() -> convert.Fields:
            return convert.balance_part(read, status_of)

        return self._part(_BALANCE, read, (), status_of, fields)

    def _part(
        self,
        kind: _PartKind,
        read: AccountRead[Any],
        options: tuple[Hashable, ...],
        status_of: convert.StatusOf,
        fields: Callable[[], convert.Fields],
    ) -> bytes:
        """One account's part: reused while its record and options are the same; its
        meta (status, source, as_of) is serialized apart, so it alone is rebuilt."""
        if read.error is None and read.data is not None:
            slot = (kind.tag, read.login, read.account.id, *options)
            head = _head(read, *options)
            found = self.cache.reused(slot, read.data, head)
            if found is not None:
                return found

            def body() -> bytes:
                items = {kind.items: fields()[kind.items]}
                return kind.message(**items).SerializeToString()

            body_head = (kind.tag, read.account, *options)
            return self.cache.part(slot, read.data, head, body_head, body, _meta(read, status_of))
        return kind.message(**fields()).SerializeToString()

    def _account(self, account: Account, login: str) -> bytes:
        def build() -> bytes:
            fields = convert.account_fields(account)
            fields["login"] = login
            return pb.Account(**fields).SerializeToString()

        slot = ("a", login, account.id)
        return self.cache.part(slot, account, (account, login), ("a", login), build, _no_meta)

    def _totals(
        self,
        reads: Sequence[AccountRead[BalanceData]],
        slot: str,
        unavailable: Sequence[LoginProblem] = (),
    ) -> bytes:
        """The totals field; the same as last time when every account's record is."""
        missing = tuple(p.login for p in unavailable)
        records = (*(r.data if r.ok else None for r in reads), missing)
        last = self._last_totals.get(slot)
        if last is not None and _same_records(last[0], records):
            return last[1]
        fields = convert.totals_fields(reads, missing)
        value = field(TOTALS_FIELD, pb.BalanceTotals(**fields).SerializeToString())
        self._last_totals[slot] = (records, value)
        return value

    def positions(
        self,
        reads: Sequence[AccountRead[PositionsData]],
        status_of: convert.StatusOf,
        *,
        include_flat: bool,
        unavailable: Sequence[LoginProblem] = (),
    ) -> bytes:
        parts = (self._positions(r, status_of, include_flat) for r in reads)
        tail = timestamp_field(TIME_FIELD) + _unavailable(UNAVAILABLE_FIELD, unavailable, status_of)
        return _join(parts, tail)

    def orders(
        self,
        reads: Sequence[AccountRead[OrdersData]],
        status_of: convert.StatusOf,
        *,
        order_filter: int,
        statuses: Iterable[int],
        unavailable: Sequence[LoginProblem] = (),
    ) -> bytes:
        wanted = tuple(statuses)
        keep = convert.order_selector(order_filter, wanted)
        options = (order_filter, wanted)
        parts = (self._orders(r, status_of, options, keep) for r in reads)
        tail = timestamp_field(TIME_FIELD) + _unavailable(UNAVAILABLE_FIELD, unavailable, status_of)
        return _join(parts, tail)

    def balances(
        self,
        reads: Sequence[AccountRead[BalanceData]],
        status_of: convert.StatusOf,
        unavailable: Sequence[LoginProblem] = (),
    ) -> bytes:
        parts = (self._balance(r, status_of) for r in reads)
        tail = (
            self._totals(reads, "balances", unavailable)
            + timestamp_field(TIME_AFTER_TOTALS)
            + _unavailable(UNAVAILABLE_AFTER_TOTALS, unavailable, status_of)
        )
        return _join(parts, tail)

    def snapshot(
        self,
        snap: Snapshot,
        status_of: convert.StatusOf,
        *,
        include_flat: bool,
        order_filter: int,
    ) -> bytes:
        keep = convert.order_selector(order_filter, ())
        options = (order_filter, ())
        parts = (
            field(SNAPSHOT_ACCOUNT, self._account(acc, login))
            + field(SNAPSHOT_POSITIONS, self._positions(pos, status_of, include_flat))
            + field(SNAPSHOT_ORDERS, self._orders(ords, status_of, options, keep))
            + field(SNAPSHOT_BALANCE, self._balance(bal, status_of))
            for acc, pos, ords, bal, login in zip(
                snap.accounts,
                snap.positions,
                snap.orders,
                snap.balances,
                _logins(snap),
                strict=True,
            )
        )
        tail = (
            self._totals(snap.balances, "snapshot", snap.unavailable)
            + timestamp_field(TIME_AFTER_TOTALS)
            + _unavailable(UNAVAILABLE_AFTER_TOTALS, snap.unavailable, status_of)
        )
        return _join(parts, tail)


def _same_records(old: tuple[object, ...], new: tuple[object, ...]) -> bool:
    return len(old) == len(new) and all(a is b for a, b in zip(old, new, strict=True))


def _logins(snap: Snapshot) -> Sequence[str]:
    return snap.logins or [""] * len(snap.accounts)


def _unavailable(
    number: int, problems: Sequence[LoginProblem], status_of: convert.StatusOf
) -> bytes:
    """The repeated ``unavailable_logins`` field (nothing when every login answered)."""
    return b"".join(
        field(number, pb.LoginStatus(**fields).SerializeToString())
        for fields in convert.login_statuses(problems, status_of)
    )


def _no_meta() -> bytes:
    return b""


def _join(parts: Iterable[bytes], tail: bytes) -> bytes:
    """The repeated ``accounts`` field from serialized parts, then ``tail``."""
    chunks: list[bytes] = []
    for part in parts:
        chunks.append(_ACCOUNTS_TAG)
        chunks.append(varint(len(part)))
        chunks.append(part)
    chunks.append(tail)
    return b"".join(chunks)


_ACCOUNTS_TAG: Final = tag(_RESPONSES[0], "accounts")
