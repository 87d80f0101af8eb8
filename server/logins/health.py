"""Health across logins: one service per login, and the gateway's services over all.

Each login's ``HealthMonitor`` (server/api/health.py) publishes its own service,
``tradovate_gateway.login.<name>``: SERVING while it is logged in and Tradovate answers
it. ``DeploymentHealth`` publishes the gateway-wide services from every login's monitor:
``""`` and the TradingService SERVING while at least one login is; upstream SERVING
while some login may call Tradovate now; live while some login's sync socket is up;
the cache from the cache. With one login these are exactly that login's values.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Final, Protocol

from grpc_health.v1.health import aio as health_aio

from trading_gateway.server.api.health import (
    NOT_SERVING,
    SERVICE_CACHE,
    SERVICE_LIVE,
    SERVICE_OVERALL,
    SERVICE_TRADING,
    SERVICE_UPSTREAM,
    SERVING,
)

LOGIN_SERVICE_PREFIX: Final = "tradovate_gateway.login."


def login_service(login: str) -> str:
    """The health service name of one login."""
    return f"{LOGIN_SERVICE_PREFIX}{login}"


class LoginHealth(Protocol):
    """What the deployment reads from one login's health monitor."""

    @property
    def serving(self) -> bool: ...

    @property
    def callable_now(self) -> bool: ...

    @property
    def live_up(self) -> bool: ...


class DeploymentHealth:
    """Publishes the gateway-wide health services from every login's monitor."""

    def __init__(
        self,
        servicer: health_aio.HealthServicer,
        *,
        monitors: Callable[[], Iterable[LoginHealth]],
        cache_healthy: Callable[[], bool],
    ) -> None:
        self.servicer = servicer
        self._monitors = monitors
        self._cache_healthy = cache_healthy
        self._published: dict[str, int] = {}
        self._closing = False

    @property
    def serving(self) -> bool:
        return any(m.serving for m in self._monitors())

    async def publish(self) -> None:
        if self._closing:
            return
        monitors = list(self._monitors())
        serving = any(m.serving for m in monitors)
        wanted = {
            SERVICE_OVERALL: serving,
            SERVICE_TRADING: serving,
            SERVICE_UPSTREAM: any(m.callable_now for m in monitors),
            SERVICE_CACHE: self._cache_healthy(),
            SERVICE_LIVE: any(m.live_up for m in monitors),
        }
        for service, up in wanted.items():
            await self._set(service, up)

    async def _set(self, service: str, up: bool) -> None:
        status = SERVING if up else NOT_SERVING
        if self._published.get(service) != status:
            await self.servicer.set(service, status)
            self._published[service] = status

    async def login_gone(self, login: str) -> None:
        """A login left the deployment: its service is NOT_SERVING, the rest recomputed."""
        if not self._closing:
            await self.servicer.set(login_service(login), NOT_SERVING)
            await self.publish()

    async def enter_shutdown(self) -> None:
        """Everything NOT_SERVING for good (load balancers stop sending new calls)."""
        self._closing = True
        await self.servicer.enter_graceful_shutdown()
