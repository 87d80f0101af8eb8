"""TradovateSocket: one long-lived Tradovate WebSocket that keeps itself connected.

Per connection: wait for ``o``, ``authorize`` with the current token, send ``[]`` every
``heartbeat_interval``, correlate requests by id through a future map, then hand over to
``on_ready`` (syncrequest, resubscribe). Every pending future fails when the connection
ends, and a silent server (no frame for ``server_silence_timeout``) counts as dead.
Reconnects back off as ws_backoff.py says. A ``shutdown`` event is logged with its
reasonCode and reconnected after a back-off.

After a token renewal the socket re-authorizes on the open connection (``authorize`` with
the new token): the reference leaves open whether an authorized socket outlives the token
it was authorized with, and renewal "extends the current session without creating a new
one", so re-authorizing keeps the socket, its sync and its subscriptions, with no resync,
while never relying on the old token. If Tradovate refuses the re-authorization, the socket
reconnects with the new token instead. After a fresh login (a new session) it reconnects.

The parts: ws_connection.py (one connection: state, requests, heartbeat), ws_reader.py
(frames in, answers and events out), ws_backoff.py (reconnect delays). Nothing raised
while reading a frame escapes the reader: a bad frame is logged and skipped.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import time
from collections.abc import Awaitable, Callable

import aiohttp
import msgspec

from trading_gateway.server.broker.answers import (
    TokenRejected,
    call_with_penalties,
    error_for_status,
)
from trading_gateway.server.broker.auth import Token, TokenManager
from trading_gateway.server.broker.errors import (
    BrokerClosed,
    BrokerError,
    UpstreamTimeout,
    UpstreamUnavailable,
    is_fatal,
    retry_after,
)
from trading_gateway.server.broker.frames import Event, Response, snippet
from trading_gateway.server.broker.limiter import RateGate
from trading_gateway.server.broker.settings import BrokerSettings
from trading_gateway.server.broker.ws_backoff import Backoff, Ended
from trading_gateway.server.broker.ws_connection import Connection, consume
from trading_gateway.server.broker.ws_reader import FrameReader
from trading_gateway.server.deadline import Deadline

__all__ = ["TradovateSocket", "consume"]

logger = logging.getLogger(__name__)


class TradovateSocket:
    """A self-healing Tradovate socket (user sync or market data)."""

    def __init__(
        self,
        *,
        name: str,
        url: str,
        session: aiohttp.ClientSession,
        auth: TokenManager,
        gate: RateGate,
        settings: BrokerSettings,
        token_for: Callable[[Token], str],
        on_ready: Callable[[], Awaitable[None]],
        on_event: Callable[[Event, dt.datetime], None],
        on_down: Callable[[str], None],
        on_stray: Callable[[Response], None] | None = None,
        on_frame_end: Callable[[], None] | None = None,
    ) -> None:
        self.name = name
        self._url = url
        self._session = session
        self._auth = auth
        self._gate = gate
        self._settings = settings
        self._token_for = token_for
        self._on_ready = on_ready
        self._on_down = on_down
        self._reader = FrameReader(name, on_event, on_stray, on_frame_end)
        self._backoff = Backoff(name, settings)
        self._conn: Connection | None = None
        self._run_task: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()
        self._closing = False
        self.failure: BrokerError | None = None
        self.last_error: BrokerError | None = None
        self.connects = 0
        self.reauthorizations = 0
        # Monotonic time, for metrics: when the current connection became ready (None
        # while down). The reader keeps when the last data frame arrived.
        self.connected_since: float | None = None
        auth.add_listener(self._on_new_token)

    @property
    def connected(self) -> bool:
        return self._ready.is_set()

    @property
    def bad_frames(self) -> int:
        """Frames and messages skipped because they could not be read or handled."""
        return self._reader.bad_frames

    @property
    def last_frame_at(self) -> float | None:
        """Monotonic time of the last data frame read (None before the first)."""
        return self._reader.last_frame_at

    @property
    def flapping(self) -> bool:
        """Drops right after syncing came too often: the back-off grows until one stays up."""
        return self._backoff.flapping

    # -- lifecycle -----------------------------------------------------------------------

    def start(self) -> None:
        if self._closing:
            raise BrokerClosed(f"the {self.name} socket is closed")
        if self._run_task is None:
            self._run_task = asyncio.create_task(self._run(), name=f"tradovate-{self.name}")

    async def wait_ready(self, deadline: Deadline | None = None) -> None:
        """Until connected and set up; raises the reason if that cannot happen in time.

        ``None``: within ``connect_timeout`` from now.
        """
        deadline = Deadline.given_or_after(deadline, self._settings.connect_timeout)
        if self._run_task is None:
            raise BrokerClosed(f"the {self.name} socket is not started")
        ready = asyncio.ensure_future(self._ready.wait())
        try:
            await asyncio.wait(
                {ready, self._run_task},
                timeout=deadline.remaining(),
                return_when=asyncio.FIRST_COMPLETED,
            )
        finally:
            ready.cancel()
        if self._ready.is_set():
            return
        if self.failure is not None:
            raise self.failure
        if self._closing:
            raise BrokerClosed(f"the {self.name} socket is closed")
        last = f": {self.last_error}" if self.last_error else ""
        raise UpstreamTimeout(f"the {self.name} socket did not connect in time{last}")

    def reconnect(self, reason: str) -> None:
        """Drop the current connection and connect again at once."""
        if self._conn is not None:
            self._conn.stop(reason, immediate=True)

    async def aclose(self) -> None:
        self._closing = True
        if self._conn is not None:
            self._conn.stop("closing")
        task, self._run_task = self._run_task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    def _on_new_token(self, token: Token) -> None:
        conn = self._conn
        fresh = self._token_for(token)
        if conn is None or conn.token == fresh or conn.stopped.done():
            return
        if not token.renewed or not conn.authorized:
            # A new login is a new session (or the socket is still authorizing with the
            # old token): connect again with the new token.
            logger.info("%s socket: new access token, reconnecting with it", self.name)
            conn.stop("token renewed", immediate=True)
            return
        if conn.reauthorizing is not None:
            conn.reauthorizing.cancel()
        conn.reauthorizing = asyncio.create_task(
            self._reauthorize(conn, token, fresh), name=f"tradovate-{self.name}-reauthorize"
        )

    async def _reauthorize(self, conn: Connection, token: Token, fresh: str) -> None:
        """``authorize`` the open connection with a renewed token; reconnect if refused."""
        deadline = Deadline.after(self._settings.request_timeout)
        try:
            await self._request(conn, "authorize", None, None, fresh, deadline)
        except TokenRejected as exc:
            logger.warning(
                "%s socket: Tradovate refused re-authorization with the renewed token (%s); "
                "reconnecting with it",
                self.name,
                exc,
            )
            conn.stop("token renewed; re-authorization refused", immediate=True)
            return
        except BrokerError as exc:
            # A circuit, a timeout or a lost socket: keep the connection (still authorized
            # with the old token) rather than reconnect into the same trouble.
            logger.warning("%s socket: re-authorization failed for now: %s", self.name, exc)
            return
        conn.token = fresh
        conn.login = token
        self.reauthorizations += 1
        logger.info("%s socket: re-authorized with the renewed token; connection kept", self.name)

    # -- the reconnect loop --------------------------------------------------------------

    async def _run(self) -> None:
        while not self._closing:
            was_ready, reason, conn = await self._connect_once()
            if self._closing or self.failure is not None:
                break
            if was_ready:
                self._on_down(reason)
            ended = None
            if conn is not None:
                ended = Ended(was_ready, conn.ready_at, conn.immediate, conn.retry_after)
            delay = self._backoff.next_delay(ended)
            logger.warning("%s socket down (%s); reconnecting in %.2f s", self.name, reason, delay)
            await asyncio.sleep(delay)
        if self.failure is not None:
            self._on_down(f"stopped: {self.failure}")

    async def _connect_once(self) -> tuple[bool, str, Connection | None]:
        """One connection from dial to close: (was it ever ready, why it ended, its state)."""
        holder: list[Connection] = []
        try:
            reason = await self._session_once(holder)
        except asyncio.CancelledError:
            raise
        except BrokerError as exc:
            self.last_error = exc
            reason = str(exc)
            if is_fatal(exc):
                self.failure = exc
                logger.error("%s socket stopped: %s", self.name, exc)
            else:
                self._backoff.wait_at_least = retry_after(exc) or 0.0
        except Exception as exc:  # a bug or an unexpected library error: log, then retry
            logger.exception("%s socket failed", self.name)
            reason = f"{type(exc).__name__}: {exc}"
        conn = holder[0] if holder else None
        self._ready.clear()
        return conn is not None and conn.was_ready, reason, conn

    async def _session_once(self, holder: list[Connection]) -> str:
        s = self._settings
        deadline = Deadline.after(s.connect_timeout)
        login = await self._auth.token(deadline)
        try:
            async with asyncio.timeout(deadline.remaining()):
                ws = await self._session.ws_connect(
                    self._url,
                    autoping=True,
                    heartbeat=None,
                    max_msg_size=0,
                    timeout=aiohttp.ClientWSTimeout(ws_receive=None, ws_close=1.0),
                )
        except TimeoutError:
            raise UpstreamTimeout(f"{self.name} socket: connect timed out") from None
        except (aiohttp.ClientError, OSError) as exc:
            raise UpstreamUnavailable(f"{self.name} socket: cannot connect: {exc}") from None
        conn = Connection(ws, login, self._token_for(login))
        holder.append(conn)
        self._conn = conn
        reader = asyncio.create_task(
            self._reader.read(conn, s.server_silence_timeout), name=f"tradovate-{self.name}-reader"
        )
        beat: asyncio.Task[None] | None = None
        try:
            async with asyncio.timeout(deadline.remaining()):
                await asyncio.shield(conn.opened)
            beat = asyncio.create_task(
                conn.heartbeat(s.heartbeat_interval), name=f"tradovate-{self.name}-beat"
            )
            await self._authorize(conn, deadline)
            await self._on_ready()
            self.connects += 1
            self.last_error = None
            conn.was_ready = True
            conn.ready_at = self.connected_since = time.monotonic()
            self._ready.set()
            return await conn.stopped
        except TimeoutError:
            raise UpstreamTimeout(f"{self.name} socket: no open frame in time") from None
        finally:
            self._ready.clear()
            self.connected_since = None
            reason = conn.stopped.result() if conn.stopped.done() else "connection ended"
            conn.stop(reason)
            tasks = [t for t in (reader, beat, conn.reauthorizing) if t is not None]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            conn.fail_pending(f"{self.name} socket closed: {reason}")
            self._conn = None
            with contextlib.suppress(Exception):  # the peer may be gone already
                await ws.close()

    async def _authorize(self, conn: Connection, deadline: Deadline) -> None:
        try:
            await self._request(conn, "authorize", None, None, conn.token, deadline)
        except TokenRejected as exc:
            # Renew (or, if Tradovate says the token is dead, log in) before the next try.
            await self._auth.after_rejection(conn.login, deadline)
            raise UpstreamUnavailable(f"{self.name} socket: authorization refused: {exc}") from None
        conn.authorized = True

    # -- requests ------------------------------------------------------------------------

    async def request(
        self,
        endpoint: str,
        *,
        query: str | None = None,
        body: object = None,
        deadline: Deadline,
    ) -> msgspec.Raw:
        """Send a request on the current connection; its ``d``, or a typed error."""
        conn = self._conn
        if self._closing:
            raise BrokerClosed(f"the {self.name} socket is closed")
        if conn is None or not conn.authorized or conn.stopped.done():
            raise UpstreamUnavailable(f"the {self.name} socket is not connected")
        return await self._request(conn, endpoint, query, body, None, deadline)

    async def _request(
        self,
        conn: Connection,
        endpoint: str,
        query: str | None,
        body: object,
        raw_body: str | None,
        deadline: Deadline,
    ) -> msgspec.Raw:

        async def send(ticket: str | None) -> msgspec.Raw:
            sent = body
            if ticket is not None and isinstance(body, dict):
                sent = {**body, "p-ticket": ticket}
            response = await conn.exchange(endpoint, query, sent, raw_body, deadline, self.name)
            if response.status != 200:
                raise error_for_status(
                    response.status,
                    endpoint,
                    snippet(bytes(response.data)),
                    token_sent=True,
                    circuit=self._gate,
                )
            return response.data

        return await call_with_penalties(
            send,
            endpoint,
            deadline,
            self._gate,
            limit=self._settings.max_penalty_retries,
            check=self._gate.check,
        )
