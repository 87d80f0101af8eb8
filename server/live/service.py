"""LiveService: the user-sync and market-data sockets turned into live state and streams.

It owns one consumer task per socket (never one socket per subscriber), the market-data
subscriptions for contracts with open positions, the background refresh of Tradovate's
figures that the sync socket lacks (server/live/figures.py), and the health of the live
state. Its parts are public for the composition root: ``hub`` (streams), ``streams``
(opens StreamUpdates sessions), ``source`` (unary reads), ``views`` and ``figures``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from trading_gateway.server.broker.events import EntityChange, SyncEvent, SyncSnapshot, SyncStatus
from trading_gateway.server.broker.schemas import ContractInfo
from trading_gateway.server.convert import StatusOf
from trading_gateway.server.deadline import Deadline
from trading_gateway.server.live.figures import (
    AccountFigures,
    FigureFetcher,
    FigureRefresher,
    RefreshSettings,
)
from trading_gateway.server.live.hub import EndReason, StreamHub
from trading_gateway.server.live.md_subscriptions import QuoteFeed, QuoteSubscriptions
from trading_gateway.server.live.records import (
    FiguresRecord,
    FrameRecord,
    InfosRecord,
    QuoteRecord,
    Record,
)
from trading_gateway.server.live.source import LiveViewReads
from trading_gateway.server.live.state import LiveState
from trading_gateway.server.live.stats import StreamStats
from trading_gateway.server.live.streams import LiveStreams, StreamSettings
from trading_gateway.server.live.views import LiveViews
from trading_gateway.server.tasks import TaskSet

logger = logging.getLogger(__name__)


class SyncFeed(Protocol):
    """trading_gateway.server.broker.sync.UserSync, as the live state uses it."""

    @property
    def connected(self) -> bool: ...

    async def start(self, *, deadline: Deadline | None = None) -> None: ...

    def deliver_to(
        self,
        sink: Callable[[list[SyncEvent]], None],
        on_end: Callable[[BaseException | None], None],
    ) -> None: ...

    async def aclose(self) -> None: ...


@dataclass(frozen=True, slots=True)
class LiveSettings:
    replay_capacity: int = 10_000
    queue_capacity: int = 1_000
    max_streams: int = 1_000
    heartbeat_default: float = 5.0
    heartbeat_min: float = 0.1
    heartbeat_max: float = 120.0
    pnl_interval: float = 0.1
    # Streams stay open through a sync drop this long; then they end with UNAVAILABLE.
    upstream_loss_grace: float = 30.0
    # Wait between market-data subscription retries after a failure (doubling per failure
    # of the same contract, up to retry_delay_max).
    retry_delay: float = 1.0
    retry_delay_max: float = 60.0
    # A contract Tradovate does not know (NotFoundError) is retried only this rarely.
    not_found_retry: float = 300.0
    # The background refresh of Tradovate's figures the sync socket lacks.
    figures: RefreshSettings = field(default_factory=RefreshSettings)


HealthCallback = Callable[[bool], None]
#: Entity types whose change moves Tradovate's open PnL, net liquidation or total PnL.
_FIGURE_INPUTS = frozenset({"cashBalance", "position"})
ContractLookup = Callable[[Sequence[int]], Awaitable[Mapping[int, ContractInfo]]]
"""TradovateClient.contract_info (server/broker/client.py): unknown ids are left out."""


class LiveService:
    """Live state, stream hub and read source fed by one sync socket and one md socket."""

    def __init__(
        self,
        settings: LiveSettings | None = None,
        *,
        on_health: HealthCallback | None = None,
        contract_lookup: ContractLookup | None = None,
        figure_fetcher: FigureFetcher | None = None,
        status_of: StatusOf,
        login: str = "",
    ) -> None:
        self.settings = s = settings or LiveSettings()
        self._contract_lookup = contract_lookup
        self._contracts_wanted: set[int] = set()
        self._contracts_asked: set[int] = set()
        self._lookup_wanted = asyncio.Event()
        self._sync: SyncFeed | None = None
        self._market: QuoteFeed | None = None
        self._on_health = on_health
        self.state = LiveState()
        self.figures: FigureRefresher | None = None
        if figure_fetcher is not None:
            self.figures = FigureRefresher(
                figure_fetcher,
                s.figures,
                accounts=lambda: self.state.accounts.keys(),
                needs_margin=lambda account_id: account_id not in self.state.margins,
                on_update=self._figures_fetched,
                on_stored=self._figures_stored,
            )
        self.hub = StreamHub(
            login=login,
            replay_capacity=s.replay_capacity,
            queue_capacity=s.queue_capacity,
            max_streams=s.max_streams,
        )
        self.views = LiveViews(
            self.state,
            self.hub,
            pnl_interval=s.pnl_interval,
            on_contracts=self._contracts_changed,
            on_unknown_contracts=self._contracts_unknown,
            figures=self.figures.get if self.figures is not None else None,
        )
        self.streams = LiveStreams(
            self.hub,
            self.views,
            StreamSettings(s.heartbeat_default, s.heartbeat_min, s.heartbeat_max),
            status_of=status_of,
        )
        self.reads = LiveViewReads(self.views, self.hub)
        self._tasks = TaskSet("live", logger)
        self._synced = asyncio.Event()
        self._quote_subscriptions = QuoteSubscriptions(
            retry_delay=s.retry_delay,
            retry_delay_max=s.retry_delay_max,
            not_found_retry=s.not_found_retry,
        )
        self._loss_timer: asyncio.TimerHandle | None = None
        self._started = False
        self._closed = False
        self.resyncs = 0
        self.down_reason = "not connected yet"
        #: Under replicas, the lease holder's journal (server/replicas/live_log.py): every
        #: input is recorded before it is applied, so followers can replay it.
        self.recorder: Callable[[Record], None] | None = None
        # Whether the sync socket (or, on a follower, the holder's) is up and applied, and
        # whether a follower can read the holder's records: healthy needs both.
        self._upstream_up = False
        self._feed_ok = True

    def stats(self) -> StreamStats:
        """The streams now, for metrics (walks the subscribers: call it on a scrape only)."""
        hub = self.hub
        depths = [len(sub.queue) for sub in hub.subscribers()]
        return StreamStats(
            open_streams=hub.stream_count,
            published=hub.sequence,
            sent=hub.sent_deltas,
            merged=hub.conflated_deltas,
            dropped=hub.dropped_deltas,
            slow_consumers_ended=hub.slow_consumers_ended,
            resumed=hub.resumes_replayed,
            resynced=hub.resumes_missed,
            upstream_resyncs=self.resyncs,
            queued=sum(depths),
            max_queued=max(depths, default=0),
            queue_capacity=hub.queue_capacity,
            replay_buffered=hub.replay_buffered,
            replay_capacity=hub.replay_capacity,
        )

    # ------------------------------------------------------------------ lifecycle
    @property
    def healthy(self) -> bool:
        """True while the sync socket is connected and its snapshot is applied."""
        return self.views.healthy

    def start(self, sync: SyncFeed, market: QuoteFeed | None = None) -> None:
        """Consume these sockets; returns at once (the gateway serves while they connect)."""
        if self._started or self._closed:
            return
        self._started = True
        self._sync = sync
        self._market = market
        self._spawn(self._run_sync(sync), "live-sync")
        if self._contract_lookup is not None:
            self._spawn(self._run_contract_lookups(self._contract_lookup), "live-contracts")
        if self.figures is not None:
            self._spawn(self.figures.run(), "live-figures")
        if market is not None:
            self._spawn(self._run_quotes(), "live-quotes")
            self._spawn(self._quote_subscriptions.run(market), "live-md-subscriptions")

    async def wait_synced(self, deadline: Deadline) -> bool:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(deadline.remaining()):
                await self._synced.wait()
        return self._synced.is_set()

    def drain(self) -> int:
        """Refuse new streams and end the open ones with UNAVAILABLE and a resume hint."""
        return self.hub.drain()

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        self.hub.drain()
        self._set_healthy(False)
        if self._loss_timer is not None:
            self._loss_timer.cancel()
        self.views.close()
        await self._tasks.aclose()
        if self._sync is not None:
            await self._sync.aclose()
        if self._market is not None:
            await self._market.aclose()

    def _spawn(self, coro: Coroutine[object, object, None], name: str) -> None:
        self._tasks.spawn(coro, name)

    # ------------------------------------------------------------------ sync socket
    async def _run_sync(self, sync: SyncFeed) -> None:
        # Each frame's events are applied in the socket's reader as it reads them: no queue
        # and no task switch between Tradovate's frame and the subscribers' wake-up.
        sync.deliver_to(self._apply_frame, self._sync_ended)
        try:
            await sync.start()
        except Exception as exc:  # the socket keeps reconnecting on its own
            logger.warning("live sync: first connect failed (%s); still trying", exc)

    def _apply_frame(self, events: list[SyncEvent]) -> None:
        if self.recorder is not None:
            self.recorder(FrameRecord(tuple(events)))
        try:
            self.handle_all(events)
        except Exception:
            # Part of the frame may be applied: serve nothing live until the resync the
            # socket schedules for a failed sink brings a fresh snapshot.
            self._went_down("applying upstream events failed; resyncing")
            raise

    def _sync_ended(self, error: BaseException | None) -> None:
        if error is None:
            return  # closed by us
        logger.error("live sync stopped for good: %s", error)
        self._went_down(f"stopped: {error}")
        self.hub.end_all(EndReason.UPSTREAM_LOST, str(error))

    def handle_all(self, events: Sequence[SyncEvent]) -> None:
        """Apply events that arrived together: each run of changes is published as one batch
        (every touched view once, with its final state), all in one synchronous step."""
        changes: list[EntityChange] = []
        for event in events:
            if isinstance(event, EntityChange):
                changes.append(event)
                self._figures_moved(event)
                continue
            if changes:
                self.views.apply_all(changes)
                changes = []
            self.handle(event)
        if changes:
            self.views.apply_all(changes)

    def handle(self, event: SyncEvent) -> None:
        """Apply one event from the sync socket (synchronously: state and hub move together)."""
        if isinstance(event, SyncSnapshot):
            self.views.apply(event)
            if self.figures is not None:
                self.figures.forget(self.state.accounts)
                self.figures.mark(self.state.accounts)
            self.reads.synced_at = event.received_at.timestamp()
            if event.reconnect:
                self.resyncs += 1
            self._upstream_up = True
            self._synced.set()
            self.refresh_health()
        elif isinstance(event, EntityChange):
            self.views.apply(event)
            self._figures_moved(event)
        elif isinstance(event, SyncStatus) and not event.connected:
            self._went_down(event.reason)

    def refresh_health(self) -> None:
        """Healthy again when both the upstream and (on a follower) the feed are up."""
        if not (self._upstream_up and self._feed_ok and self.state.synced):
            return
        if self._loss_timer is not None:
            self._loss_timer.cancel()
            self._loss_timer = None
        self._set_healthy(True)

    def feed_lost(self, reason: str) -> None:
        """A follower cannot read the holder's records: not healthy until it can."""
        self._feed_ok = False
        self._went_down(reason, upstream=False)

    def feed_back(self) -> None:
        self._feed_ok = True
        self.refresh_health()

    def await_own_snapshot(self, reason: str) -> None:
        """A new holder: the replicated state stands until its own socket's snapshot,
        but is not called current before it (recorded, so followers say so too). Every
        account's PnL update goes out again once it is live."""
        event = SyncStatus(connected=False, reason=reason)
        if self.recorder is not None:
            self.recorder(FrameRecord((event,)))
        self.handle(event)
        self.views.pnl_again()

    def mark_synced(self) -> None:
        self._synced.set()

    @property
    def feed_ok(self) -> bool:
        """False while a follower cannot read the holder's records (``feed_lost``)."""
        return self._feed_ok

    @property
    def upstream_up(self) -> bool:
        return self._upstream_up

    def set_upstream(self, up: bool, reason: str) -> None:
        """A loaded state's upstream condition (a follower starting from a dump)."""
        if up:
            self._upstream_up = True
            self.refresh_health()
        else:
            self._went_down(reason)

    def _went_down(self, reason: str, *, upstream: bool = True) -> None:
        if upstream:
            self._upstream_up = False
        self.down_reason = reason
        logger.warning("live sync: connection down (%s)", reason)
        self._set_healthy(False)
        if self._loss_timer is None and not self._closed:
            loop = asyncio.get_running_loop()
            self._loss_timer = loop.call_later(
                self.settings.upstream_loss_grace, self._upstream_lost
            )

    def _upstream_lost(self) -> None:
        self._loss_timer = None
        if not self.healthy:
            ended = self.hub.end_all(EndReason.UPSTREAM_LOST, self.down_reason)
            logger.warning("live sync: down too long; ended %d streams", ended)

    def _set_healthy(self, healthy: bool) -> None:
        if self.views.healthy == healthy:
            return
        self.views.healthy = healthy
        for sub in self.hub.subscribers():
            sub.wake()
        if self._on_health is not None:
            try:
                self._on_health(healthy)
            except Exception:
                logger.exception("live health callback failed")

    # ------------------------------------------------------------------ figures
    def _figures_moved(self, change: EntityChange) -> None:
        """A cash balance or position changed: Tradovate's PnL figures did too; refetch."""
        if self.figures is None or change.entity_type not in _FIGURE_INPUTS:
            return
        account_id = getattr(change.entity, "account_id", None)
        if isinstance(account_id, int):
            self.figures.mark((account_id,))

    def _figures_stored(self, account_id: int, figures: AccountFigures) -> None:
        if self.recorder is not None:
            self.recorder(FiguresRecord(((account_id, figures),)))

    def _figures_fetched(self, account_ids: list[int]) -> None:
        if self.recorder is not None:
            self.recorder(FiguresRecord((), tuple(account_ids)))
        self.views.figures_changed(account_ids)

    # ------------------------------------------------------------------ contracts
    def _contracts_unknown(self, contract_ids: set[int]) -> None:
        fresh = contract_ids - self._contracts_asked
        if fresh and self._contract_lookup is not None:
            self._contracts_wanted |= fresh
            self._lookup_wanted.set()

    async def _run_contract_lookups(self, lookup: ContractLookup) -> None:
        """Resolve contracts the sync data did not describe (symbol, value per point)."""
        while True:
            await self._lookup_wanted.wait()
            self._lookup_wanted.clear()
            ids = sorted(self._contracts_wanted)
            self._contracts_wanted.clear()
            self._contracts_asked.update(ids)
            try:
                infos = await lookup(ids)
            except Exception as exc:
                logger.warning("contract lookup for %s failed (%s); retrying", ids, exc)
                self._contracts_asked.difference_update(ids)
                await asyncio.sleep(self.settings.retry_delay)
                self._contracts_unknown(set(ids))
                continue
            if infos:
                at_ns = time.time_ns()
                if self.recorder is not None:
                    self.recorder(InfosRecord(tuple(infos.values()), at_ns))
                touches = self.state.add_contract_infos(infos.values())
                self.views.refresh(touches, at_ns)

    # ------------------------------------------------------------------ market data
    def _contracts_changed(self, contracts: frozenset[int]) -> None:
        self._quote_subscriptions.want(contracts)

    async def _run_quotes(self) -> None:
        assert self._market is not None
        async for quote in self._market.quotes():
            at = time.time()
            if self.recorder is not None:
                self.recorder(QuoteRecord(quote, at))
            self.views.on_quote(quote, at)
            if self.figures is not None:
                # Tradovate's open PnL of the holders moves with any quote (its mark need
                # not be the last trade): refetch once the quotes go quiet.
                self.figures.prices_moved(self.views.holders(quote.contract_id))

    @property
    def market_contracts(self) -> frozenset[int]:
        """The contracts with a market-data subscription right now."""
        return self._quote_subscriptions.subscribed

    @property
    def md_unresolvable(self) -> set[int]:
        """The contracts market data said do not exist (for now)."""
        return self._quote_subscriptions.unresolvable
