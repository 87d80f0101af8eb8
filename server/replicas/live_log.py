"""One login's live state through its delta log: the holder's journal, a follower's mirror.

``LiveJournal`` (the lease holder): the live service records every input and every delta
it numbers (server/live/records.py); the journal packs what gathered since its last write
into one step, appends it to the delta log (delta_log.py: fenced by the holder's lease
epoch, one round trip) and only then sends the step's deltas to this replica's own
subscribers (``StreamHub.commit``). So every delta any subscriber sees is in the log, and
a holder whose term lapsed appends nothing and sends nothing more. A step whose append
Redis did not answer is retried as it is (same number, same bytes: a retry that finds it
stored goes on); a refused append (``Fenced``, or a log that does not continue ours)
calls ``on_refused`` and stops: the gateway rebuilds the login as a follower. The journal
stores a snapshot (server/live/replay.py ``dump``) at its first step and every
``snapshot_every`` steps, so a replica starting now finds one the log continues.

``LiveMirror`` (every other replica): tails the log (delta_tail.py), loads the newest
snapshot, then replays every record in order on its own live service, whose hub follows
(server/live/hub.py): the same state, the same deltas under the same numbers. It never
calls Tradovate. When the log breaks off (trimmed past it, lost by Redis) or a new holder
starts another sequence space, it loads the next snapshot; its streams end resumably only
when its hub cannot continue exactly. While it cannot read Redis, its live state says it is
down (``feed_lost``), so reads go to the cache or upstream and health says so.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Final

from redis.exceptions import ResponseError

from trading_gateway.server.deadline import Deadline
from trading_gateway.server.live.hub import SequenceGap
from trading_gateway.server.live.queue import Delta
from trading_gateway.server.live.records import (
    DeltaRecord,
    EpochRecord,
    Record,
    RecordError,
    decode_dump,
    decode_step,
    encode_dump,
    encode_step,
)
from trading_gateway.server.live.replay import NewSequenceSpace, dump, load, replay
from trading_gateway.server.live.service import LiveService
from trading_gateway.server.replicas.delta_log import (
    DeltaLog,
    DeltaLogError,
    DeltaLogKeys,
    Fenced,
    LogUnavailable,
    SequenceMismatch,
    StaleSnapshot,
)
from trading_gateway.server.replicas.delta_tail import (
    DeltaTail,
    LogEntry,
    RedisLost,
    ResyncNeeded,
    SnapshotLoaded,
)
from trading_gateway.server.tasks import TaskSet

logger = logging.getLogger(__name__)

RETRY_INITIAL_S: Final = 0.05
RETRY_MAX_S: Final = 1.0
#: An idle holder appends an empty step this often; a follower that sees no step for
#: SILENCE_S says its live state is not current (no holder is writing).
HEARTBEAT_S: Final = 1.0
SILENCE_S: Final = 3.0
#: Records a holder keeps waiting for Redis before it gives the login up.
MAX_PENDING_RECORDS: Final = 100_000


class LiveJournal:
    """The holder's side (see the module docstring). ``start`` it once; ``aclose`` stops
    writing (records still pending are dropped: the next holder resyncs from Tradovate)."""

    def __init__(
        self,
        service: LiveService,
        log: DeltaLog,
        *,
        epoch: int,
        snapshot_every: int,
        on_refused: Callable[[str], None],
    ) -> None:
        self._service = service
        self._log = log
        self._epoch = epoch
        self._snapshot_every = max(1, snapshot_every)
        self._on_refused = on_refused
        self._pending: list[Record] = []
        self._max_pending = max(MAX_PENDING_RECORDS, 10 * snapshot_every)
        # True while appends have failed for over SILENCE_S (the state is called down).
        self._stalled = False
        self._wake = asyncio.Event()
        self._tasks = TaskSet("live-journal", logger)
        self._next_step = 1
        self._snapshot_step = 0
        self._need_snapshot = True
        self.stopped: str | None = None
        #: Steps appended, records in them, and the append round trips' total (seconds).
        self.steps = 0
        self.records = 0
        self.append_seconds = 0.0
        #: The last step appended (0: none yet).
        self.last_step = 0

    def start(self, head: int | None) -> None:
        """Continue the log after ``head`` (None: a new log). From now on the service's
        inputs and deltas go through this journal."""
        service = self._service
        self._next_step = (head or 0) + 1
        hub = service.hub
        self._pending.append(EpochRecord(hub.epoch, hub.sequence))
        service.recorder = self._record
        hub.journal(self._delta)
        self._wake.set()
        self._tasks.spawn(self._run(), "live-journal")

    async def aclose(self) -> None:
        self._service.recorder = None
        await self._tasks.aclose()

    @property
    def pending(self) -> int:
        return len(self._pending)

    def _record(self, record: Record) -> None:
        pending = self._pending
        pending.append(record)
        self._wake.set()
        if len(pending) > self._max_pending and self.stopped is None:
            self._refused(
                f"{len(pending)} live records wait for the delta log (at most "
                f"{self._max_pending}): Redis takes no appends"
            )

    def _delta(self, delta: Delta, now_ns: int) -> None:
        self._record(DeltaRecord(delta, now_ns))

    async def _run(self) -> None:
        try:
            await self._write()
        except Exception as exc:  # a bug: never leave the hub waiting on a dead journal
            logger.exception("login %r: the live journal failed", self._service.hub.login)
            self._refused(f"the live journal failed: {exc!r}")

    async def _write(self) -> None:
        while self.stopped is None:
            # An idle holder still writes a step every HEARTBEAT_S: followers tell a
            # silent log (a dead holder) from a quiet market by it.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(HEARTBEAT_S):
                    await self._wake.wait()
            self._wake.clear()
            # One synchronous step: the records, their number and (when due) the dump of
            # the state they leave behind.
            records, self._pending = self._pending, []
            step = self._next_step
            self._next_step += 1
            state: bytes | None = None
            if self._need_snapshot or step - self._snapshot_step >= self._snapshot_every:
                state = encode_dump(dump(self._service))
            if not await self._append(step, encode_step(records)):
                return
            hub = self._service.hub
            for record in records:
                if isinstance(record, DeltaRecord):
                    hub.commit(record.delta, record.now_ns)
            self.steps += 1
            self.records += len(records)
            self.last_step = step
            if state is not None:
                await self._store_snapshot(step, state)

    async def _append(self, step: int, payload: bytes) -> bool:
        try:
            return await self._append_retrying(step, payload)
        finally:
            if self._stalled:
                self._stalled = False
                self._service.feed_back()

    async def _append_retrying(self, step: int, payload: bytes) -> bool:
        pause = RETRY_INITIAL_S
        failing_since: float | None = None
        while self.stopped is None:
            now = time.monotonic()
            if failing_since is not None and not self._stalled and now - failing_since > SILENCE_S:
                # Its subscribers get nothing while the log takes nothing: say so.
                self._stalled = True
                self._service.feed_lost(
                    f"the delta log has taken no append for {now - failing_since:.1f} s"
                )
            started = time.perf_counter()
            try:
                appended = await self._log.append(self._epoch, step, payload)
            except SequenceMismatch as exc:
                if exc.expected == step + 1:
                    return True  # an earlier try that Redis did not confirm stored it
                self._refused(f"the delta log does not continue this holder's: {exc}")
                return False
            except Fenced as exc:
                self._refused(f"the delta log refused this holder's epoch: {exc}")
                return False
            except (LogUnavailable, ResponseError) as exc:
                # No answer, or Redis's own refusal (OOM under noeviction, READONLY after a
                # failover): nothing is known to be appended; the same step again.
                logger.warning("delta log: step %d not appended (%s); retrying", step, exc)
                failing_since = failing_since or now
                await asyncio.sleep(pause)
                pause = min(pause * 2, RETRY_MAX_S)
                continue
            except DeltaLogError as exc:
                self._refused(f"the delta log refused step {step}: {exc}")
                return False
            finally:
                self.append_seconds += time.perf_counter() - started
            if appended.new_log and step != 1 and not self._need_snapshot:
                self._need_snapshot = True  # Redis lost the log: followers need a snapshot
                self._wake.set()
            return True
        return False

    async def _store_snapshot(self, step: int, state: bytes) -> None:
        try:
            await self._log.write_snapshot(self._epoch, step, state)
        except StaleSnapshot:
            pass
        except Fenced as exc:
            self._refused(f"the snapshot write refused this holder's epoch: {exc}")
            return
        except (DeltaLogError, ResponseError) as exc:
            logger.warning("delta log: snapshot at step %d not stored (%s); next step", step, exc)
            self._need_snapshot = True
            self._wake.set()
            return
        self._need_snapshot = False
        self._snapshot_step = step

    def _refused(self, why: str) -> None:
        self.stopped = why
        logger.error("login %r: %s; stepping down", self._service.hub.login, why)
        self._on_refused(why)


class LiveMirror:
    """A follower's side (see the module docstring). ``start`` it once; ``aclose`` stops."""

    def __init__(self, service: LiveService, url: str, keys: DeltaLogKeys) -> None:
        self._service = service
        self._url = url
        self._keys = keys
        self._tasks = TaskSet("live-mirror", logger)
        self._moved = asyncio.Condition()
        #: The last log step applied (None: no snapshot loaded yet).
        self.position: int | None = None
        self.reloads = 0
        # The lease epoch of the writer of the last step applied (None: none yet).
        self._writer: int | None = None
        # The snapshot being loaded now (a failure skips past it), and when the last step
        # or snapshot was applied (loop time).
        self._loading: int | None = None
        self._last_at = 0.0

    @property
    def feed_up(self) -> bool:
        """False while Redis cannot be read (or the log broke off) until the next step:
        the live service's own flag (``feed_lost``/``feed_back``)."""
        return self._service.feed_ok

    def start(self) -> None:
        self._last_at = asyncio.get_running_loop().time()
        self._tasks.spawn(self._run(), "live-mirror")
        self._tasks.spawn(self._watch_silence(), "live-mirror-silence")

    async def _watch_silence(self) -> None:
        """A holder writes a step at least every HEARTBEAT_S: a log silent for SILENCE_S
        has no holder writing it (dead, or still taking over), so the mirrored state is
        not current: say so until the next step."""
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(HEARTBEAT_S / 2)
            silent = loop.time() - self._last_at
            if self.feed_up and self.position is not None and silent > SILENCE_S:
                self._service.feed_lost(
                    f"no holder has written the login's delta log for {silent:.1f} s"
                )

    async def aclose(self) -> None:
        await self._tasks.aclose()

    async def caught_up(self, head: int, deadline: Deadline) -> bool:
        """Until this mirror has applied step ``head`` (True) or ``deadline`` passes."""
        try:
            async with asyncio.timeout(deadline.remaining()):
                async with self._moved:
                    await self._moved.wait_for(
                        lambda: self.position is not None and self.position >= head
                    )
        except TimeoutError:
            return False
        return True

    async def _run(self) -> None:
        min_snapshot = 0
        pause = RETRY_INITIAL_S
        while True:
            tail = DeltaTail(self._url, self._keys, min_snapshot=min_snapshot)
            try:
                async with tail:
                    async for event in tail:
                        await self._apply(event)
                        pause = RETRY_INITIAL_S
            except Exception as exc:
                expected = isinstance(exc, (NewSequenceSpace, SequenceGap, RecordError))
                logger.log(
                    logging.WARNING if expected else logging.ERROR,
                    "login %r: the replicated live state starts again from a snapshot: %s",
                    self._service.hub.login,
                    exc,
                    exc_info=not expected,
                )
                self._service.feed_lost(f"reloading the holder's state: {exc}")
                self.reloads += 1
                # The snapshot to start from: past one that could not load; at or after a
                # new holder's first step (it stores one there); else any the log continues.
                if self._loading is not None:
                    min_snapshot = self._loading + 1
                elif isinstance(exc, NewSequenceSpace) and exc.at_step is not None:
                    min_snapshot = exc.at_step
                else:
                    min_snapshot = 0
                self._loading = None
                self.position = None
                await asyncio.sleep(pause)
                pause = min(pause * 2, RETRY_MAX_S)

    async def _apply(self, event: SnapshotLoaded | LogEntry | ResyncNeeded | RedisLost) -> None:
        service = self._service
        match event:
            case SnapshotLoaded(snapshot):
                why = "the replica reloaded the holder's state"
                self._loading = snapshot.sequence
                load(service, decode_dump(snapshot.state), why)
                self._loading = None
                self._writer = snapshot.epoch
                await self._at(snapshot.sequence)
            case LogEntry(sequence, writer, payload):
                records = decode_step(payload)
                if writer != self._writer:
                    # A holder's term opens with an EpochRecord: a step of a new writer
                    # without one means this replica missed the term's first steps (a
                    # Redis failover that lost entries it had read): start again.
                    if not records or not isinstance(records[0], EpochRecord):
                        raise NewSequenceSpace(
                            f"step {sequence} is the first this replica sees of writer "
                            f"epoch {writer}, and not its term's first"
                        )
                    self._writer = writer
                for record in records:
                    replay(service, record, sequence)
                await self._at(sequence)
            case ResyncNeeded(reason, _):
                service.feed_lost(f"the replicated log broke off ({reason}); reloading")
                self.position = None
                self.reloads += 1
            case RedisLost(error):
                service.feed_lost(f"Redis cannot be read for the holder's live state: {error}")

    async def _at(self, position: int) -> None:
        self.position = position
        self._last_at = asyncio.get_running_loop().time()
        self._service.feed_back()
        async with self._moved:
            self._moved.notify_all()
