"""Health: the standard grpc.health.v1 service, driven by what the gateway observes.

Service names and what they mean:

- ``""`` and ``tradovate_gateway.v1.TradingService``: SERVING once the broker is logged
  in and while Tradovate answers; NOT_SERVING before login and during an upstream outage.
- ``tradovate_gateway.upstream``: Tradovate itself (the same rule), and NOT_SERVING
  while a 429, 423 or captcha circuit stops every upstream call. The service as a whole
  stays SERVING then: live and cached reads still answer, an upstream read fails at
  once with RESOURCE_EXHAUSTED and the seconds left, and another gateway on the same
  login and network would meet the same circuit, so taking this one out of rotation
  helps nobody. The standard health answer has no room for a reason: the reason and
  the time left are in ``tg_upstream_circuit_seconds{reason}`` and the log.
- ``tradovate_gateway.cache``: the TTL cache. NOT_SERVING here alone means "degraded":
  reads still succeed, straight from upstream. Redis is PINGed every few seconds
  (server/cache/watch.py), so this turns within seconds even when no read touches it;
  ``cache_changed`` publishes a change at once.
- ``tradovate_gateway.live``: the user-sync socket (live state, streams). NOT_SERVING
  while it is down or turned off: reads fall back to the cache and upstream by themselves.
- ``tradovate_gateway.login.<name>``: one per login, SERVING while that login is logged
  in and Tradovate answers it. With several logins each login has its own monitor, and
  server/logins/health.py publishes the services above over all of them (SERVING while at
  least one login is; with one login, exactly that login's values).

An outage is suspected after ``failure_threshold`` consecutive upstream failures of an
outage kind (unreachable, timeout, bad answers, lost login) and confirmed by a probe
(the account list); while down, a probe runs every ``probe_interval`` and any
successful upstream call ends the outage at once.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Final, Protocol

from grpc_health.v1 import health_pb2
from grpc_health.v1.health import aio as health_aio

from trading_gateway.server.broker import Circuit
from trading_gateway.server.broker.errors import BrokerError
from trading_gateway.server.observability.metrics import CIRCUIT_REASONS, Metrics

logger = logging.getLogger(__name__)

SERVICE_OVERALL: Final = ""
SERVICE_TRADING: Final = "tradovate_gateway.v1.TradingService"
SERVICE_UPSTREAM: Final = "tradovate_gateway.upstream"
SERVICE_CACHE: Final = "tradovate_gateway.cache"
SERVICE_LIVE: Final = "tradovate_gateway.live"
ALL_SERVICES: Final = (
    SERVICE_OVERALL,
    SERVICE_TRADING,
    SERVICE_UPSTREAM,
    SERVICE_CACHE,
    SERVICE_LIVE,
)

SERVING: Final = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING: Final = health_pb2.HealthCheckResponse.NOT_SERVING

OUTAGE_REASONS: Final = frozenset(
    {
        "UPSTREAM_UNAVAILABLE",
        "UPSTREAM_TIMEOUT",
        "BROKER_PROTOCOL_ERROR",
        "BROKER_AUTH_FAILED",
        "BROKER_CLOSED",
    }
)

Probe = Callable[[], Awaitable[object]]
CacheHealth = Callable[[], bool]
CircuitState = Callable[[], Circuit | None]


class Deployment(Protocol):
    """The gateway-wide services over every login (server/logins/health.py)."""

    async def publish(self) -> None: ...


def _no_circuit() -> Circuit | None:
    return None


class HealthMonitor:
    """Owns the health servicer's statuses; fed by upstream call outcomes and a loop."""

    def __init__(
        self,
        servicer: health_aio.HealthServicer,
        *,
        probe: Probe,
        cache_healthy: CacheHealth,
        metrics: Metrics,
        interval: float,
        probe_interval: float,
        failure_threshold: int,
        live_healthy: CacheHealth | None = None,
        circuit: CircuitState | None = None,
        login: str | None = None,
        login_service: str | None = None,
        deployment: Deployment | None = None,
    ) -> None:
        self.servicer = servicer
        # Many logins (server/logins/health.py): this monitor publishes its login's
        # service, and the deployment publishes the gateway-wide ones from all monitors.
        self._login_service = login_service
        self._deployment = deployment
        self._circuit = circuit or _no_circuit
        self._circuit_reason: str | None = None
        if login is None:
            metrics.watch_circuit(self._circuit)
        else:
            metrics.watch_circuit(self._circuit, login=login)
        self._live_healthy = live_healthy
        self._probe = probe
        self._cache_healthy = cache_healthy
        self._metrics = metrics
        self._interval = interval
        self._probe_interval = probe_interval
        self._threshold = failure_threshold
        self.logged_in = False
        self.upstream_up = True
        self.cache_up = True
        self._failures = 0
        self._probe_wanted = asyncio.Event()
        self._last_probe = 0.0
        self._published: dict[str, int] = {}
        self._task: asyncio.Task[None] | None = None
        self._closing = False

    # ---------------------------------------------------------------- inputs
    def upstream_call(self, endpoint: str, outcome: str, seconds: float) -> None:
        """UpstreamObserver hook: every upstream call's outcome."""
        if outcome == "OK":
            self._failures = 0
            if not self.upstream_up:
                logger.info("Tradovate answers again (%s): upstream is back", endpoint)
                self.upstream_up = True
                self._probe_wanted.set()  # wake the loop to publish at once
            return
        if outcome in CIRCUIT_REASONS:
            self._probe_wanted.set()  # publish the circuit at once
            return
        if outcome in OUTAGE_REASONS:
            self._failures += 1
            if self._failures >= self._threshold and self.upstream_up:
                self._probe_wanted.set()

    def cache_changed(self, healthy: bool) -> None:
        """The cache's state callback: publish the new cache status now, not next tick."""
        self._probe_wanted.set()

    async def set_logged_in(self, logged_in: bool) -> None:
        self.logged_in = logged_in
        await self.publish()

    # ---------------------------------------------------------------- lifecycle
    async def start(self) -> None:
        self.cache_up = self._cache_healthy()
        await self.publish()
        self._task = asyncio.get_running_loop().create_task(self._run(), name="health-monitor")

    async def enter_shutdown(self) -> None:
        """Everything NOT_SERVING for good (load balancers stop sending new calls)."""
        self._closing = True
        await self.servicer.enter_graceful_shutdown()

    async def aclose(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    # ---------------------------------------------------------------- loop
    async def _run(self) -> None:
        while True:
            circuit = self._circuit()
            wait = self._interval
            if circuit is not None:  # wake when it closes, to publish that at once
                wait = min(wait, circuit.retry_after + 0.01)
            try:
                async with asyncio.timeout(wait):
                    await self._probe_wanted.wait()
            except TimeoutError:
                pass
            self._probe_wanted.clear()
            self.cache_up = self._cache_healthy()
            if self.logged_in and self._should_probe():
                await self._run_probe()
            await self.publish()

    def _should_probe(self) -> bool:
        if self.upstream_up:
            return self._failures >= self._threshold
        return time.monotonic() - self._last_probe >= self._probe_interval

    async def _run_probe(self) -> None:
        self._last_probe = time.monotonic()
        try:
            await self._probe()
        except BrokerError as exc:
            if exc.reason in OUTAGE_REASONS:
                if self.upstream_up:
                    logger.warning("Tradovate outage: %s (%s)", exc, exc.reason)
                self.upstream_up = False
                return
            logger.info("upstream probe answered %s; not an outage", exc.reason)
        except Exception:
            logger.exception("upstream probe failed unexpectedly")
            return
        if not self.upstream_up:
            logger.info("Tradovate answers again: upstream is back")
        self.upstream_up = True
        self._failures = 0

    @property
    def serving(self) -> bool:
        """Logged in and Tradovate answers."""
        return self.logged_in and self.upstream_up

    @property
    def callable_now(self) -> bool:
        """Serving, and no 429/423/captcha circuit holds calls back."""
        return self.serving and self._circuit() is None

    @property
    def live_up(self) -> bool:
        return self._live_healthy is not None and self._live_healthy()

    async def publish(self) -> None:
        if self._closing:
            return
        upstream = self.logged_in and self.upstream_up
        circuit = self._note_circuit()
        callable_now = upstream and circuit is None
        if self._deployment is not None:
            await self._publish_login(upstream, circuit)
            await self._deployment.publish()
            return
        wanted = {
            SERVICE_OVERALL: SERVING if upstream else NOT_SERVING,
            SERVICE_TRADING: SERVING if upstream else NOT_SERVING,
            SERVICE_UPSTREAM: SERVING if callable_now else NOT_SERVING,
            SERVICE_CACHE: SERVING if self.cache_up else NOT_SERVING,
            SERVICE_LIVE: SERVING if self._live_healthy and self._live_healthy() else NOT_SERVING,
        }
        if self._login_service is not None:
            wanted[self._login_service] = wanted[SERVICE_OVERALL]
        for service, status in wanted.items():
            if self._published.get(service) != status:
                await self.servicer.set(service, status)
                self._published[service] = status
        self._set_up(circuit)

    async def _publish_login(self, upstream: bool, circuit: Circuit | None) -> None:
        if self._login_service is not None:
            status = SERVING if upstream else NOT_SERVING
            if self._published.get(self._login_service) != status:
                await self.servicer.set(self._login_service, status)
                self._published[self._login_service] = status
        self._set_up(circuit)

    def _set_up(self, circuit: Circuit | None) -> None:
        self._metrics.set_up("broker_login", self.logged_in)
        self._metrics.set_up("upstream", self.upstream_up and circuit is None)
        self._metrics.set_up("cache", self.cache_up)

    def _note_circuit(self) -> Circuit | None:
        """The open circuit, if any; logs each one once when it opens and when it closes."""
        circuit = self._circuit()
        reason = circuit.reason if circuit is not None else None
        if reason != self._circuit_reason:
            if circuit is not None:
                logger.warning(
                    "upstream circuit open (%s): no Tradovate calls for %.0f s; "
                    "live and cached reads go on",
                    circuit.reason,
                    circuit.retry_after,
                )
            else:
                logger.info(
                    "upstream circuit closed (%s): Tradovate calls resume", self._circuit_reason
                )
            self._circuit_reason = reason
        return circuit
