"""A minimal loopback Tradovate that delivers hand-made frames to a real client.

The simulator never sends malformed frames, so the reader's robustness is tested here:
this server speaks just enough of the protocol (login, ``o``, authorize, syncrequest,
``h``) and lets a test push any text or bytes down every open socket.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
from collections.abc import AsyncIterator

from aiohttp import WSMsgType, web

from trading_gateway.server.broker import BrokerSettings


class ScriptedTradovate:
    def __init__(self) -> None:
        self.sockets: list[web.WebSocketResponse] = []
        self.requests: list[str] = []
        self.logins = 0
        self.login_reply: tuple[int, bytes] | None = None  # overrides the good token
        self.rest_replies: dict[str, tuple[int, bytes]] = {}  # "account/list" -> reply
        self.sync_data: object = {"users": [{"id": 1}], "accounts": [{"id": 5, "name": "A5"}]}
        self._tasks: set[asyncio.Task[None]] = set()
        self._runner: web.AppRunner | None = None
        self.port = 0

    @property
    def rest_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    async def push(self, frame: str | bytes) -> None:
        for ws in list(self.sockets):
            if isinstance(frame, bytes):
                await ws.send_bytes(frame)
            else:
                await ws.send_str(frame)

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[ScriptedTradovate]:
        app = web.Application()
        app.router.add_post("/v1/auth/accesstokenrequest", self._login)
        app.router.add_get("/v1/websocket", self._socket)
        app.router.add_route("*", "/v1/{tail:.*}", self._canned)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = self._runner.addresses[0][1]
        try:
            yield self
        finally:
            for task in list(self._tasks):
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            for ws in list(self.sockets):
                await ws.close()
            await self._runner.cleanup()

    async def _canned(self, request: web.Request) -> web.Response:
        status, body = self.rest_replies.get(request.match_info["tail"], (404, b""))
        return web.Response(status=status, body=body, content_type="application/json")

    async def _login(self, request: web.Request) -> web.Response:
        self.logins += 1
        if self.login_reply is not None:
            status, body = self.login_reply
            return web.Response(status=status, body=body, content_type="application/json")
        expires = dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)
        return web.json_response(
            {
                "accessToken": "scripted-token",
                "expirationTime": expires.isoformat().replace("+00:00", "Z"),
                "userId": 1,
                "userStatus": "Active",
            }
        )

    async def _beat(self, ws: web.WebSocketResponse) -> None:
        while not ws.closed:
            await asyncio.sleep(1.0)
            with contextlib.suppress(ConnectionError, RuntimeError):
                await ws.send_str("h")

    async def _socket(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        self.sockets.append(ws)
        beat = asyncio.create_task(self._beat(ws))
        self._tasks.add(beat)
        beat.add_done_callback(self._tasks.discard)
        await ws.send_str("o")
        try:
            async for msg in ws:
                if msg.type != WSMsgType.TEXT or msg.data == "[]":
                    continue
                self.requests.append(msg.data)
                text: str = msg.data
                endpoint, request_id, *_ = [*text.split("\n"), "", ""]
                reply: dict[str, object] = {"s": 200, "i": int(request_id)}
                if endpoint == "user/syncrequest":
                    reply["d"] = self.sync_data
                elif endpoint != "authorize":
                    reply = {"s": 404, "i": int(request_id), "d": f"Not found: {endpoint}"}
                await ws.send_str("a" + json.dumps([reply]))
        finally:
            beat.cancel()
            self.sockets.remove(ws)
        return ws


def scripted_settings(server: ScriptedTradovate) -> BrokerSettings:
    """Broker settings that point a real TradovateClient at ``server``."""
    return BrokerSettings(rest_url=server.rest_url, username="u", password="pw-123456")
