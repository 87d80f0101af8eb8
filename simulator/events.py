"""Change batches, props events, the append-only event log, and fan-out to synced sockets.

A change is applied to the store and published in the same synchronous step, so a REST
read and the stream can never disagree.
"""

from __future__ import annotations

import itertools
import random
import time
from collections import deque
from dataclasses import dataclass
from typing import Any, Protocol

import msgspec

from trading_gateway.simulator.store import Entity

CREATED = "Created"
UPDATED = "Updated"
DELETED = "Deleted"

_encode = msgspec.json.encode


@dataclass(slots=True)
class Record:
    """One entity's net change within a batch."""

    entity_type: str
    event_type: str
    entity: Entity
    account_id: int | None


class ChangeBatch:
    """Collects the changes of one step; several changes to one entity collapse into one."""

    __slots__ = ("_records",)

    def __init__(self) -> None:
        self._records: dict[tuple[str, int], Record] = {}

    def __bool__(self) -> bool:
        return bool(self._records)

    def add(
        self, entity_type: str, event_type: str, entity: Entity, account_id: int | None
    ) -> None:
        key = (entity_type, int(entity["id"]))
        old = self._records.get(key)
        if old is None:
            self._records[key] = Record(entity_type, event_type, entity, account_id)
            return
        if event_type == DELETED and old.event_type == CREATED:
            del self._records[key]
            return
        if event_type == CREATED and old.event_type == DELETED:
            event_type = UPDATED
        elif old.event_type == CREATED:
            event_type = CREATED
        old.event_type = event_type
        old.entity = entity

    def records(self) -> list[Record]:
        return list(self._records.values())


class Subscriber(Protocol):
    """A synced user socket: its filters and a non-blocking push."""

    @property
    def sync_accounts(self) -> frozenset[int] | None: ...

    @property
    def sync_types(self) -> frozenset[str] | None: ...

    def push(self, message: bytes) -> None: ...


@dataclass(slots=True, frozen=True)
class LogEntry:
    seq: int
    timestamp: float
    entity_type: str
    event_type: str
    entity: Entity | list[Entity]
    account_ids: tuple[int, ...]

    def as_dict(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "timestamp": self.timestamp,
            "entityType": self.entity_type,
            "eventType": self.event_type,
            "entity": self.entity,
            "accountIds": list(self.account_ids),
        }


def props_message(entity_type: str, event_type: str, entity: Entity | list[Entity]) -> bytes:
    return _encode(
        {"e": "props", "d": {"entityType": entity_type, "eventType": event_type, "entity": entity}}
    )


class EventHub:
    """Turns batches into props events, logs them, and pushes them to every synced socket."""

    def __init__(self, arrays: str, rng: random.Random, log_limit: int) -> None:
        self._arrays = arrays
        self._rng = rng
        self.seq = 0
        self.log: deque[LogEntry] = deque(maxlen=log_limit)
        self.subscribers: set[Subscriber] = set()

    def publish(self, batch: ChangeBatch) -> None:
        groups: dict[tuple[str, str], list[Record]] = {}
        for record in batch.records():
            groups.setdefault((record.entity_type, record.event_type), []).append(record)
        for (entity_type, event_type), records in groups.items():
            if self._as_array(len(records)):
                self._emit(entity_type, event_type, records, as_array=True)
            else:
                for record in records:
                    self._emit(entity_type, event_type, [record], as_array=False)

    def _as_array(self, count: int) -> bool:
        if self._arrays == "always":
            return True
        if self._arrays == "never":
            return False
        # mixed: several entities go out as an array more often than not; one entity sometimes.
        return self._rng.random() < (0.75 if count > 1 else 0.25)

    def _emit(
        self, entity_type: str, event_type: str, records: list[Record], as_array: bool
    ) -> None:
        payload: Entity | list[Entity] = (
            [r.entity for r in records] if as_array else records[0].entity
        )
        self.seq += 1
        accounts = tuple(sorted({r.account_id for r in records if r.account_id is not None}))
        self.log.append(LogEntry(self.seq, time.time(), entity_type, event_type, payload, accounts))
        if not self.subscribers:
            return
        message = props_message(entity_type, event_type, payload)
        for sub in list(self.subscribers):
            wanted_types = sub.sync_types
            if wanted_types is not None and entity_type not in wanted_types:
                continue
            wanted = sub.sync_accounts
            if wanted is None or all(
                r.account_id is None or r.account_id in wanted for r in records
            ):
                sub.push(message)
                continue
            kept = [r.entity for r in records if r.account_id is None or r.account_id in wanted]
            if kept:
                sub.push(props_message(entity_type, event_type, kept if as_array else kept[0]))

    def entries(self, since: int = 0, limit: int | None = None) -> list[LogEntry]:
        """Logged events with seq > since, oldest first."""
        if not self.log:
            return []
        first = self.log[0].seq
        start = max(0, since - first + 1)
        stop = None if limit is None else start + max(0, limit)
        return list(itertools.islice(self.log, start, stop))
