"""Reading one Tradovate socket connection: frames in, answers and events out.

Answers go to the request waiting for them (or ``on_stray``), events to ``on_event``, a
``shutdown`` event or a close frame stops the connection, and a server silent for
``server_silence_timeout`` counts as dead. Nothing raised while reading a frame escapes
the reader: a bad frame is counted, logged and skipped.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from collections.abc import Callable
from typing import Final

import aiohttp
import msgspec

from trading_gateway.server.broker.errors import ProtocolError
from trading_gateway.server.broker.frames import (
    BadMessage,
    CloseFrame,
    DataFrame,
    Event,
    OpenFrame,
    Response,
    decode_frame,
    snippet,
)
from trading_gateway.server.broker.ws_connection import Connection

logger = logging.getLogger(__name__)

_shutdown_decoder: Final = msgspec.json.Decoder(dict[str, object])

_CLOSED: Final = (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSING, aiohttp.WSMsgType.CLOSED)


class FrameReader:
    """Routes what one socket (named ``name`` in logs) reads; counts what it skips."""

    def __init__(
        self,
        name: str,
        on_event: Callable[[Event, dt.datetime], None],
        on_stray: Callable[[Response], None] | None,
        on_frame_end: Callable[[], None] | None,
    ) -> None:
        self.name = name
        self._on_event = on_event
        self._on_stray = on_stray
        self._on_frame_end = on_frame_end
        self.bad_frames = 0
        #: Monotonic time of the last data frame (None before the first), for metrics.
        self.last_frame_at: float | None = None

    async def read(self, conn: Connection, silence: float) -> None:
        """Read ``conn`` until it stops; then fail whatever still waits for an answer."""
        ws = conn.ws
        try:
            while not conn.stopped.done():
                try:
                    msg = await ws.receive(timeout=silence)
                except TimeoutError:
                    conn.stop(f"no frame from Tradovate for {silence:.1f} s")
                    return
                if msg.type in (aiohttp.WSMsgType.TEXT, aiohttp.WSMsgType.BINARY):
                    self.on_frame(conn, msg.data, dt.datetime.now(dt.UTC))
                elif msg.type == aiohttp.WSMsgType.ERROR:
                    conn.stop(f"socket error: {ws.exception()}")
                elif msg.type in _CLOSED:
                    conn.stop(f"closed by Tradovate (code {ws.close_code})")
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            logger.exception("%s socket reader failed", self.name)
            conn.stop(f"reader failed: {exc}")
        finally:
            conn.fail_pending(f"{self.name} socket closed")

    def on_frame(self, conn: Connection, data: str | bytes, received_at: dt.datetime) -> None:
        """Handle one frame read at ``received_at``; never raises."""
        try:
            frame = decode_frame(data)
            if isinstance(frame, DataFrame):
                self.last_frame_at = time.monotonic()
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

    def _on_message(self, conn: Connection, message: object, received_at: dt.datetime) -> None:
        try:
            if isinstance(message, Response):
                if not conn.answer(message) and self._on_stray is not None:
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

    def _on_shutdown(self, conn: Connection, event: Event) -> None:
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
