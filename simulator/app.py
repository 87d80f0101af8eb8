"""Simulator: wires the parts together and serves them.

REST, the user socket and the admin API share one port; market data has its own port, as
Tradovate serves it from its own host.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from aiohttp import web

from trading_gateway.simulator.activity import Drivers, RandomTrader
from trading_gateway.simulator.admin import AdminApi
from trading_gateway.simulator.api import Route
from trading_gateway.simulator.auth_routes import auth_routes
from trading_gateway.simulator.config import SimConfig
from trading_gateway.simulator.control import Control
from trading_gateway.simulator.core import SimCore, build_core
from trading_gateway.simulator.entity_routes import entity_routes
from trading_gateway.simulator.md import md_routes
from trading_gateway.simulator.rest import RestHandler
from trading_gateway.simulator.sessions import ACCESS, MD
from trading_gateway.simulator.sockets import serve_socket
from trading_gateway.simulator.sync import sync_routes
from trading_gateway.simulator.trading_routes import trading_routes
from trading_gateway.simulator.world import seeded
from trading_gateway.simulator.ws import SocketEndpoint

logger = logging.getLogger(__name__)

WS_PATH = "/v1/websocket"
SHUTDOWN_GRACE_S = 1.0
APP_ID = "tradovate-sim"


class Simulator:
    """A local Tradovate. Build it, then `async with sim.running() as sim:` (or start/aclose)."""

    def __init__(self, config: SimConfig | None = None) -> None:
        self.config = config or SimConfig()
        started = time.perf_counter()
        self.core: SimCore = build_core(self.config)
        self.drivers = Drivers(
            self.core, RandomTrader(self.core, seeded(self.config.seed, "activity"))
        )
        self.control = Control(self.core, self.drivers)
        self.core.sessions.on_revoke.append(self.control.close_session_sockets)
        common = {**entity_routes(), **trading_routes()}
        self.rest_routes: dict[str, Route] = {**common, **auth_routes()}
        self._rest = RestHandler(self.core, self.rest_routes)
        self._user_ws = SocketEndpoint(self.core, "ws", {**common, **sync_routes()}, (ACCESS,))
        self._md_ws = SocketEndpoint(self.core, "md", md_routes(), (ACCESS, MD))
        self._admin = AdminApi(self.control)
        self._runners: list[web.AppRunner] = []
        self.host = "127.0.0.1"
        self.port = 0
        self.md_port = 0
        logger.info(
            "simulator built: %d users, %d accounts, seed %d, in %.3f s",
            len(self.config.all_users()),
            self.config.total_accounts,
            self.config.seed,
            time.perf_counter() - started,
        )

    # ---- serving ----------------------------------------------------------------------------

    async def _user_socket(self, request: web.Request) -> web.StreamResponse:
        return await serve_socket(
            request, self.core, "user", self._user_ws.on_text, self.core.user_conns
        )

    async def _md_socket(self, request: web.Request) -> web.StreamResponse:
        return await serve_socket(request, self.core, "md", self._md_ws.on_text, self.core.md_conns)

    def main_app(self) -> web.Application:
        app = web.Application(client_max_size=4 * 1024 * 1024)
        app.router.add_get(WS_PATH, self._user_socket)
        app.router.add_route("*", "/v1/{tail:.*}", self._rest.handle)
        self._admin.add_routes(app)
        return app

    def md_app(self) -> web.Application:
        app = web.Application()
        app.router.add_get(WS_PATH, self._md_socket)
        return app

    async def _serve(self, app: web.Application, host: str, port: int) -> int:
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=SHUTDOWN_GRACE_S)
        await runner.setup()
        self._runners.append(runner)
        site = web.TCPSite(runner, host, port)
        await site.start()
        address: Any = runner.addresses[0]
        return int(address[1])

    async def start(self, host: str = "127.0.0.1", port: int = 0, md_port: int = 0) -> None:
        """Listen on host:port (REST, user socket, admin) and host:md_port (md); 0 = any free."""
        self.host = host
        try:
            self.port = await self._serve(self.main_app(), host, port)
            self.md_port = await self._serve(self.md_app(), host, md_port)
        except BaseException:
            await self.aclose()
            raise
        self.drivers.start()
        logger.info("simulator listening: rest %s, md %s", self.rest_url, self.md_ws_url)

    async def aclose(self) -> None:
        """Stop the loops, close every socket (then drop stragglers), release hung calls, stop."""
        await self.drivers.aclose()
        conns = [*self.core.user_conns, *self.core.md_conns]
        for conn in conns:
            conn.request_close(1001, "Server shutdown")
        if conns:
            waiters = [asyncio.create_task(c.finished.wait()) for c in conns]
            _, pending = await asyncio.wait(waiters, timeout=SHUTDOWN_GRACE_S)
            for waiter in pending:
                waiter.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        for conn in [*self.core.user_conns, *self.core.md_conns]:
            conn.abort()
        self.core.faults.clear()
        runners, self._runners = self._runners, []
        for runner in reversed(runners):
            await runner.cleanup()

    @asynccontextmanager
    async def running(
        self, host: str = "127.0.0.1", port: int = 0, md_port: int = 0
    ) -> AsyncIterator[Simulator]:
        await self.start(host, port, md_port)
        try:
            yield self
        finally:
            await self.aclose()

    # ---- addresses --------------------------------------------------------------------------

    @property
    def _url_host(self) -> str:
        return "127.0.0.1" if self.host in ("", "0.0.0.0") else self.host

    @property
    def rest_url(self) -> str:
        return f"http://{self._url_host}:{self.port}/v1"

    @property
    def ws_url(self) -> str:
        return f"ws://{self._url_host}:{self.port}{WS_PATH}"

    @property
    def md_ws_url(self) -> str:
        return f"ws://{self._url_host}:{self.md_port}{WS_PATH}"

    @property
    def admin_url(self) -> str:
        return f"http://{self._url_host}:{self.port}/_sim"

    @property
    def credentials(self) -> dict[str, Any]:
        """The login body of the first (default) user."""
        return self.credentials_for(self.config.all_users()[0].name)

    def credentials_for(self, name: str) -> dict[str, Any]:
        """The login body of the user called `name` (KeyError if there is none)."""
        user = {u.name: u for u in self.config.all_users()}[name]
        return {
            "name": user.name,
            "password": user.password,
            "appId": APP_ID,
            "appVersion": "1.0",
            "cid": 8,
            "sec": "sim-secret",
        }
