"""The stream hub: one gap-free sequence per login, a replay ring, and the subscribers.

Every change of the live state becomes one ``Delta``: numbered, stamped, serialized once,
kept in a bounded replay ring and offered to each matching subscriber's own bounded queue.
Publishing never awaits, so a snapshot taken in the same synchronous step as a
subscription (or a replay) is exactly the state at ``hub.sequence``: nothing can fall
between the two, and no subscriber ever waits for another.

Replicas (server/replicas/live_log.py) use two more modes:

- ``journal(sink)`` (the lease holder): ``publish`` numbers the delta and hands it to
  ``sink`` only; ``commit`` sends it, once the replicated log holds it. So every delta a
  subscriber of any replica sees is in the log, and ``sequence`` is the last committed one
  (the state may be a little ahead of it: a snapshot can include a change whose delta is
  still on its way; each delta is a complete entity state, so applying it again is
  harmless).
- ``follow()`` (every other replica): ``publish`` does nothing; ``commit`` sends the
  holder's deltas, which must continue ``sequence`` exactly (``SequenceGap`` otherwise),
  and ``adopt`` moves to another holder's sequence space.
"""

from __future__ import annotations

import asyncio
import enum
import itertools
import logging
import secrets
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from tradovate_gateway.v1 import trading_pb2 as pb

from trading_gateway.server.convert import Fields, epoch_ns_fields
from trading_gateway.server.deadline import Deadline
from trading_gateway.server.errors import ShuttingDown
from trading_gateway.server.live.errors import StreamLimitReached
from trading_gateway.server.live.kinds import ALL_KINDS, UpdateKind
from trading_gateway.server.live.queue import NO_MERGES, ConflatingQueue, Delta, Merge

logger = logging.getLogger(__name__)


class EndReason(enum.Enum):
    SLOW_CONSUMER = "slow consumer"
    DRAIN = "drain"
    UPSTREAM_LOST = "upstream lost"


class HubMode(enum.Enum):
    DIRECT = "direct"
    JOURNAL = "journal"
    FOLLOW = "follow"


class SequenceGap(Exception):
    """A committed delta does not continue the hub's sequence."""

    def __init__(self, expected: int, given: int) -> None:
        self.expected = expected
        self.given = given
        super().__init__(f"delta {given} does not continue the hub (expected {expected})")


DeltaSink = Callable[[Delta, int], None]


class Subscription:
    """One stream's registration: its filter, its bounded queue and its wake-up."""

    __slots__ = (
        "_hub",
        "_in_hand",
        "_waiter",
        "accounts",
        "end_detail",
        "ended",
        "kinds",
        "merges_in_hand",
        "on_wake",
        "queue",
        "unsent_floor",
    )

    def __init__(
        self,
        hub: StreamHub,
        accounts: frozenset[int] | None,
        kinds: frozenset[UpdateKind],
        capacity: int,
    ) -> None:
        self._hub = hub
        self._in_hand: list[Delta] = []
        self._waiter: asyncio.Future[None] | None = None
        self.accounts = accounts
        self.kinds = kinds
        self.queue = ConflatingQueue(capacity)
        #: The merges among the deltas ``take`` returned last, by sequence (usually none).
        self.merges_in_hand: dict[int, Merge] = NO_MERGES
        self.ended: EndReason | None = None
        self.end_detail = ""
        #: Set when ``end`` dropped the backlog: the earliest sequence a dropped delta
        #: stood for through a merge (None: no merge was dropped). See ``ConflatingQueue.clear``.
        self.unsent_floor: int | None = None
        #: Called on every wake-up (a delta queued, the end, a heartbeat due): a stream
        #: over several logins waits for any of its sessions this way.
        self.on_wake: Callable[[], None] | None = None

    def matches(self, delta: Delta) -> bool:
        return delta.kind in self.kinds and (
            self.accounts is None or delta.account_id in self.accounts
        )

    def offer(self, delta: Delta) -> None:
        if self.ended is not None:
            return
        if not self.queue.push(delta):
            self._hub.dropped_deltas += len(self.queue) + 1  # all it had, and this one
            self.end(EndReason.SLOW_CONSUMER, f"more than {self.queue.capacity} deltas behind")
            return
        self.wake()

    def take(self) -> list[Delta]:
        """The queued deltas, oldest first (their merges: ``merges_in_hand``). ``end``
        empties the list returned last, so a stream iterating it stops at once: an ended
        stream sends nothing more."""
        self._in_hand = batch = self.queue.take_all()
        self.merges_in_hand = self.queue.take_merges()
        self._hub.sent_deltas += len(batch)
        return batch

    def wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
        if self.on_wake is not None:
            self.on_wake()

    async def wait(self) -> None:
        """Until a delta is queued, the stream is ended, or ``wake`` is called."""
        if len(self.queue) or self.ended is not None:
            return
        self._waiter = asyncio.get_running_loop().create_future()
        try:
            await self._waiter
        finally:
            self._waiter = None

    def end(self, reason: EndReason, detail: str = "") -> None:
        """Stop taking deltas and drop the backlog: the stream ends after the message it
        is writing, not behind what was queued for it."""
        if self.ended is None:
            self.ended = reason
            self.end_detail = detail
            self.unsent_floor = self.queue.clear()
            self._in_hand.clear()
            if reason is EndReason.SLOW_CONSUMER:
                self._hub.slow_consumers_ended += 1
                logger.info("ending a slow stream subscriber: %s", detail)
        self.wake()

    def close(self) -> None:
        self._hub.unsubscribe(self)


