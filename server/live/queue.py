"""A subscriber's bounded queue of deltas that conflates by entity key when it fills.

Deltas are shared, immutable and already serialized; a queue holds references only, so
its memory is bounded by ``capacity`` whatever the size of the stream's backlog.
"""

from __future__ import annotations

from collections import deque
from typing import NamedTuple

from server.wire import varint

#: An entity key: (UpdateKind value, entity id). Latest state per key wins on conflation.
EntityKey = tuple[int, int]


class Delta(NamedTuple):
    """One hub change, serialized once and shared by every subscriber that receives it.

    ``body`` is a complete ``StreamUpdate`` whose ``previous_sequence`` is ``sequence - 1``:
    a stream sent every delta sends it as is, and a filtered stream appends its own
    ``previous_sequence`` (``chained``: the last value of a field wins). A named tuple:
    immutable, and made in one C call on every publish.
    """

    sequence: int
    account_id: int
    kind: int
    entity_id: int
    event_time_ns: int
    body: bytes

    @property
    def key(self) -> EntityKey:
        return (self.kind, self.entity_id)


class ConflatingQueue:
    """FIFO of deltas; when full, keeps only the newest delta per entity key.

    ``push`` returns False when even conflation cannot free a useful share of the space:
    the consumer cannot keep up and must be ended. Order stays by sequence throughout.
    """

    __slots__ = ("_capacity", "_items", "_reserve", "conflated")

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError("queue capacity must be at least 1")
        self._capacity = capacity
        # Conflation must free at least this many slots, else the consumer is too slow.
        self._reserve = max(1, capacity // 8)
        self._items: deque[Delta] = deque()
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
        items = list(self._items)
        self._items.clear()
        return items

    def clear(self) -> None:
        self._items.clear()

    def _conflate(self) -> None:
        seen: set[EntityKey] = set()
        kept: list[Delta] = []
        for delta in reversed(self._items):
            key = delta.key
            if key in seen:
                continue
            seen.add(key)
            kept.append(delta)
        kept.reverse()
        self.conflated += len(self._items) - len(kept)
        self._items = deque(kept)


# StreamUpdate.previous_sequence is field 2, wire type 0 (varint): tag byte 0x10.
_PREVIOUS_SEQUENCE_TAG = b"\x10"


def chained(body: bytes, previous_sequence: int) -> bytes:
    """``body`` with ``previous_sequence`` set: in concatenated protobuf messages, the last
    value of a scalar field wins."""
    return body + _PREVIOUS_SEQUENCE_TAG + varint(previous_sequence)
