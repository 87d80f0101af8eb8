"""TradovateClient: the broker façade. One login, one HTTP session, two sockets.

Every REST method takes the caller's ``deadline`` (server/deadline.py; ``None`` means
``settings.request_timeout`` from now) and returns structs from schemas.py or raises a
BrokerError. ``user_sync()`` and ``market_data()`` each return the client's one instance.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from collections.abc import Sequence
from decimal import Decimal
from types import TracebackType

import aiohttp

from trading_gateway.server.broker.auth import TokenManager
from trading_gateway.server.broker.contracts import ContractCatalog
from trading_gateway.server.broker.errors import BrokerClosed
from trading_gateway.server.broker.http import RequestHook, TradovateHttp
from trading_gateway.server.broker.limiter import Circuit, RateGate, TokenBucket
from trading_gateway.server.broker.md import MarketData
from trading_gateway.server.broker.pacing import IpPacer, RequestPacer
from trading_gateway.server.broker.rest import TradovateRest
from trading_gateway.server.broker.schemas import (
    Account,
    CashBalance,
    CashBalanceSnapshot,
    CommandResult,
    ContractInfo,
    Fill,
    MarginSnapshot,
    Order,
    OrderVersion,
    PlaceOrderResult,
    Position,
)
from trading_gateway.server.broker.settings import BrokerSettings
from trading_gateway.server.broker.stats import SocketStats, UpstreamStats
from trading_gateway.server.broker.sync import UserSync
from trading_gateway.server.deadline import Deadline

logger = logging.getLogger(__name__)


class _Parts:
    """What exists only between start() and aclose()."""

    def __init__(
        self,
        settings: BrokerSettings,
        request_hook: RequestHook | None,
        ip_pacer: IpPacer | None,
    ) -> None:
        connector = aiohttp.TCPConnector(
            limit=settings.max_connections, keepalive_timeout=settings.keepalive_timeout
        )
        self.session = aiohttp.ClientSession(connector=connector)
        self.gate = RateGate(
            settings.rate_limited_backoff,
            settings.rate_limited_backoff_max,
            settings.locked_out_backoff,
            settings.captcha_backoff,
        )
        self.limiter = TokenBucket(settings.rate_per_second, settings.rate_burst)
        self.http = TradovateHttp(
            self.session,
            settings.rest_url,
            RequestPacer(self.limiter, ip_pacer),
            self.gate,
            max_penalty_retries=settings.max_penalty_retries,
            request_hook=request_hook,
        )
        self.auth = TokenManager(settings, self.http)
        self.rest = TradovateRest(self.http, self.auth)
        self.catalog = ContractCatalog(
            self.rest, settings.request_timeout, unknown_ttl=settings.unknown_contract_ttl
        )


class TradovateClient:
    """The only object the rest of the gateway uses to talk to Tradovate."""

    def __init__(
        self,
        settings: BrokerSettings,
        *,
        request_hook: RequestHook | None = None,
        ip_pacer: IpPacer | None = None,
    ) -> None:
        """``request_hook``: told of every REST request and its outcome (server/broker/http.py).

        ``ip_pacer``: the per-IP bucket shared by every login of the process (pacing.py);
        each REST call takes a token from this client's own bucket, then one from it. The
        429/423/captcha circuit and p-tickets stay this client's own.
        """
        self.settings = settings
        self._request_hook = request_hook
        self.ip_pacer = ip_pacer
        self._parts: _Parts | None = None
        self._sync: UserSync | None = None
        self._md: MarketData | None = None
        self._closed = False
        self._start_lock = asyncio.Lock()

    # -- lifecycle -----------------------------------------------------------------------

    async def __aenter__(self) -> TradovateClient:
        try:
            await self.start()
        except BaseException:
            await self.aclose()
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def start(self, *, deadline: Deadline | None = None) -> None:
        """Log in (once) and start renewing the token. May be retried after a failure."""
        async with self._start_lock:
            if self._closed:
                raise BrokerClosed("the Tradovate client is closed")
            if self._parts is None:
                self._parts = _Parts(self.settings, self._request_hook, self.ip_pacer)
            await self._parts.auth.start(self._deadline(deadline))

    async def aclose(self) -> None:
        """Close both sockets, the renewal task, the catalog and the HTTP session."""
        self._closed = True
        parts, self._parts = self._parts, None
        for stream in (self._sync, self._md):
            if stream is not None:
                await stream.aclose()
        if parts is not None:
            await parts.catalog.aclose()
            await parts.auth.aclose()
            await parts.session.close()

    @property
    def closed(self) -> bool:
        return self._closed

    def _live(self) -> _Parts:
        if self._parts is None:
            if self._closed:
                raise BrokerClosed("the Tradovate client is closed")
            raise BrokerClosed("the Tradovate client is not started: call start() first")
        return self._parts

    @property
    def token_manager(self) -> TokenManager:
        return self._live().auth

    @property
    def user_id(self) -> int:
        token = self._live().auth.current
        if token is None:
            raise BrokerClosed("the Tradovate client is not logged in")
        return token.user_id

    @property
    def token_expires_at(self) -> dt.datetime | None:
        """When the current access token expires (UTC), or None before login."""
        token = self._parts.auth.current if self._parts is not None else None
        return token.expires_at if token is not None else None

    @property
    def rate_limited_for(self) -> float:
        """Seconds the 429/423/captcha circuit stays open (0 when closed)."""
        return self._parts.gate.retry_after() if self._parts is not None else 0.0

    @property
    def penalized_for(self) -> float:
        """Seconds until the last p-ticket being sat out ends (0 when none is)."""
        return self._parts.gate.penalties.left() if self._parts is not None else 0.0

    def circuit(self) -> Circuit | None:
        """The open 429/423/captcha circuit (reason and seconds left), or None."""
        return self._parts.gate.circuit() if self._parts is not None else None

    def stats(self) -> UpstreamStats:
        """The connection to Tradovate now: token, circuit, budget, sockets (for metrics)."""
        parts = self._parts
        if parts is None:
            return UpstreamStats(None, False, 0.0, None, None, ())
        token = parts.auth.current
        limiter = parts.limiter
        enabled = limiter.rate > 0
        now = time.monotonic()
        sockets = []
        for name, feed in (("user", self._sync), ("md", self._md)):
            if feed is None:
                continue
            socket = feed.socket
            since, last = socket.connected_since, socket.last_frame_at
            sockets.append(
                SocketStats(
                    name=name,
                    connected=socket.connected,
                    connects=socket.connects,
                    uptime=now - since if since is not None else 0.0,
                    since_last_frame=now - last if last is not None else None,
                )
            )
        return UpstreamStats(
            token_expires_in=token.left() if token is not None else None,
            circuit_open=parts.gate.is_open,
            circuit_retry_after=parts.gate.retry_after(),
            rate_tokens=limiter.available() if enabled else None,
            rate_burst=limiter.burst if enabled else None,
            sockets=tuple(sockets),
            logged_in=token is not None and token.alive(),
            sessions_opened=parts.auth.logins,
            token_renewals=parts.auth.renewals,
        )

    def _deadline(self, deadline: Deadline | None) -> Deadline:
        return Deadline.given_or_after(deadline, self.settings.request_timeout)

    # -- streams -------------------------------------------------------------------------

    def user_sync(self) -> UserSync:
        """The client's user-sync stream (created on first call; call ``start()`` on it)."""
        if self._sync is None:
            p = self._live()
            self._sync = UserSync(
                session=p.session,
                auth=p.auth,
                gate=p.gate,
                settings=self.settings,
                catalog=p.catalog,
            )
        return self._sync

    def market_data(self) -> MarketData:
        """The client's market-data stream (created on first call; call ``start()`` on it)."""
        if self._md is None:
            p = self._live()
            self._md = MarketData(
                session=p.session,
                auth=p.auth,
                gate=p.gate,
                settings=self.settings,
                catalog=p.catalog,
            )
        return self._md

    # -- REST ----------------------------------------------------------------------------

    async def accounts(self, *, deadline: Deadline | None = None) -> list[Account]:
        return await self._live().rest.accounts(deadline=self._deadline(deadline))

    async def positions(
        self,
        account_ids: Sequence[int],
        *,
        deadline: Deadline | None = None,
    ) -> list[Position]:
        return await self._live().rest.positions(account_ids, deadline=self._deadline(deadline))

    async def orders(
        self,
        account_ids: Sequence[int],
        *,
        deadline: Deadline | None = None,
    ) -> list[Order]:
        return await self._live().rest.orders(account_ids, deadline=self._deadline(deadline))

    async def order_versions(
        self,
        order_ids: Sequence[int],
        *,
        deadline: Deadline | None = None,
    ) -> list[OrderVersion]:
        rest = self._live().rest
        return await rest.order_versions(order_ids, deadline=self._deadline(deadline))

    async def fills(
        self,
        order_ids: Sequence[int],
        *,
        deadline: Deadline | None = None,
    ) -> list[Fill]:
        return await self._live().rest.fills(order_ids, deadline=self._deadline(deadline))

    async def cash_balances(
        self,
        account_ids: Sequence[int],
        *,
        deadline: Deadline | None = None,
    ) -> list[CashBalance]:
        rest = self._live().rest
        return await rest.cash_balances(account_ids, deadline=self._deadline(deadline))

    async def cash_balance_snapshot(
        self,
        account_id: int,
        *,
        deadline: Deadline | None = None,
    ) -> CashBalanceSnapshot:
        rest = self._live().rest
        return await rest.cash_balance_snapshot(account_id, deadline=self._deadline(deadline))

    async def margin_snapshots(
        self,
        account_ids: Sequence[int],
        *,
        deadline: Deadline | None = None,
    ) -> list[MarginSnapshot]:
        rest = self._live().rest
        return await rest.margin_snapshots(account_ids, deadline=self._deadline(deadline))

    async def contract_info(
        self,
        contract_ids: Sequence[int],
        *,
        deadline: Deadline | None = None,
    ) -> dict[int, ContractInfo]:
        """contract → contractMaturity → product, cached in memory for good.

        Ids Tradovate does not know are left out of the result.
        """
        return await self._live().catalog.resolve(contract_ids, self._deadline(deadline))

    async def place_order(
        self,
        account_id: int,
        account_name: str,
        symbol: str,
        action: str,
        qty: int,
        order_type: str,
        price: Decimal | None = None,
        stop_price: Decimal | None = None,
        *,
        deadline: Deadline | None = None,
    ) -> PlaceOrderResult:
        """``action``: Buy|Sell; ``order_type``: Market|Limit|Stop|StopLimit|… (enums.py)."""
        return await self._live().rest.place_order(
            account_id,
            account_name,
            symbol,
            action,
            qty,
            order_type,
            price,
            stop_price,
            deadline=self._deadline(deadline),
        )

    async def cancel_order(
        self,
        order_id: int,
        *,
        deadline: Deadline | None = None,
    ) -> CommandResult:
        return await self._live().rest.cancel_order(order_id, deadline=self._deadline(deadline))
