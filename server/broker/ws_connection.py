"""One Tradovate WebSocket connection: its state, its requests and its heartbeat.

A Connection lives and dies with one dial. Requests are correlated by id through a map
of futures; every pending future fails when the connection ends. ``consume`` reads a
socket consumer's queue (user sync, market data) until its end marker.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Iterator
from typing import Protocol, TypeVar

import aiohttp

from trading_gateway.server.broker.auth import Token
from trading_gateway.server.broker.errors import (
    BrokerError,
    UpstreamTimeout,
    UpstreamUnavailable,
    left_before,
)
from trading_gateway.server.broker.frames import (
    HEARTBEAT,
    Response,
    encode_authorize,
    encode_request,
)
from trading_gateway.server.deadline import Deadline

_Item = TypeVar("_Item")


class Stoppable(Protocol):
    """What ``consume`` needs of a socket: the error that stopped it for good, if any."""

    @property
    def failure(self) -> BrokerError | None: ...


async def consume(queue: asyncio.Queue[_Item | None], socket: Stoppable) -> AsyncIterator[_Item]:
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


class Connection:
    """State that lives and dies with one WebSocket connection."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse, login: Token, token: str) -> None:
        loop = asyncio.get_running_loop()
        self.ws = ws
        self.login = login  # the login whose token this connection is authorized with
        self.token = token  # that login's token for this socket (access or md)
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

    def answer(self, response: Response) -> bool:
        """Hand ``response`` to the request waiting for it; False if none is (a stray)."""
        future = self.pending.pop(response.request_id, None)
        if future is None or future.done():
            return False
        future.set_result(response)
        return True

    async def exchange(
        self,
        endpoint: str,
        query: str | None,
        body: object,
        raw_body: str | None,
        deadline: Deadline,
        name: str,
    ) -> Response:
        """One request and its response (any status); ``raw_body`` is an authorize token."""
        request_id = next(self.ids)
        future: asyncio.Future[Response] = asyncio.get_running_loop().create_future()
        self.pending[request_id] = future
        if raw_body is not None:
            text = encode_authorize(request_id, raw_body)
        else:
            text = encode_request(endpoint, request_id, query=query, body=body)
        try:
            async with asyncio.timeout(left_before(deadline, endpoint)):
                await self.ws.send_str(text)
                return await future
        except TimeoutError:
            raise UpstreamTimeout(f"no answer to {endpoint} within the deadline") from None
        except (aiohttp.ClientError, ConnectionError, RuntimeError) as exc:
            raise UpstreamUnavailable(f"{name} socket: send failed: {exc}") from None
        finally:
            self.pending.pop(request_id, None)

    async def heartbeat(self, interval: float) -> None:
        """Send ``[]`` every ``interval`` until the connection stops."""
        while not self.stopped.done():
            await asyncio.sleep(interval)
            try:
                await self.ws.send_str(HEARTBEAT)
            except (aiohttp.ClientError, ConnectionError, RuntimeError) as exc:
                self.stop(f"heartbeat failed: {exc}")
