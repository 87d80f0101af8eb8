"""UserSync: the user-data socket turned into an ordered stream of SyncEvents.

On every connection: ``user/syncrequest`` for our user with ``splitResponses`` and the
entity types we decode; its answer becomes a SyncSnapshot (``reconnect=True`` after the
first), then each ``props`` event becomes EntityChanges. A connection that drops yields
SyncStatus(False, reason) and, once back, a fresh snapshot for the consumer to diff.

The queue is bounded. If the consumer falls so far behind that it fills up, queued events
are dropped, the socket reconnects, and the consumer gets SyncStatus(False) followed by a
new snapshot: state is replaced, never silently lost.

A consumer that applies events synchronously can skip the queue: ``deliver_to(sink, ...)``
hands each frame's events to ``sink`` inside the socket's reader, in the step that read the
frame (no queue, no task switch before they are applied).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import AsyncIterator, Callable

import aiohttp

from trading_gateway.server.broker.auth import TokenManager
from trading_gateway.server.broker.contracts import ContractCatalog
from trading_gateway.server.broker.errors import BrokerClosed
from trading_gateway.server.broker.events import EntityChange, SyncEvent, SyncStatus, utc_now
from trading_gateway.server.broker.frames import Event, Response, snippet
from trading_gateway.server.broker.limiter import RateGate
from trading_gateway.server.broker.schemas import Contract, ContractMaturity, Product
from trading_gateway.server.broker.settings import BrokerSettings
from trading_gateway.server.broker.sync_codec import (
    SYNC_ENTITY_TYPES,
    decode_props,
    decode_snapshot,
    decode_sync_part,
)
from trading_gateway.server.broker.ws import TradovateSocket, consume
from trading_gateway.server.deadline import Deadline

logger = logging.getLogger(__name__)

#: At most one "undecodable props" resync per this many seconds (a burst is coalesced).
BAD_PROPS_RESYNC_INTERVAL = 30.0
_BAD_PROPS_REASON = "undecodable props; resyncing"

SyncSink = Callable[[list[SyncEvent]], None]
"""Takes the events of one frame (or one snapshot), in order; called synchronously."""
SyncEnd = Callable[[BaseException | None], None]
"""Called once when the stream ends: the error that stopped it for good, or None."""


class UserSync:
    """One user-sync socket and the single-consumer stream of its events."""

    def __init__(
        self,
        *,
        session: aiohttp.ClientSession,
        auth: TokenManager,
        gate: RateGate,
        settings: BrokerSettings,
        catalog: ContractCatalog | None = None,
        bad_props_resync_interval: float = BAD_PROPS_RESYNC_INTERVAL,
    ) -> None:
        self._auth = auth
        self._bad_props_interval = bad_props_resync_interval
        self._last_bad_resync: float | None = None  # loop time of the last such resync
        self._bad_resync_timer: asyncio.TimerHandle | None = None
        self.bad_props_resyncs = 0
        #: Resync when props do not decode (off only where a test checks the bare reader).
        self.resync_on_bad_props = True
        self._settings = settings
        self._catalog = catalog
        self._queue: asyncio.Queue[SyncEvent | None] = asyncio.Queue(settings.event_queue_size)
        self._live = False  # the snapshot of the current connection has been queued
        self._early: list[EntityChange] = []  # props that beat the snapshot
        self._snapshots = 0
        self._consumer = False
        self._sink: SyncSink | None = None
        self._on_end: SyncEnd | None = None
        self._held: list[SyncEvent] = []  # a frame's events, for the sink at the frame's end
        self._holding = False
        self._closed = False
        self.overflows = 0
        self.bad_messages = 0
        self._socket = TradovateSocket(
            name="user-sync",
            url=settings.ws_url,
            session=session,
            auth=auth,
            gate=gate,
            settings=settings,
            token_for=lambda token: token.access_token,
            on_ready=self._sync,
            on_event=self._on_event,
            on_down=self._on_down,
            on_stray=self._on_stray,
            on_frame_end=self._release,
        )

    @property
    def connected(self) -> bool:
        return self._socket.connected and self._live

    @property
    def socket(self) -> TradovateSocket:
        return self._socket

    async def start(self, *, deadline: Deadline | None = None) -> None:
        """Connect and sync; returns once the first snapshot is queued (or raises why not)."""
        if self._closed:
            raise BrokerClosed("the user-sync stream is closed")
        self._socket.start()
        await self._socket.wait_ready(deadline)

    async def events(self) -> AsyncIterator[SyncEvent]:
        """The stream: a SyncSnapshot first, then changes; ends on aclose().

        Raises the error that stopped the socket for good (bad credentials, captcha).
        """
        if self._consumer:
            raise RuntimeError("UserSync has a single consumer (events() or a sink)")
        self._consumer = True
        stream: AsyncIterator[SyncEvent] = consume(self._queue, self._socket)
        async for event in stream:
            yield event

    def deliver_to(self, sink: SyncSink, on_end: SyncEnd) -> None:
        """Consume by callback instead of iteration: ``sink`` gets each upstream frame's
        events together, synchronously, in the socket's reader (the snapshot, with any
        changes that arrived before it, in the connecting task). Order is kept and lists
        are never empty. ``on_end`` is called once when the stream ends.

        A sink that raises has not applied the events: the failure is logged and a resync
        (a fresh snapshot for the sink to diff) is scheduled, as for undecodable props.
        """
        if self._consumer:
            raise RuntimeError("UserSync has a single consumer (events() or a sink)")
        self._consumer = True
        self._sink = sink
        self._on_end = on_end
        # Anything queued before the sink was attached goes first.
        while not self._queue.empty():
            item = self._queue.get_nowait()
            if item is None:
                self._end_stream()
                return
            self._held.append(item)
        self._release()

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._bad_resync_timer is not None:
            self._bad_resync_timer.cancel()
            self._bad_resync_timer = None
        await self._socket.aclose()
        self._end_stream()

    # -- socket callbacks ----------------------------------------------------------------

    async def _sync(self) -> None:
        token = self._auth.current
        if token is None:
            raise BrokerClosed("no token")
        self._live = False
        self._early = []
        body = {
            "users": [token.user_id],
            "splitResponses": True,
            "entityTypes": list(SYNC_ENTITY_TYPES),
        }
        deadline = Deadline.after(self._settings.request_timeout * 3)
        data = await self._socket.request("user/syncrequest", body=body, deadline=deadline)
        problems: list[str] = []
        snapshot = decode_snapshot(
            data, received_at=utc_now(), reconnect=self._snapshots > 0, problems=problems
        )
        self._log_problems(problems)
        if self._catalog is not None:
            self._catalog.remember(
                snapshot.contracts, snapshot.contract_maturities, snapshot.products
            )
        self._snapshots += 1
        logger.info(
            "user sync: snapshot with %d accounts, %d positions, %d orders (reconnect=%s)",
            len(snapshot.accounts),
            len(snapshot.positions),
            len(snapshot.orders),
            snapshot.reconnect,
        )
        self._live = True
        self._holding = True
        try:
            self._emit(snapshot)
            early, self._early = self._early, []
            for change in early:
                self._emit(change)
        finally:
            self._release()

    def _on_event(self, event: Event, received_at: dt.datetime) -> None:
        if event.kind != "props":
            logger.debug("user sync: ignoring %s event", event.kind)
            return
        problems: list[str] = []
        changes = decode_props(event.data, received_at=received_at, problems=problems)
        self._holding = True  # until the frame ends (_release)
        self._take(changes, problems)

    def _take(self, changes: list[EntityChange], problems: list[str]) -> None:
        for change in changes:
            self._remember(change)
            if self._live:
                self._emit(change)
            elif len(self._early) < self._settings.event_queue_size:
                self._early.append(change)
            else:
                problems.append("props before the snapshot overflowed the buffer")
                break
        if problems:
            # A change we could not apply: the state may now differ from upstream. A resync
            # (a fresh snapshot, which the consumer diffs) repairs it.
            self.bad_messages += len(problems)
            self._resync_for_bad_props(problems)

    def _resync_for_bad_props(self, problems: list[str]) -> None:
        if not self.resync_on_bad_props:
            for problem in problems:
                logger.warning("user sync: skipped %s", problem)
            return
        if self._bad_resync_timer is not None or self._closed:
            logger.debug("user sync: skipped %s (a resync is already due)", problems[0])
            return
        loop = asyncio.get_running_loop()
        now = loop.time()
        wait = 0.0
        if self._last_bad_resync is not None:
            wait = self._last_bad_resync + self._bad_props_interval - now
        logger.warning(
            "user sync: skipped %s (%d problem(s)); resyncing in %.1fs",
            problems[0],
            len(problems),
            max(wait, 0.0),
        )
        if wait <= 0:
            self._bad_props_resync()
        else:
            self._bad_resync_timer = loop.call_later(wait, self._bad_props_resync)

    def _bad_props_resync(self) -> None:
        self._bad_resync_timer = None
        if self._closed:
            return
        self._last_bad_resync = asyncio.get_running_loop().time()
        self.bad_props_resyncs += 1
        self._socket.reconnect(_BAD_PROPS_REASON)

    def _on_stray(self, response: Response) -> None:
        # We keep sending ``splitResponses: true`` (the official C# sample does, and the
        # partner docs call it mandatory for B2B vendors), so the real server may answer the
        # syncrequest in several responses. What it does exactly is undocumented; the first
        # response is the snapshot, and any further SyncMessage-shaped response (the only
        # request this socket sends is the syncrequest) is merged as upserts, never dropped.
        if response.status == 200:
            problems: list[str] = []
            changes = decode_sync_part(response.data, received_at=utc_now(), problems=problems)
            if changes is not None:
                self._holding = True  # until the frame ends (_release)
                logger.info(
                    "user sync: merging a further syncrequest response %d (%d entities)",
                    response.request_id,
                    len(changes),
                )
                self._take(changes, problems)
                return
        logger.warning(
            "user sync: unmatched response %d (s=%d): %s",
            response.request_id,
            response.status,
            snippet(bytes(response.data)),
        )

    def _on_down(self, reason: str) -> None:
        was_live, self._live = self._live, False
        if was_live or self._socket.failure is not None:
            self._emit(SyncStatus(False, reason))
        if self._socket.failure is not None:
            self._end_stream()

    # -- queue ---------------------------------------------------------------------------

    def _emit(self, event: SyncEvent) -> None:
        if not self._live and isinstance(event, EntityChange):
            return
        if self._sink is not None:
            self._held.append(event)
            if not self._holding:
                self._release()
            return
        try:
            self._queue.put_nowait(event)
            return
        except asyncio.QueueFull:
            pass
        self._drain()
        if isinstance(event, SyncStatus):
            self._queue.put_nowait(event)
            return
        # Everything queued is dropped; a fresh snapshot after the reconnect replaces it.
        self.overflows += 1
        logger.error("user sync: consumer fell behind (queue full); resyncing")
        self._live = False
        self._queue.put_nowait(SyncStatus(False, "consumer fell behind; resyncing"))
        self._socket.reconnect("consumer fell behind; resyncing")

    def _drain(self) -> None:
        while not self._queue.empty():
            self._queue.get_nowait()

    def _release(self) -> None:
        """Hand what is held to the sink (at a frame's end, or at once outside a frame)."""
        self._holding = False
        sink = self._sink
        if sink is None or not self._held:
            return
        events, self._held = self._held, []
        try:
            sink(events)
        except Exception as exc:
            logger.exception("user sync: the consumer failed to apply %d event(s)", len(events))
            self.bad_messages += 1
            self._resync_for_bad_props([f"events the consumer failed to apply ({exc!r})"])

    def _end_stream(self) -> None:
        if self._on_end is not None:
            on_end, self._on_end = self._on_end, None
            self._release()
            on_end(self._socket.failure)
            return
        if self._sink is not None:
            return  # already ended
        try:
            self._queue.put_nowait(None)
        except asyncio.QueueFull:
            self._drain()
            self._queue.put_nowait(None)

    def _remember(self, change: EntityChange) -> None:
        if self._catalog is None:
            return
        entity = change.entity
        if isinstance(entity, Contract):
            self._catalog.remember(contracts=[entity])
        elif isinstance(entity, ContractMaturity):
            self._catalog.remember(maturities=[entity])
        elif isinstance(entity, Product):
            self._catalog.remember(products=[entity])

    def _log_problems(self, problems: list[str]) -> None:
        for problem in problems:
            self.bad_messages += 1
            logger.warning("user sync: skipped %s", problem)
