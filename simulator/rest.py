"""REST under /v1: paths matched case-insensitively, Bearer tokens, the shared pipeline."""

from __future__ import annotations

import asyncio
import logging

import msgspec
from aiohttp import web

from trading_gateway.simulator.api import Call, Reply, Route, admit, client_key, execute
from trading_gateway.simulator.core import SimCore
from trading_gateway.simulator.frames import normalize_endpoint

logger = logging.getLogger(__name__)

_encode = msgspec.json.encode
JSON = "application/json"
STATUS_TEXT = {500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Unavailable"}


def bearer(header: str | None) -> str | None:
    if not header:
        return None
    scheme, _, token = header.strip().partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


def to_http(reply: Reply) -> web.Response:
    status = reply.status
    if status == 200:
        return web.Response(body=_encode(reply.data), content_type=JSON)
    if status == 429:
        return web.Response(status=429)
    if status in (400, 401, 404, 405):
        return web.Response(status=status, body=_encode(reply.error or ""), content_type=JSON)
    return web.Response(status=status, text=STATUS_TEXT.get(status, reply.error or ""))


class RestHandler:
    def __init__(self, core: SimCore, routes: dict[str, Route]) -> None:
        self.core = core
        self.routes = routes

    async def handle(self, request: web.Request) -> web.StreamResponse:
        try:
            return await self._handle(request)
        except Exception:
            logger.exception("unhandled error serving %s", request.path)
            return web.Response(status=500, text=STATUS_TEXT[500])

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        core = self.core
        endpoint = normalize_endpoint(request.match_info.get("tail", ""))
        core.calls[endpoint] += 1
        route = self.routes.get(endpoint)
        if route is None:
            return to_http(Reply(404, error=f"Not found: {endpoint}"))
        if request.method != route.method:
            return to_http(Reply(405, error=f"Method {request.method} not allowed"))
        body = None
        if request.body_exists:
            raw = await request.read()
            if raw.strip():
                try:
                    body = msgspec.json.decode(raw)
                except msgspec.DecodeError:
                    return to_http(Reply(400, error="Malformed JSON body"))
        call = Call(
            transport="rest",
            endpoint=endpoint,
            query={k.lower(): v for k, v in request.query.items()},
            body=body,
            client=client_key(request.remote),
            token=bearer(request.headers.get("Authorization")),
        )
        outcome = admit(core, call, route)
        if isinstance(outcome, Reply):
            return to_http(outcome)
        if outcome.hang:
            await core.faults.hang(core.config.hang_s)
        if outcome.delay > 0:
            await asyncio.sleep(outcome.delay)
        return to_http(execute(core, call, route, outcome))
