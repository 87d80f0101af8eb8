"""TradovateSocket: one long-lived Tradovate WebSocket that keeps itself connected.

Per connection: wait for ``o``, ``authorize`` with the current token, send ``[]`` every
``heartbeat_interval``, correlate requests by id through a future map, then hand over to
``on_ready`` (syncrequest, resubscribe). Every pending future fails when the connection
ends, and a silent server (no frame for ``server_silence_timeout``) counts as dead.
Reconnects back off exponentially with jitter. A connection that authorized and finished
``on_ready`` (synced) resets the back-off, so a drop of a healthy socket costs one short
wait (at most ``reconnect_initial``) and a resync, however many drops came before. Against
a server that drops us right after each sync, more than ``reconnect_flap_limit`` such drops
within ``reconnect_flap_window`` count as flapping: from then on the back-off grows again
(up to ``reconnect_max``) until a connection stays up ``reconnect_stable_after``. With the
default 30 s ceiling that bounds the syncrequests a flapping server can draw to 2-4 a
minute (Tradovate allows 300 an hour). A ``shutdown`` event is logged with its
reasonCode and reconnected after a back-off.

After a token renewal the socket re-authorizes on the open connection (``authorize`` with
the new token): the reference leaves open whether an authorized socket outlives the token
it was authorized with, and renewal "extends the current session without creating a new
one", so re-authorizing keeps the socket, its sync and its subscriptions, with no resync,
while never relying on the old token. If Tradovate refuses the re-authorization, the socket
reconnects with the new token instead. After a fresh login (a new session) it reconnects.

Nothing raised while reading a frame escapes the reader: a bad frame is logged and skipped.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import itertools
import logging
import random
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Final, TypeVar

import aiohttp
import msgspec

from server.broker.answers import TokenRejected, call_with_penalties, error_for_status
from server.broker.auth import Token, TokenManager
from server.broker.errors import (
    BrokerClosed,
    BrokerError,
    ProtocolError,
    UpstreamTimeout,
    UpstreamUnavailable,
    is_fatal,
    left_before,
    retry_after,
)
from server.broker.frames import (
    HEARTBEAT,
    BadMessage,
    CloseFrame,
    DataFrame,
    Event,
    OpenFrame,
    Response,
    decode_frame,
    encode_authorize,
    encode_request,
    snippet,
)
from server.broker.limiter import RateGate
from server.broker.settings import BrokerSettings
from server.deadline import Deadline

logger = logging.getLogger(__name__)

_shutdown_decoder: Final = msgspec.json.Decoder(dict[str, object])


_Item = TypeVar("_Item")


async def consume(
    queue: asyncio.Queue[_Item | None], socket: TradovateSocket
) -> AsyncIterator[_Item]:
    """Yield a socket consumer's queue until its end marker (None).

    Ends quietly after aclose(); raises the error that stopped the socket for good.
    """
    while True:
        item = await queue.get()
        if item is None:
            if socket.failure is not None:
                raise socket.failure
            return
        yield item


class _Connection:
    """State that lives and dies with one WebSocket connection."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse, source: Token, token: str) -> None:
        loop = asyncio.get_running_loop()
        self.ws = ws
        self.source = source
        self.token = token
        self.ids: Iterator[int] = itertools.count()
        self.pending: dict[int, asyncio.Future[Response]] = {}
        self.opened: asyncio.Future[None] = loop.create_future()
        self.stopped: asyncio.Future[str] = loop.create_future()
        self.authorized = False
        self.was_ready = False  # authorized and set up by on_ready
        self.immediate = False  # reconnect without back-off (planned rotation)
        self.retry_after = 0.0
        self.ready_at: float | None = None  # monotonic time it became ready
        self.reauthorizing: asyncio.Task[None] | None = None

    def stop(self, reason: str, *, immediate: bool = False, retry_after: float = 0.0) -> None:
        if not self.stopped.done():
            self.immediate = immediate
            self.retry_after = retry_after
            self.stopped.set_result(reason)

    def fail_pending(self, reason: str) -> None:
        for future in self.pending.values():
            if not future.done():
                future.set_exception(UpstreamUnavailable(reason))
        self.pending.clear()
        if not self.opened.done():
            self.opened.set_exception(UpstreamUnavailable(reason))
            self.opened.exception()  # nobody may be waiting any more


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
        self._on_event = on_event
        self._on_down = on_down
        self._on_stray = on_stray
        self._on_frame_end = on_frame_end
        self._conn: _Connection | None = None
        self._run_task: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()
        self._closing = False
        self.failure: BrokerError | None = None
        self.last_error: BrokerError | None = None
        self.connects = 0
        self.reauthorizations = 0
        self.bad_frames = 0
        self._flap_drops: deque[float] = deque()  # when recent ready connections dropped
        self.flapping = False
        self._wait_at_least = 0.0  # a penalty or circuit met before any connection existed
        auth.add_listener(self._on_new_token)

    @property
    def connected(self) -> bool:
        return self._ready.is_set()

    # -- lifecycle -----------------------------------------------------------------------

    def start(self) -> None:
        if self._closing:
            raise BrokerClosed(f"the {self.name} socket is closed")
        if self._run_task is None:
            self._run_task = asyncio.create_task(self._run(), name=f"tradovate-{self.name}")

    async def wait_ready(self, deadline: Deadline) -> None:
        """Until connected and set up; raises the reason if that cannot happen in time."""
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

    async def _reauthorize(self, conn: _Connection, token: Token, fresh: str) -> None:
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
        conn.source = token
        self.reauthorizations += 1
        logger.info("%s socket: re-authorized with the renewed token; connection kept", self.name)

    # -- the reconnect loop --------------------------------------------------------------

    async def _run(self) -> None:
        attempt = 0
        s = self._settings
        while not self._closing:
            was_ready, reason, conn = await self._connect_once()
            if self._closing or self.failure is not None:
                break
            if was_ready:
                self._on_down(reason)
            if conn is not None and conn.ready_at is not None and self._reset_backoff(conn):
                attempt = 0
            if conn is not None and conn.immediate and was_ready:
                delay = 0.0
            else:
                ceiling = min(s.reconnect_max, s.reconnect_initial * 2 ** min(attempt, 16))
                delay = random.uniform(ceiling / 2, ceiling)
                attempt += 1
            if conn is not None:
                delay = max(delay, conn.retry_after)
            delay, self._wait_at_least = max(delay, self._wait_at_least), 0.0
            logger.warning("%s socket down (%s); reconnecting in %.2f s", self.name, reason, delay)
            await asyncio.sleep(delay)
        if self.failure is not None:
            self._on_down(f"stopped: {self.failure}")

    def _reset_backoff(self, conn: _Connection) -> bool:
        """May a connection that was ready reset the back-off? Not while flapping."""
        s = self._settings
        now = time.monotonic()
        assert conn.ready_at is not None
        if now - conn.ready_at >= s.reconnect_stable_after:
            self._flap_drops.clear()
            if self.flapping:
                logger.info("%s socket: stable again; back-off reset", self.name)
            self.flapping = False
            return True
        drops = self._flap_drops
        drops.append(now)
        while drops and drops[0] < now - s.reconnect_flap_window:
            drops.popleft()
        if not self.flapping and len(drops) > s.reconnect_flap_limit:
            self.flapping = True
            logger.error(
                "%s socket: %d drops right after syncing within %.0f s; backing off until "
                "a connection stays up %.0f s",
                self.name,
                len(drops),
                s.reconnect_flap_window,
                s.reconnect_stable_after,
            )
        return not self.flapping

    async def _connect_once(self) -> tuple[bool, str, _Connection | None]:
        """One connection from dial to close: (was it ever ready, why it ended, its state)."""
        holder: list[_Connection] = []
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
                self._wait_at_least = retry_after(exc) or 0.0
        except Exception as exc:  # a bug or an unexpected library error: log, then retry
            logger.exception("%s socket failed", self.name)
            reason = f"{type(exc).__name__}: {exc}"
        conn = holder[0] if holder else None
        self._ready.clear()
        return conn is not None and conn.was_ready, reason, conn

    async def _session_once(self, holder: list[_Connection]) -> str:
        s = self._settings
        deadline = Deadline.after(s.connect_timeout)
        source = await self._auth.token(deadline)
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
        conn = _Connection(ws, source, self._token_for(source))
        holder.append(conn)
        self._conn = conn
        reader = asyncio.create_task(self._read(conn), name=f"tradovate-{self.name}-reader")
        beat: asyncio.Task[None] | None = None
        try:
            async with asyncio.timeout(deadline.remaining()):
                await asyncio.shield(conn.opened)
            beat = asyncio.create_task(self._heartbeat(conn), name=f"tradovate-{self.name}-beat")
            await self._authorize(conn, deadline)
            await self._on_ready()
            self.connects += 1
            self.last_error = None
            conn.was_ready = True
            conn.ready_at = time.monotonic()
            self._ready.set()
            return await conn.stopped
        except TimeoutError:
            raise UpstreamTimeout(f"{self.name} socket: no open frame in time") from None
        finally:
            self._ready.clear()
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

    async def _authorize(self, conn: _Connection, deadline: Deadline) -> None:
        try:
            await self._request(conn, "authorize", None, None, conn.token, deadline)
        except TokenRejected as exc:
            # Renew (or, if Tradovate says the token is dead, log in) before the next try.
            await self._auth.after_rejection(conn.source, deadline)
            raise UpstreamUnavailable(f"{self.name} socket: authorization refused: {exc}") from None
        conn.authorized = True

    # -- reading -------------------------------------------------------------------------

    async def _read(self, conn: _Connection) -> None:
        silence = self._settings.server_silence_timeout
        ws = conn.ws
        try:
            while not conn.stopped.done():
                try:
                    msg = await ws.receive(timeout=silence)
                except TimeoutError:
                    conn.stop(f"no frame from Tradovate for {silence:.1f} s")
                    return
                if msg.type in (aiohttp.WSMsgType.TEXT, aiohttp.WSMsgType.BINARY):
                    self._on_frame(conn, msg.data, dt.datetime.now(dt.UTC))
                elif msg.type == aiohttp.WSMsgType.ERROR:
                    conn.stop(f"socket error: {ws.exception()}")
                elif msg.type in (
                    aiohttp.WSMsgType.CLOSE,
                    aiohttp.WSMsgType.CLOSING,
                    aiohttp.WSMsgType.CLOSED,
                ):
                    conn.stop(f"closed by Tradovate (code {ws.close_code})")
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            logger.exception("%s socket reader failed", self.name)
            conn.stop(f"reader failed: {exc}")
        finally:
            conn.fail_pending(f"{self.name} socket closed")

    def _on_frame(self, conn: _Connection, data: str | bytes, received_at: dt.datetime) -> None:
        """Handle one frame read at ``received_at``; never raises."""
        try:
            frame = decode_frame(data)
            if isinstance(frame, DataFrame):
                try:
                    for message in frame.messages:
                        self._on_message(conn, message, received_at)
                finally:
                    if self._on_frame_end is not None:
                        self._on_frame_end()
            elif isinstance(frame, OpenFrame):
                if not conn.opened.done():
                    conn.opened.set_result(None)
            elif isinstance(frame, CloseFrame):
                conn.stop(f"close frame {frame.code} {frame.reason}".strip())
        except ProtocolError as exc:
            self.bad_frames += 1
            logger.warning("%s socket: bad frame skipped: %s", self.name, exc)
        except Exception:
            self.bad_frames += 1
            logger.exception("%s socket: frame handling failed: %s", self.name, snippet(data))

    def _on_message(self, conn: _Connection, message: object, received_at: dt.datetime) -> None:
        try:
            if isinstance(message, Response):
                future = conn.pending.pop(message.request_id, None)
                if future is not None and not future.done():
                    future.set_result(message)
                elif self._on_stray is not None:
                    self._on_stray(message)
            elif isinstance(message, Event):
                if message.kind == "shutdown":
                    self._on_shutdown(conn, message)
                else:
                    self._on_event(message, received_at)
            elif isinstance(message, BadMessage):
                self.bad_frames += 1
                logger.warning("%s socket: bad message skipped (%s)", self.name, message.error)
        except Exception:
            self.bad_frames += 1
            logger.exception("%s socket: message handling failed", self.name)

    def _on_shutdown(self, conn: _Connection, event: Event) -> None:
        try:
            detail = _shutdown_decoder.decode(event.data)
        except (msgspec.DecodeError, UnicodeDecodeError):
            detail = {}
        code = detail.get("reasonCode", "unknown")
        logger.warning(
            "%s socket: Tradovate shutdown event, reasonCode=%s: %s",
            self.name,
            code,
            snippet(bytes(event.data)),
        )
        conn.stop(f"shutdown by Tradovate (reasonCode {code})")

    async def _heartbeat(self, conn: _Connection) -> None:
        interval = self._settings.heartbeat_interval
        while not conn.stopped.done():
            await asyncio.sleep(interval)
            try:
                await conn.ws.send_str(HEARTBEAT)
            except (aiohttp.ClientError, ConnectionError, RuntimeError) as exc:
                conn.stop(f"heartbeat failed: {exc}")

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
        conn: _Connection,
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
            response = await self._exchange(conn, endpoint, query, sent, raw_body, deadline)
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

    async def _exchange(
        self,
        conn: _Connection,
        endpoint: str,
        query: str | None,
        body: object,
        raw_body: str | None,
        deadline: Deadline,
    ) -> Response:
        """One request on ``conn`` and its response (any status)."""
        request_id = next(conn.ids)
        future: asyncio.Future[Response] = asyncio.get_running_loop().create_future()
        conn.pending[request_id] = future
        if raw_body is not None:
            text = encode_authorize(request_id, raw_body)
        else:
            text = encode_request(endpoint, request_id, query=query, body=body)
        try:
            async with asyncio.timeout(left_before(deadline, endpoint)):
                await conn.ws.send_str(text)
                return await future
        except TimeoutError:
            raise UpstreamTimeout(f"no answer to {endpoint} within the deadline") from None
        except (aiohttp.ClientError, ConnectionError, RuntimeError) as exc:
            raise UpstreamUnavailable(f"{self.name} socket: send failed: {exc}") from None
        finally:
            conn.pending.pop(request_id, None)
