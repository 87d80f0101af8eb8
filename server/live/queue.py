"""A subscriber's bounded queue of deltas that conflates by entity key when it fills.

Deltas are shared, immutable and already serialized; a queue holds references only, so
its memory is bounded by ``capacity`` whatever the size of the stream's backlog.
"""

from __future__ import annotations

from collections import deque
from typing import Final, NamedTuple

from tradovate_gateway.v1 import trading_pb2 as pb

from trading_gateway.server.live.kinds import UpdateKind
from trading_gateway.server.wire import tag, varint

#: An entity key: (kind, entity id). Latest state per key wins on conflation.
EntityKey = tuple[UpdateKind, int]


class Delta(NamedTuple):
    """One hub change, serialized once and shared by every subscriber that receives it.

    ``body`` is a complete ``StreamUpdate`` whose ``previous_sequence`` is ``sequence - 1``:
    a stream sent every delta sends it as is, and a filtered stream appends its own
    ``previous_sequence`` (``chained``: the last value of a field wins). A named tuple:
    immutable, and made in one C call on every publish.
    """

    sequence: int
    account_id: int
    kind: UpdateKind
    entity_id: int
    event_time_ns: int
    body: bytes

    @property
    def key(self) -> EntityKey:
        return (self.kind, self.entity_id)


class Merge(NamedTuple):
    """What a queued delta stands for besides itself, once conflation merged into it."""

    #: How many earlier deltas of the same entity it replaced (they are never sent).
    replaced: int
    #: The earliest sequence among them.
    first: int


#: Shared by every batch that carries no merge (the common case): never mutated.
NO_MERGES: dict[int, Merge] = {}


class ConflatingQueue:
    """FIFO of deltas; when full, keeps only the newest delta per entity key.

    A delta that conflation keeps records what it replaced (``Merge``, by its sequence),
    so the stream can mark it and a subscriber can tell a merge from a loss. ``push``
    returns False when even conflation cannot free a useful share of the space: the
    consumer cannot keep up and must be ended. Order stays by sequence throughout.
    """

    __slots__ = ("_capacity", "_items", "_merges", "_reserve", "conflated")

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError("queue capacity must be at least 1")
        self._capacity = capacity
        # Conflation must free at least this many slots, else the consumer is too slow.
        self._reserve = max(1, capacity // 8)
        self._items: deque[Delta] = deque()
        self._merges: dict[int, Merge] = NO_MERGES
        self.conflated = 0

    def __len__(self) -> int:
        return len(self._items)

    @property
    def capacity(self) -> int:
        return self._capacity

    def push(self, delta: Delta) -> bool:
        if len(self._items) >= self._capacity:
            self._conflate()
            if len(self._items) > self._capacity - self._reserve:
                return False
        self._items.append(delta)
        return True

    def take_all(self) -> list[Delta]:
        """Every queued delta, oldest first; take their merges with ``take_merges``."""
        items = list(self._items)
        self._items.clear()
        return items

    def take_merges(self) -> dict[int, Merge]:
        """The merges among the deltas ``take_all`` returned, by sequence (usually none)."""
        merges, self._merges = self._merges, NO_MERGES
        return merges

    def clear(self) -> int | None:
        """Drop every queued delta; returns the earliest sequence a dropped delta stood
        for through a merge (None when none was merged): a resume point must stay below
        it, since the merged deltas before it were never sent."""
        first = min((m.first for m in self._merges.values()), default=None)
        self._items.clear()
        self._merges = NO_MERGES
        return first

    def _conflate(self) -> None:
        newest: dict[EntityKey, int] = {}
        for delta in self._items:
            newest[delta.key] = delta.sequence
        if len(newest) == len(self._items):
            return
        merges = self._merges if self._merges is not NO_MERGES else {}
        kept: deque[Delta] = deque()
        for delta in self._items:
            survivor = newest[delta.key]
            if survivor == delta.sequence:
                kept.append(delta)
                continue
            # Oldest first, so the first merge into ``survivor`` names the earliest.
            own = merges.pop(delta.sequence, None)
            count, first = (own.replaced + 1, own.first) if own else (1, delta.sequence)
            before = merges.get(survivor)
            if before is not None:
                count, first = before.replaced + count, min(before.first, first)
            merges[survivor] = Merge(count, first)
        self.conflated += len(self._items) - len(kept)
        self._items = kept
        self._merges = merges


_UPDATE: Final = pb.StreamUpdate.DESCRIPTOR
_PREVIOUS_SEQUENCE_TAG: Final = tag(_UPDATE, "previous_sequence")
_MERGED_COUNT_TAG: Final = tag(_UPDATE, "merged_count")
_MERGED_FROM_TAG: Final = tag(_UPDATE, "merged_from_sequence")


def chained(body: bytes, previous_sequence: int) -> bytes:
    """``body`` with ``previous_sequence`` set: in concatenated protobuf messages, the last
    value of a scalar field wins."""
    return body + _PREVIOUS_SEQUENCE_TAG + varint(previous_sequence)


def marked(body: bytes, merge: Merge) -> bytes:
    """``body`` with ``merged_count`` and ``merged_from_sequence`` set from ``merge``."""
    return (
        body + _MERGED_COUNT_TAG + varint(merge.replaced) + _MERGED_FROM_TAG + varint(merge.first)
    )
