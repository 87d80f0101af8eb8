"""The live subsystem over one broker client (implements server/live_subsystem.py).

``build_live`` is the ``LiveFactory``: it builds one login's live state, hub and live
reads at once (the read path needs the reads while it is wired; its streams stamp the
login's name on every message), and starts consuming the broker's sync and market-data
sockets only once the broker has logged in.

``status_of`` (how a stream's per-account condition becomes an AccountStatus) is the one
status table's ``account_status``, passed in by server/main.py like the unary reads get it.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from trading_gateway.server.broker.client import TradovateClient
from trading_gateway.server.broker.schemas import CashBalanceSnapshot, ContractInfo, MarginSnapshot
from trading_gateway.server.config import GatewaySettings
from trading_gateway.server.convert import StatusOf
from trading_gateway.server.deadline import Deadline
from trading_gateway.server.live.figures import RefreshSettings
from trading_gateway.server.live.resolve import LiveAccountResolver
from trading_gateway.server.live.service import LiveService, LiveSettings
from trading_gateway.server.live.source import LiveViewReads
from trading_gateway.server.live.streams import LiveStreams
from trading_gateway.server.observability.metrics import Metrics

logger = logging.getLogger(__name__)


def live_settings(settings: GatewaySettings) -> LiveSettings:
    return LiveSettings(
        replay_capacity=settings.live_replay_capacity,
        queue_capacity=settings.live_queue_capacity,
        max_streams=settings.max_streams,
        heartbeat_default=settings.heartbeat_interval_s,
        heartbeat_min=settings.heartbeat_min_s,
        heartbeat_max=settings.heartbeat_max_s,
        pnl_interval=settings.pnl_interval_ms / 1000,
        upstream_loss_grace=settings.upstream_loss_grace_s,
        figures=RefreshSettings(
            debounce=settings.live_figures_debounce_ms / 1000,
            interval=settings.live_figures_interval_s,
            quiet=settings.live_figures_quiet_s,
            batch_size=settings.batch_size,
            rate=settings.live_figures_rate_per_second,
        ),
    )


class BrokerLiveSubsystem:
    """The ``LiveSubsystem``: live state, streams and their lifecycle for one broker client."""

    def __init__(
        self,
        client: TradovateClient,
        settings: GatewaySettings,
        metrics: Metrics,
        login: str,
        *,
        status_of: StatusOf,
    ) -> None:
        self._client = client
        self.login = login
        self._metrics = metrics
        self.service = LiveService(
            live_settings(settings),
            on_health=self._health_changed,
            contract_lookup=self._contract_info,
            figure_fetcher=self,
            status_of=status_of,
            login=login,
        )
        self.resolver = LiveAccountResolver(
            self.service.state, max_per_request=settings.max_accounts_per_request
        )
        self.watch(metrics)
        self._with_market_data = settings.live_market_data
        self._drain_timeout = min(settings.grace_s, 2.0)

    def bind(self, client: TradovateClient) -> None:
        """Use ``client`` from now on (a replica's live state outlives the broker client of
        one role: server/replicas/replicated_live.py)."""
        self._client = client

    def watch(self, metrics: Metrics) -> None:
        """Report the streams in ``metrics`` (again, after a rebuild forgot the login)."""
        self._metrics = metrics
        metrics.watch_streams(self.service.stats, login=self.login)

    # The background refresh's fetcher (server/live/figures.py FigureFetcher): the client
    # bound now.
    async def margin_snapshots(
        self, account_ids: Sequence[int], *, deadline: Deadline | None = None
    ) -> list[MarginSnapshot]:
        return await self._client.margin_snapshots(account_ids, deadline=deadline)

    async def cash_balance_snapshot(
        self, account_id: int, *, deadline: Deadline | None = None
    ) -> CashBalanceSnapshot:
        return await self._client.cash_balance_snapshot(account_id, deadline=deadline)

    @property
    def reads(self) -> LiveViewReads:
        return self.service.reads

    @property
    def streams(self) -> LiveStreams:
        return self.service.streams

    @property
    def healthy(self) -> bool:
        return self.service.healthy

    async def start(self) -> None:
        market = self._client.market_data() if self._with_market_data else None
        self.service.start(self._client.user_sync(), market)

    async def wait_synced(self, deadline: Deadline) -> bool:
        return await self.service.wait_synced(deadline)

    async def drain(self) -> None:
        """End every stream (UNAVAILABLE, resumable) and give them time to say so."""
        ended = self.service.drain()
        if ended:
            logger.info("ending %d streams for shutdown (UNAVAILABLE, resumable)", ended)
            if not await self.service.hub.wait_idle(Deadline.after(self._drain_timeout)):
                logger.warning(
                    "%d streams still open after the drain", self.service.hub.stream_count
                )

    async def aclose(self) -> None:
        await self.service.aclose()

    async def _contract_info(self, contract_ids: Sequence[int]) -> dict[int, ContractInfo]:
        return await self._client.contract_info(contract_ids)

    def _health_changed(self, healthy: bool) -> None:
        self._metrics.set_up("live_sync", healthy)


def build_live(
    client: TradovateClient,
    settings: GatewaySettings,
    metrics: Metrics,
    login: str,
    *,
    status_of: StatusOf,
) -> BrokerLiveSubsystem:
    return BrokerLiveSubsystem(client, settings, metrics, login, status_of=status_of)
