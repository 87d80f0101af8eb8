"""Request handling on a socket (user or md): heartbeats, authorize, then 4-line requests
answered with {"s","i","d"} through the same pipeline as REST."""

from __future__ import annotations

import asyncio
import logging
import time

import msgspec

from trading_gateway.simulator.api import Admitted, Call, Reply, Route, admit, execute
from trading_gateway.simulator.core import SimCore
from trading_gateway.simulator.frames import (
    CLIENT_HEARTBEAT,
    FrameError,
    WsRequest,
    error_response,
    parse_request,
    response,
)
from trading_gateway.simulator.sockets import Conn

logger = logging.getLogger(__name__)

INVALID_TOKEN = "Invalid access token"


def encode_reply(reply: Reply, request_id: int) -> bytes:
    if reply.status == 200:
        return response(200, request_id, reply.data)
    return error_response(reply.status, request_id, reply.error)


class SocketEndpoint:
    """The client-message handler for one kind of socket."""

    def __init__(
        self,
        core: SimCore,
        prefix: str,
        routes: dict[str, Route],
        token_kinds: tuple[str, ...],
    ) -> None:
        self.core = core
        self.prefix = prefix
        self.routes = routes
        self.token_kinds = token_kinds

    def on_text(self, conn: Conn, text: str) -> None:
        if text.strip() == CLIENT_HEARTBEAT:
            conn.last_heartbeat = time.monotonic()
            return
        try:
            request = parse_request(text)
        except FrameError as exc:
            self.core.calls[f"{self.prefix}:<malformed>"] += 1
            conn.push(error_response(400, exc.request_id, str(exc)))
            return
        self.core.calls[f"{self.prefix}:{request.endpoint}"] += 1
        if request.endpoint == "authorize":
            self._authorize(conn, request)
            return
        if not conn.authorized:
            conn.push(error_response(401, request.request_id, "Access is denied"))
            return
        route = self.routes.get(request.endpoint)
        if route is None:
            conn.push(error_response(404, request.request_id, f"Not found: {request.endpoint}"))
            return
        try:
            body = None if request.body is None else msgspec.json.decode(request.body)
        except msgspec.DecodeError:
            conn.push(error_response(400, request.request_id, "Malformed JSON body"))
            return
        call = Call(
            transport=self.prefix,
            endpoint=request.endpoint,
            query=dict(request.query),
            body=body,
            client=conn.client,
            session=conn.session,
            conn=conn,
        )
        self._dispatch(conn, call, route, request.request_id)

    def _authorize(self, conn: Conn, request: WsRequest) -> None:
        token = (request.body or "").strip()
        session = self.core.sessions.lookup(token, self.token_kinds)
        if session is None:
            conn.push(response(401, request.request_id, INVALID_TOKEN))
            return
        conn.session = session
        conn.push(response(200, request.request_id))

    def _dispatch(self, conn: Conn, call: Call, route: Route, request_id: int) -> None:
        outcome = admit(self.core, call, route)
        if isinstance(outcome, Reply):
            conn.push(encode_reply(outcome, request_id))
            return
        if outcome.delay > 0 or outcome.hang:
            conn.spawn(self._later(conn, call, route, outcome, request_id))
            return
        self._answer(conn, call, route, outcome, request_id)

    async def _later(
        self, conn: Conn, call: Call, route: Route, admitted: Admitted, request_id: int
    ) -> None:
        if admitted.hang:
            await self.core.faults.hang(self.core.config.hang_s)
        if admitted.delay > 0:
            await asyncio.sleep(admitted.delay)
        self._answer(conn, call, route, admitted, request_id)

    def _answer(
        self, conn: Conn, call: Call, route: Route, admitted: Admitted, request_id: int
    ) -> None:
        try:
            reply = execute(self.core, call, route, admitted)
        except Exception:
            logger.exception("unhandled error serving %s on a socket", call.endpoint)
            reply = Reply(500, error="Internal Server Error")
        conn.push(encode_reply(reply, request_id))
        if reply.after is not None:
            conn.push(reply.after)
