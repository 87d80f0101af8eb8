"""MarketData: the market-data socket, ref-counted quote subscriptions, a quote stream.

``subscribe`` / ``unsubscribe`` count references per contract: the first subscriber sends
``md/subscribeQuote`` (by symbol, resolved through the contract catalog), the last one
``md/unsubscribeQuote``. Subscriptions are replayed after every reconnect. The socket is
authorized with mdAccessToken when Tradovate gave one, else with the access token.

Quotes are conflatable, so the bounded queue drops its oldest quote when full (counted
in ``dropped``) instead of stalling the reader.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import AsyncIterator
from typing import Final

import aiohttp
import msgspec

from trading_gateway.server.broker.auth import TokenManager
from trading_gateway.server.broker.contracts import ContractCatalog
from trading_gateway.server.broker.errors import (
    BrokerClosed,
    BrokerError,
    NotFoundError,
    UpstreamTimeout,
)
from trading_gateway.server.broker.frames import Event
from trading_gateway.server.broker.limiter import RateGate
from trading_gateway.server.broker.schemas import Quote
from trading_gateway.server.broker.settings import BrokerSettings
from trading_gateway.server.broker.ws import TradovateSocket, consume
from trading_gateway.server.deadline import Deadline

logger = logging.getLogger(__name__)


class _MdPayload(msgspec.Struct, frozen=True):
    quotes: list[msgspec.Raw] | None = None


_payload_decoder: Final = msgspec.json.Decoder(_MdPayload)
_quote_decoder: Final = msgspec.json.Decoder(Quote, strict=False)
_DECODE_ERRORS: Final = (msgspec.DecodeError, UnicodeDecodeError)


class MarketData:
    """One market-data socket shared by every quote subscriber of the client."""

    def __init__(
        self,
        *,
        session: aiohttp.ClientSession,
        auth: TokenManager,
        gate: RateGate,
        settings: BrokerSettings,
        catalog: ContractCatalog,
    ) -> None:
        self._settings = settings
        self._catalog = catalog
        self._refs: dict[int, int] = {}
        self._symbols: dict[int, str] = {}
        self._upstream: set[int] = set()  # subscribed on the current connection
        self._subscribing: set[int] = set()  # md/subscribeQuote sent, answer pending
        self._locks: dict[int, asyncio.Lock] = {}
        self._queue: asyncio.Queue[Quote | None] = asyncio.Queue(settings.quote_queue_size)
        self._consumer = False
        self._closed = False
        self.dropped = 0
        self.bad_quotes = 0
        self._socket = TradovateSocket(
            name="market-data",
            url=settings.md_ws_url,
            session=session,
            auth=auth,
            gate=gate,
            settings=settings,
            token_for=lambda token: token.md_token,
            on_ready=self._resubscribe,
            on_event=self._on_event,
            on_down=self._on_down,
        )

    @property
    def connected(self) -> bool:
        return self._socket.connected

    @property
    def socket(self) -> TradovateSocket:
        return self._socket

    @property
    def subscriptions(self) -> dict[int, int]:
        """contract id → number of subscribers."""
        return dict(self._refs)

    async def start(self, *, deadline: Deadline | None = None) -> None:
        if self._closed:
            raise BrokerClosed("market data is closed")
        self._socket.start()
        await self._socket.wait_ready(deadline)

    async def subscribe(self, contract_id: int, *, deadline: Deadline | None = None) -> None:
        """Add one reference to ``contract_id``'s quotes; the first one subscribes upstream.

        While the socket is down the subscription is recorded and sent on reconnect.
        """
        if self._closed:
            raise BrokerClosed("market data is closed")
        deadline = Deadline.given_or_after(deadline, self._settings.request_timeout)
        try:
            async with asyncio.timeout(deadline.remaining()), self._lock(contract_id):
                if self._refs.get(contract_id, 0) == 0:
                    symbol = await self._symbol(contract_id, deadline)
                    if self._socket.connected and contract_id not in self._upstream:
                        # The first quote follows the answer at once: let it through.
                        self._subscribing.add(contract_id)
                        try:
                            await self._send("md/subscribeQuote", symbol, deadline)
                        finally:
                            self._subscribing.discard(contract_id)
                        self._upstream.add(contract_id)
                self._refs[contract_id] = self._refs.get(contract_id, 0) + 1
        except TimeoutError:
            raise UpstreamTimeout(f"subscribing to contract {contract_id} timed out") from None

    async def unsubscribe(self, contract_id: int, *, deadline: Deadline | None = None) -> None:
        """Drop one reference; the last one unsubscribes upstream (failures only logged)."""
        deadline = Deadline.given_or_after(deadline, self._settings.request_timeout)
        try:
            async with asyncio.timeout(deadline.remaining()), self._lock(contract_id):
                refs = self._refs.get(contract_id, 0)
                if refs > 1:
                    self._refs[contract_id] = refs - 1
                    return
                self._refs.pop(contract_id, None)
                if contract_id in self._upstream and self._socket.connected:
                    self._upstream.discard(contract_id)
                    try:
                        await self._send(
                            "md/unsubscribeQuote", self._symbols[contract_id], deadline
                        )
                    except BrokerError as exc:
                        logger.warning("unsubscribing contract %s failed: %s", contract_id, exc)
                self._upstream.discard(contract_id)
        except TimeoutError:
            raise UpstreamTimeout(f"unsubscribing contract {contract_id} timed out") from None

    async def quotes(self) -> AsyncIterator[Quote]:
        """Quotes for subscribed contracts, until aclose()."""
        if self._consumer:
            raise RuntimeError("MarketData.quotes() has a single consumer")
        self._consumer = True
        async for quote in consume(self._queue, self._socket):
            yield quote

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        await self._socket.aclose()
        self._put(None)

    # -- helpers -------------------------------------------------------------------------

    def _lock(self, contract_id: int) -> asyncio.Lock:
        lock = self._locks.get(contract_id)
        if lock is None:
            lock = self._locks[contract_id] = asyncio.Lock()
        return lock

    async def _symbol(self, contract_id: int, deadline: Deadline) -> str:
        symbol = self._symbols.get(contract_id)
        if symbol is None:
            infos = await self._catalog.resolve([contract_id], deadline)
            if contract_id not in infos:
                raise NotFoundError(f"Tradovate knows no contract {contract_id}")
            symbol = self._symbols[contract_id] = infos[contract_id].symbol
        return symbol

    async def _send(self, endpoint: str, symbol: str, deadline: Deadline) -> None:
        await self._socket.request(endpoint, body={"symbol": symbol}, deadline=deadline)

    # -- socket callbacks ----------------------------------------------------------------

    async def _resubscribe(self) -> None:
        """Replay every wanted subscription after a (re)connect.

        The requests go out together, each with its own deadline: sent one after another
        under one shared deadline, a few dozen contracts at real latencies would time out,
        drop the connection, and loop.
        """
        self._upstream.clear()
        while pending := [cid for cid in self._refs if cid not in self._upstream]:
            self._upstream.update(pending)
            results = await asyncio.gather(
                *(self._replay(cid) for cid in pending), return_exceptions=True
            )
            for result in results:
                if isinstance(result, BaseException):
                    raise result
        if self._refs:
            logger.info("market data: %d quote subscriptions replayed", len(self._refs))

    async def _replay(self, contract_id: int) -> None:
        symbol = self._symbols.get(contract_id)
        if symbol is None:
            return
        deadline = Deadline.after(self._settings.request_timeout)
        try:
            await self._send("md/subscribeQuote", symbol, deadline)
        except NotFoundError as exc:
            logger.error("resubscribing %s (%s) failed: %s", contract_id, symbol, exc)

    def _on_down(self, reason: str) -> None:
        self._upstream.clear()
        if self._socket.failure is not None:
            self._put(None)

    def _on_event(self, event: Event, received_at: dt.datetime) -> None:
        try:
            payload = _payload_decoder.decode(event.data)
        except _DECODE_ERRORS:
            logger.debug("market data: ignoring %s event", event.kind)
            return
        for raw in payload.quotes or ():
            try:
                quote = _quote_decoder.decode(raw)
            except _DECODE_ERRORS as exc:
                self.bad_quotes += 1
                logger.warning("market data: bad quote skipped: %s", exc)
                continue
            if quote.contract_id in self._refs or quote.contract_id in self._subscribing:
                self._put(quote)

    def _put(self, quote: Quote | None) -> None:
        while True:
            try:
                self._queue.put_nowait(quote)
                return
            except asyncio.QueueFull:
                self._queue.get_nowait()
                self.dropped += 1