class StreamHub:
    """Sequence, epoch, replay ring and subscriber registry for StreamUpdates: one per
    login, whose name it stamps on every message (``StreamUpdate.login``)."""

    def __init__(
        self,
        *,
        login: str = "",
        replay_capacity: int = 10_000,
        queue_capacity: int = 1_000,
        max_streams: int = 1_000,
        epoch: str | None = None,
        clock_ns: Callable[[], int] = time.time_ns,
    ) -> None:
        self.epoch = epoch or secrets.token_hex(8)
        #: The login whose sequence space this is ("": a hub outside any login, in tests).
        self.login = login
        self.sequence = 0
        self.queue_capacity = queue_capacity
        self.max_streams = max_streams
        self.slow_consumers_ended = 0
        # Counters for metrics (server/live/stats.py): plain ints, read on a scrape.
        self.sent_deltas = 0
        self.dropped_deltas = 0
        self.resumes_replayed = 0
        self.resumes_missed = 0
        # Deltas dropped by conflation (a newer delta of the same entity replaced them in a
        # full queue) in streams that have closed; see ``conflated_deltas``.
        self._conflated_closed = 0
        self._clock_ns = clock_ns
        self._ring: deque[Delta] = deque(maxlen=replay_capacity)
        self._by_account: dict[int, dict[Subscription, None]] = {}
        self._everyone: dict[Subscription, None] = {}
        self._count = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self._draining = False
        # Per account: wall time (ns) and sequence of its last published delta.
        self.last_event_ns: dict[int, int] = {}
        self.last_sequence_of: dict[int, int] = {}
        self.mode = HubMode.DIRECT
        # The last sequence numbered (ahead of ``sequence`` while deltas wait in a journal).
        self._numbered = 0
        self._sink: DeltaSink | None = None
        # Set (and replaced) whenever ``sequence`` or ``epoch`` moves: ``reached`` waits on it.
        self._moved: asyncio.Event | None = None

    # ------------------------------------------------------------------ modes
    @property
    def numbered(self) -> int:
        """The last sequence numbered: ``sequence`` plus the deltas a journal still holds."""
        return self._numbered if self.mode is HubMode.JOURNAL else self.sequence

    def journal(self, sink: DeltaSink) -> None:
        """From now on, hand each new delta to ``sink(delta, now_ns)``; ``commit`` sends it."""
        self.mode = HubMode.JOURNAL
        self._numbered = self.sequence
        self._sink = sink

    def follow(self) -> None:
        """From now on, ``publish`` does nothing: only ``commit`` moves the hub."""
        self.mode = HubMode.FOLLOW
        self._numbered = self.sequence
        self._sink = None

    def adopt(self, epoch: str, sequence: int, detail: str) -> bool:
        """Continue from ``sequence`` of ``epoch`` (a follower that had to resync). Unless
        that is exactly where the hub is, the open streams end (resumable: a resume that
        the replay ring cannot serve gets a fresh snapshot) and the ring is emptied.
        True when it was a change."""
        if epoch == self.epoch and sequence == self.sequence:
            return False
        self.end_all(EndReason.UPSTREAM_LOST, detail)
        self._ring.clear()
        self.epoch = epoch
        self.sequence = self._numbered = sequence
        self._tell_moved()
        return True

    # ------------------------------------------------------------------ publishing
    def publish(
        self,
        *,
        account_id: int,
        kind: UpdateKind,
        entity_id: int,
        payload: Mapping[str, Any],
        event_ns: int = 0,
        received_ns: int = 0,
    ) -> Delta | None:
        """Number, stamp and serialize one ``StreamUpdate`` once, then offer it to every
        subscriber.

        ``payload`` is its one ``payload`` field, e.g. ``{"order": {...}}`` (field dicts or
        messages). The update is built in one constructor call with its sequence and all
        three times: ``event_ns`` (0: the publish time), ``received_ns`` (0: unset).
        Following another replica's hub, it does nothing and returns None."""
        mode = self.mode
        if mode is HubMode.FOLLOW:
            return None
        now = self._clock_ns()
        if mode is HubMode.JOURNAL:
            self._numbered = sequence = self._numbered + 1
        else:
            self.sequence = sequence = self.sequence + 1
        event_ns = event_ns or now
        fields: Fields = {
            "sequence": sequence,
            # Right for every stream that was sent the delta before this one; a stream
            # that skipped some appends its own (server/live/queue.py ``chained``).
            "previous_sequence": sequence - 1,
            "epoch": self.epoch,
            "login": self.login,
            "account_id": account_id,
            "server_time": epoch_ns_fields(now),
            "event_time": epoch_ns_fields(event_ns),
            "received_time": epoch_ns_fields(received_ns) if received_ns else None,
            **payload,
        }
        update = pb.StreamUpdate(**fields)
        delta = Delta(sequence, account_id, kind, entity_id, event_ns, update.SerializeToString())
        if mode is HubMode.JOURNAL:
            assert self._sink is not None
            self._sink(delta, now)
        else:
            self._send(delta, now)
        return delta

    async def reached(self, epoch: str, sequence: int, within: float) -> None:
        """Until ``sequence`` of ``epoch`` was sent, the epoch changed, or ``within`` s."""
        await self._while(lambda: self.epoch == epoch and self.sequence < sequence, within)

    async def settled(self, within: float) -> None:
        """Until every delta numbered before the call was sent, or ``within`` seconds
        passed: a snapshot taken then is the state at ``sequence`` plus at most what was
        numbered meanwhile (one delta-log append's worth on a busy holder)."""
        target = self._numbered
        await self._while(lambda: self.mode is HubMode.JOURNAL and self.sequence < target, within)

    async def _while(self, holds: Callable[[], bool], within: float) -> None:
        """Wait while ``holds()``, looking again whenever the hub moves, for ``within`` s."""
        loop = asyncio.get_running_loop()
        until = loop.time() + within
        while holds():
            left = until - loop.time()
            if left <= 0:
                return
            if self._moved is None:
                self._moved = asyncio.Event()
            try:
                async with asyncio.timeout(left):
                    await self._moved.wait()
            except TimeoutError:
                return

    def _tell_moved(self) -> None:
        moved, self._moved = self._moved, None
        if moved is not None:
            moved.set()

    def commit(self, delta: Delta, now_ns: int) -> None:
        """Send a journaled or replicated delta: the next one after ``sequence``."""
        if delta.sequence != self.sequence + 1:
            raise SequenceGap(self.sequence + 1, delta.sequence)
        self.sequence = delta.sequence
        if self.mode is HubMode.FOLLOW:
            self._numbered = delta.sequence
        self._send(delta, now_ns)

    def _send(self, delta: Delta, now_ns: int) -> None:
        account_id = delta.account_id
        kind = delta.kind
        self._ring.append(delta)
        self.last_event_ns[account_id] = now_ns
        self.last_sequence_of[account_id] = delta.sequence
        if self._moved is not None:
            self._tell_moved()
        for sub in self._by_account.get(account_id, ()):
            if kind in sub.kinds:
                sub.offer(delta)
        for sub in self._everyone:
            if kind in sub.kinds:
                sub.offer(delta)

    # ------------------------------------------------------------------ subscribers
    @property
    def stream_count(self) -> int:
        return self._count

    @property
    def draining(self) -> bool:
        return self._draining

    def subscribe(
        self, accounts: Iterable[int] | None, kinds: Iterable[UpdateKind]
    ) -> Subscription:
        """Register a stream; ``accounts=None`` follows every account, present and future."""
        if self._draining:
            raise ShuttingDown("the gateway is shutting down and takes no new streams")
        if self._count >= self.max_streams:
            raise StreamLimitReached(self.max_streams)
        wanted = frozenset(accounts) if accounts is not None else None
        sub = Subscription(self, wanted, frozenset(kinds) or ALL_KINDS, self.queue_capacity)
        if wanted is None:
            self._everyone[sub] = None
        else:
            for account_id in wanted:
                self._by_account.setdefault(account_id, {})[sub] = None
        self._count += 1
        self._idle.clear()
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        removed = False
        if sub.accounts is None:
            removed = self._everyone.pop(sub, 0) is None
        else:
            for account_id in sub.accounts:
                subs = self._by_account.get(account_id)
                if subs is not None and subs.pop(sub, 0) is None:
                    removed = True
                    if not subs:
                        del self._by_account[account_id]
        if removed:
            self._count -= 1
            if self._count == 0:
                self._idle.set()
            self._conflated_closed += sub.queue.conflated
        sub.queue.clear()

    @property
    def conflated_deltas(self) -> int:
        """Deltas not sent because a newer one of the same entity replaced them in a full
        queue (by design: latest state wins), over every stream, open or closed. Zero means
        every subscriber was sent every delta it matched."""
        return self._conflated_closed + sum(sub.queue.conflated for sub in self.subscribers())

    def covers(self, after: int, epoch: str) -> bool:
        """True when every delta after ``after`` of ``epoch`` is still in the replay ring."""
        if epoch != self.epoch or after > self.sequence:
            return False
        if after == self.sequence:
            return True
        return bool(self._ring) and self._ring[0].sequence <= after + 1

    def replay(self, sub: Subscription, after: int, epoch: str) -> bool:
        """Queue the deltas after ``after`` that ``sub`` wants; False if they cannot be served.

        Call it in the same synchronous step as ``subscribe``: nothing is published between.
        """
        if not self.covers(after, epoch):
            self.resumes_missed += 1
            return False
        if after == self.sequence:
            self.resumes_replayed += 1
            return True
        start = after + 1 - self._ring[0].sequence
        for delta in itertools.islice(self._ring, start, None):
            if sub.matches(delta) and not sub.queue.push(delta):
                sub.queue.clear()
                self.resumes_missed += 1
                return False
        self.resumes_replayed += 1
        return True

    @property
    def replay_buffered(self) -> int:
        return len(self._ring)

    @property
    def replay_capacity(self) -> int:
        return self._ring.maxlen or 0

    def subscribers(self) -> list[Subscription]:
        subs: dict[Subscription, None] = dict(self._everyone)
        for group in self._by_account.values():
            subs.update(group)
        return list(subs)

    def end_all(self, reason: EndReason, detail: str = "") -> int:
        subs = self.subscribers()
        for sub in subs:
            sub.end(reason, detail)
        return len(subs)

    async def wait_idle(self, deadline: Deadline) -> bool:
        """Until no stream is open (or ``deadline`` passes); True when none is."""
        try:
            async with asyncio.timeout(deadline.remaining()):
                await self._idle.wait()
        except TimeoutError:
            return False
        return True

    def drain(self) -> int:
        """Refuse new streams and end every open one (UNAVAILABLE with a resume hint)."""
        self._draining = True
        return self.end_all(EndReason.DRAIN, "the gateway is shutting down")
