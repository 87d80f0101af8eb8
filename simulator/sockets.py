"""One socket connection (user or md): non-blocking push, a writer task that batches pending
messages into a[...] frames, server heartbeats, and the authorize and client-heartbeat
deadlines. Shared by the user-data socket and the market-data socket."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Coroutine
from typing import Any

from aiohttp import WSMsgType, web

from trading_gateway.simulator.api import client_key
from trading_gateway.simulator.core import SimCore
from trading_gateway.simulator.frames import HEARTBEAT, OPEN, array_frame, close_frame
from trading_gateway.simulator.sessions import Session

logger = logging.getLogger(__name__)

MAX_INBOUND_MESSAGE = 4 * 1024 * 1024
CLOSE_HANDSHAKE_TIMEOUT = 2.0


class Conn:
    """Server side of one socket. push() never blocks; the writer task does the I/O."""

    def __init__(
        self, kind: str, ws: web.WebSocketResponse, transport: Any, core: SimCore, client: str
    ) -> None:
        self.kind = kind
        self.ws = ws
        self.core = core
        self.client = client
        self._transport = transport
        self.session: Session | None = None
        self.sync_accounts: frozenset[int] | None = None
        self.sync_types: frozenset[str] | None = None
        self.quotes: set[int] = set()
        self._pending: list[bytes] = []
        self._wake = asyncio.Event()
        self._close: tuple[int, str] | None = None
        self.closed = False
        now = time.monotonic()
        self.opened = now
        self.last_heartbeat = now
        self.tasks: set[asyncio.Task[None]] = set()
        self.writer: asyncio.Task[None] | None = None
        self.finished = asyncio.Event()

    @property
    def authorized(self) -> bool:
        return self.session is not None

    def push(self, message: bytes) -> None:
        if self.closed or self._close is not None:
            return
        self._pending.append(message)
        if len(self._pending) > self.core.config.max_pending_messages:
            logger.warning(
                "%s socket fell %d messages behind; dropping it", self.kind, len(self._pending)
            )
            self.abort()
            return
        self._wake.set()

    def request_close(self, code: int = 1000, reason: str = "") -> None:
        """Flush what is pending, send a c frame, then close the socket."""
        if self._close is None and not self.closed:
            self._close = (code, reason)
            self._wake.set()

    def abort(self) -> None:
        """Drop the TCP connection at once: no close frame, no close handshake."""
        self.closed = True
        self._pending.clear()
        if self._transport is not None:
            self._transport.abort()
        self._wake.set()

    def spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self.tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.error("socket task failed", exc_info=task.exception())

    def _deadline(self, next_heartbeat: float) -> float:
        config = self.core.config
        deadline = min(next_heartbeat, self.last_heartbeat + config.client_timeout)
        if not self.authorized:
            deadline = min(deadline, self.opened + config.authorize_timeout)
        return deadline

    async def run_writer(self) -> None:
        interval = self.core.config.heartbeat_interval
        next_heartbeat = time.monotonic() + interval
        try:
            while not self.closed:
                if not self._pending and self._close is None:
                    await self._sleep(self._deadline(next_heartbeat) - time.monotonic())
                if self._is_closed():
                    return
                if self._pending:
                    batch, self._pending = self._pending, []
                    await self.ws.send_frame(array_frame(batch), WSMsgType.TEXT)
                    continue
                if self._close is not None:
                    await self._finish(*self._close)
                    return
                now = time.monotonic()
                if not self.authorized and now >= self.opened + self.core.config.authorize_timeout:
                    await self._finish(1008, "Not authorized")
                    return
                if now >= self.last_heartbeat + self.core.config.client_timeout:
                    await self._finish(1008, "Heartbeat timeout")
                    return
                if now >= next_heartbeat:
                    await self.ws.send_frame(HEARTBEAT, WSMsgType.TEXT)
                    next_heartbeat = now + interval
        except (ConnectionError, RuntimeError) as exc:
            logger.debug("%s socket writer stopped: %s", self.kind, exc)
            self.closed = True

    async def _sleep(self, wait: float) -> None:
        """Until a push, a close request, or `wait` seconds."""
        if wait > 0:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wait):
                    await self._wake.wait()
        self._wake.clear()

    def _is_closed(self) -> bool:
        return self.closed

    async def _finish(self, code: int, reason: str) -> None:
        logger.info("closing %s socket: %s", self.kind, reason)
        with contextlib.suppress(ConnectionError, RuntimeError):
            await self.ws.send_frame(close_frame(code, reason), WSMsgType.TEXT)
            await self.ws.close(code=code, message=reason.encode())
        self.closed = True

    async def aclose(self) -> None:
        writer = self.writer
        if writer is not None and self._close is not None and not writer.done():
            # A requested close is in progress: let the writer finish its close handshake.
            await asyncio.wait({writer}, timeout=CLOSE_HANDSHAKE_TIMEOUT)
        self.closed = True
        self._wake.set()
        tasks = list(self.tasks)
        if writer is not None:
            tasks.append(writer)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


TextHandler = Callable[[Conn, str], None]


async def serve_socket(
    request: web.Request, core: SimCore, kind: str, on_text: TextHandler, registry: set[Conn]
) -> web.WebSocketResponse:
    """Run one socket from handshake to close; `on_text` handles each client message."""
    ws = web.WebSocketResponse(
        autoping=True,
        heartbeat=None,
        timeout=CLOSE_HANDSHAKE_TIMEOUT,
        max_msg_size=MAX_INBOUND_MESSAGE,
    )
    transport = request.transport
    await ws.prepare(request)
    conn = Conn(kind, ws, transport, core, client_key(request.remote))
    registry.add(conn)
    try:
        await ws.send_frame(OPEN, WSMsgType.TEXT)
        conn.writer = asyncio.create_task(conn.run_writer())
        async for message in ws:
            if message.type == WSMsgType.TEXT:
                text: str = message.data
            elif message.type == WSMsgType.BINARY:
                text = bytes(message.data).decode("utf-8", errors="replace")
            else:
                break
            try:
                on_text(conn, text)
            except Exception:
                logger.exception("unhandled error on %s socket message", kind)
    except (ConnectionError, RuntimeError) as exc:
        logger.debug("%s socket ended: %s", kind, exc)
    finally:
        registry.discard(conn)
        core.hub.subscribers.discard(conn)
        for contract_id in conn.quotes:
            core.md_subscribers.get(contract_id, set()).discard(conn)
        await conn.aclose()
        conn.finished.set()
    return ws
