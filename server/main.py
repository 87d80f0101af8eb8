"""The composition root: build every object, start them, and stop them in order.

``Gateway`` owns the logins (server/logins: one ``LoginRuntime`` each, with its broker
client, live state, read path and health), the shared cache, the reads across logins,
the gRPC server (with health and reflection) and the metrics endpoint. Start-up binds
the port first (health NOT_SERVING), then logs every login in to Tradovate in the
background; the gateway is SERVING while at least one login is.
Shutdown: health NOT_SERVING → drain every login's streams → ``server.stop(grace)`` →
each login's fan-outs, live state, broker sockets and HTTP session → cache → metrics.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from types import TracebackType
from typing import Any, Self

import grpc
from grpc_health.v1.health import aio as health_aio

from trading_gateway.server.api.auth import ApiKeyAuth, build_auth
from trading_gateway.server.api.calls import CallWrapper
from trading_gateway.server.api.health import SERVICE_CACHE, HealthMonitor
from trading_gateway.server.api.server import build_server
from trading_gateway.server.api.servicer import DeadlinePolicy, TradingServicer
from trading_gateway.server.api.status import account_status
from trading_gateway.server.api.stream_across import AcrossLoginsStreamHandler
from trading_gateway.server.auth.keys import load_keyring
from trading_gateway.server.broker import TradovateClient
from trading_gateway.server.cache import Cache, CacheWatch, build_cache
from trading_gateway.server.cache.announce import announce_cache
from trading_gateway.server.config import GatewaySettings
from trading_gateway.server.deadline import Deadline
from trading_gateway.server.heap import freeze_long_lived
from trading_gateway.server.live.components import build_live
from trading_gateway.server.live_subsystem import LiveFactory, LiveSubsystem
from trading_gateway.server.login import FatalStartupError, shared_ip_pacer
from trading_gateway.server.logins import streams
from trading_gateway.server.logins.deployment import Deployment, LoginChanges
from trading_gateway.server.logins.health import DeploymentHealth
from trading_gateway.server.logins.load import load_logins
from trading_gateway.server.logins.reads import DeploymentReads
from trading_gateway.server.logins.runtime import LoginRuntime
from trading_gateway.server.logins.spec import LoginSpec
from trading_gateway.server.observability.access_log import AccessLog
from trading_gateway.server.observability.metrics import Metrics, MetricsServer
from trading_gateway.server.observability.tracing import Tracing
from trading_gateway.server.reads.accounts import AccountDirectory
from trading_gateway.server.reads.build import ReadPath
from trading_gateway.server.reads.fanout import FanOut
from trading_gateway.server.reads.records import PositionsData
from trading_gateway.server.replicas.roles import ReplicaRoles
from trading_gateway.server.setting_error import SettingError

logger = logging.getLogger(__name__)

# How long a health PING of Redis (start-up, then every GATEWAY_CACHE_PING_INTERVAL_S) waits.
CACHE_PING_TIMEOUT_S = 1.0
# How long to wait for live state's first snapshot before freezing the heap anyway.
FREEZE_AFTER_SYNC_WAIT_S = 60.0


class Gateway:
    """One running gateway. ``async with Gateway(settings) as gw:`` starts and stops it.

    ``logins``: the Tradovate logins to run (tests); None reads them with
    ``load_logins(settings)`` (the ``TRADOVATE_*`` shorthand: one login, "default").
    """

    def __init__(
        self,
        settings: GatewaySettings,
        *,
        logins: Sequence[LoginSpec] | None = None,
        live_factory: LiveFactory | None = None,
        metrics_optional: bool = False,
        tracing: Tracing | None = None,
    ) -> None:
        self.settings = settings
        self.metrics = Metrics()
        # From the OTEL_* variables (server/observability/tracing.py); None: off.
        self.tracing = tracing
        self.ready = asyncio.Event()
        self.failed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.port = 0
        self.metrics_port: int | None = None
        self._metrics_optional = metrics_optional
        self._live_factory = live_factory or (
            functools.partial(build_live, status_of=account_status)
            if settings.live_enabled
            else None
        )
        specs = list(logins) if logins is not None else load_logins(settings)
        if not specs:
            raise SettingError("logins", "[]", "the gateway needs at least one login", "add one")
        # One login at start (the TRADOVATE_* shorthand): bad credentials end the process,
        # as they always have. With several, a failed login marks only its own accounts.
        self._fatal_login_failure = len(specs) == 1
        self._build(specs)

    # ---------------------------------------------------------------- wiring
    def _build(self, specs: Sequence[LoginSpec]) -> None:
        s = self.settings
        self.cache: Cache = build_cache(
            s.redis_url,
            op_timeout=s.cache_timeout_ms / 1000,
            ping_timeout=CACHE_PING_TIMEOUT_S,
            on_state_change=self._cache_changed,
        )
        # Only Redis can go away; it is PINGed whether reads use it or not.
        self.cache_watch: CacheWatch | None = (
            CacheWatch(self.cache, interval=s.cache_ping_interval_s, timeout=CACHE_PING_TIMEOUT_S)
            if self.cache.backend == "redis"
            else None
        )
        # The one per-IP budget every login's REST calls also take from.
        self.ip_pacer = shared_ip_pacer(s)
        self.metrics.watch_ip_budget(self.ip_pacer.stats)
        self.health_servicer = health_aio.HealthServicer()
        self.deployment_health = DeploymentHealth(
            self.health_servicer,
            monitors=lambda: [runtime.health for runtime in self.deployment],
            cache_healthy=lambda: self.cache.healthy,
        )
        # GATEWAY_REPLICAS=redis: a lease per login picks the replica holding its session.
        self.replicas: ReplicaRoles | None = (
            ReplicaRoles(s, self._role_changed) if s.replicas == "redis" else None
        )
        self.deployment = Deployment(specs, self._runtime, self.deployment_health)
        resolve = streams.resolver(self.deployment)
        self.reads = DeploymentReads(lambda: self.deployment.logins)
        self.servicer = TradingServicer(
            self.reads,
            deadlines=DeadlinePolicy(
                default=s.default_deadline_s,
                maximum=s.max_deadline_s,
                margin=s.deadline_margin_ms / 1000,
            ),
            metrics=self.metrics,
            streams=(
                AcrossLoginsStreamHandler(
                    resolve,
                    streams.live_sources(self.deployment),
                    status_of=account_status,
                )
                # Not the first login's live state: under replicas it may follow at first.
                if self._live_factory is not None
                else None
            ),
        )
        self.auth = self._build_auth()
        self.access_log = AccessLog() if s.access_log else None
        self.calls = CallWrapper(
            self.metrics, access_log=self.access_log, auth=self.auth, tracing=self.tracing
        )
        self.server: grpc.aio.Server | None = None
        self.metrics_server: MetricsServer | None = None
        self._freeze_task: asyncio.Task[None] | None = None
        self._serving = False
        self._stopped = False

    def _runtime(self, spec: LoginSpec) -> LoginRuntime:
        return LoginRuntime(
            spec,
            self.settings,
            cache=self.cache,
            metrics=self.metrics,
            health=self.deployment_health,
            live_factory=self._live_factory,
            ip_pacer=self.ip_pacer,
            tracing=self.tracing,
            on_ready=self._login_ready,
            on_failed=self._login_failed,
            replica=self.replicas.role(spec.name) if self.replicas is not None else None,
        )

    async def _role_changed(self, name: str) -> None:
        """This replica took or lost login ``name``'s lease: build it again in its role."""
        runtime = self.deployment.logins.get(name)
        if runtime is None or self._stopped or self.replicas is None:
            return
        if runtime.term is self.replicas.role(name).keeper.term:
            return  # already built for this term (or as a follower, for none)
        await self.deployment.rebuild(name)

    # ---------------------------------------------------------------- logins
    @property
    def logins(self) -> Mapping[str, LoginRuntime]:
        """The deployment's logins now, by name, in order (a reload changes it)."""
        return self.deployment.logins

    # The first login's parts, under the names the single-login gateway had (its live
    # state serves StreamUpdates).
    @property
    def broker(self) -> TradovateClient:
        return self.deployment.first.broker

    @property
    def live(self) -> LiveSubsystem | None:
        return self.deployment.first.live

    @property
    def health(self) -> HealthMonitor:
        return self.deployment.first.health

    @property
    def read_path(self) -> ReadPath:
        return self.deployment.first.read_path

    @property
    def directory(self) -> AccountDirectory:
        return self.read_path.directory

    @property
    def positions_fanout(self) -> FanOut[PositionsData]:
        return self.read_path.positions_fanout

    async def apply_logins(self, specs: Sequence[LoginSpec]) -> LoginChanges:
        """Make the deployment ``specs``: start new logins, close removed ones (their
        streams end), replace changed ones; the others go on untouched."""
        self._fatal_login_failure = False
        changes = await self.deployment.apply(specs)
        if self.replicas is not None:
            for name in changes.removed:
                await self.replicas.forget(name)
        logger.info("logins reloaded: %s", changes)
        return changes

    def _login_ready(self, runtime: LoginRuntime) -> None:
        if self.ready.is_set():
            return
        self.ready.set()
        if self.settings.gc_freeze:
            self._freeze_task = asyncio.get_running_loop().create_task(
                self._freeze_after_sync(runtime), name="gc-freeze"
            )

    def _login_failed(self, runtime: LoginRuntime, exc: FatalStartupError) -> None:
        if self._fatal_login_failure:
            self._fail(exc)

    async def _freeze_after_sync(self, runtime: LoginRuntime) -> None:
        # What exists once the first snapshot is in (or the wait gave up) lives long.
        if runtime.live is not None:
            await runtime.live.wait_synced(Deadline.after(FREEZE_AFTER_SYNC_WAIT_S))
        freeze_long_lived()

    def _build_auth(self) -> ApiKeyAuth | None:
        """API keys from the settings (KeyFileError when they are invalid); None: auth off."""
        s = self.settings
        keys = load_keyring(s.api_keys_file, s.api_keys)
        if not keys:
            return None
        logger.info("API keys required: %d keys configured (%s)", len(keys), ", ".join(keys.names))
        for warning in keys.unknown_logins(list(self.deployment.logins)):
            logger.warning("%s", warning)
        return build_auth(
            keys,
            exempt_health_reflection=s.auth_exempt_health_reflection,
            max_failures=s.auth_max_failures,
            window=s.auth_failure_window_s,
            lockout=s.auth_lockout_s,
            max_lockout=s.auth_max_lockout_s,
            max_peers=s.auth_tracked_peers,
        )

    def _cache_changed(self, healthy: bool) -> None:
        # Called by the cache (built before the health monitors, but only ever calls later).
        for runtime in self.deployment:
            runtime.health.cache_changed(healthy)

    # ---------------------------------------------------------------- lifecycle
    @property
    def address(self) -> str:
        host = self.settings.listen.rpartition(":")[0]
        return f"{host}:{self.port}"

    async def start(self) -> None:
        """Bind both ports, serve (NOT_SERVING), and log in in the background.

        Both ports are bound before anything is logged, so a port in use is the only
        thing a failed start says (a SettingError: `serve` prints it as one line).
        """
        server, self.port = build_server(
            self.settings,
            self.servicer,
            self.health_servicer,
            self.calls.wrap,
        )
        self.server = server
        await self._start_metrics()
        if self.access_log is not None:
            self.access_log.start()
        await announce_cache(
            self.cache,
            ping_timeout=CACHE_PING_TIMEOUT_S,
            ping_interval=self.settings.cache_ping_interval_s,
            health_service=SERVICE_CACHE,
        )
        await self.deployment_health.publish()  # NOT_SERVING until a login is ready
        if self.cache_watch is not None:
            self.cache_watch.start()
        await server.start()
        self._serving = True
        s = self.settings
        transport = "mTLS" if s.tls_client_ca_file else "TLS" if s.tls_enabled else "plaintext"
        logger.info(
            "gRPC on %s (%s, %s; health NOT_SERVING until logged in)",
            self.address,
            transport,
            "API keys required" if self.auth is not None else "no API keys",
        )
        if warning := s.md_url_warning():
            logger.warning("%s", warning)
        await self.deployment.start()
        if self.replicas is not None:
            self.replicas.start()

    async def _start_metrics(self) -> None:
        port = self.settings.metrics_port
        if port == 0:
            return
        metrics_server = MetricsServer(self.metrics, self.settings.metrics_host, port)
        try:
            self.metrics_port = await metrics_server.start()
        except OSError as exc:
            error = SettingError(
                "GATEWAY_METRICS_PORT (--metrics-port)",
                str(port),
                f"cannot serve metrics on {self.settings.metrics_host}:{port}: {exc.strerror}",
                "stop the other process, pick another port (or GATEWAY_METRICS_HOST), "
                "or set 0 to disable metrics",
            )
            if not self._metrics_optional:
                raise error from None
            logger.warning("%s; continuing without metrics", error)
            return
        self.metrics_server = metrics_server

    def _fail(self, exc: FatalStartupError) -> None:
        if not self.failed.done():
            self.failed.set_exception(exc)

    async def wait_ready(self, seconds: float) -> None:
        """Until logged in; raises the fatal start-up error if login cannot succeed."""
        ready: asyncio.Future[Any] = asyncio.ensure_future(self.ready.wait())
        failed: asyncio.Future[Any] = self.failed
        try:
            done, _ = await asyncio.wait(
                {ready, failed}, timeout=seconds, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            ready.cancel()
        if self.failed in done:
            self.failed.result()
        if not self.ready.is_set():
            raise TimeoutError(f"the gateway did not log in to Tradovate within {seconds:.0f} s")

    async def stop(self, grace: float | None = None) -> None:
        """Shut down in order; safe to call twice."""
        if self._stopped:
            return
        self._stopped = True
        grace = self.settings.grace_s if grace is None else grace
        if self.replicas is not None:
            await self.replicas.stop_changes()  # no role change rebuilds a login from now on
        runtimes = list(self.deployment)
        steps: list[Callable[[], Awaitable[object]]] = [self.deployment_health.enter_shutdown]
        steps += [runtime.drain for runtime in runtimes]
        if self.server is not None:
            server = self.server
            steps.append(lambda: server.stop(grace))
        steps.append(self._close_reads)
        steps += [runtime.aclose for runtime in runtimes]
        if self.replicas is not None:
            steps.append(self.replicas.aclose)  # after the holder closed: then release
        if self.cache_watch is not None:
            steps.append(self.cache_watch.aclose)
        steps.append(self.cache.aclose)
        if self.metrics_server is not None:
            steps.append(self.metrics_server.aclose)
        if self.access_log is not None:
            steps.append(self.access_log.aclose)  # last: every call has ended by now
        if self.tracing is not None:
            steps.append(self._flush_traces)
        for step in steps:
            # Every step runs even when an earlier one fails: a failing closer must not
            # leak the broker's sockets, its HTTP session or the Redis pool behind it.
            try:
                await step()
            except Exception:
                logger.exception("shutdown step %s failed", getattr(step, "__qualname__", step))
        if not self.failed.done():
            self.failed.cancel()
        elif not self.failed.cancelled():
            self.failed.exception()  # retrieved: the caller may never have waited on it
        # A start that failed (a port in use) says so once, where it is reported.
        logger.log(logging.INFO if self._serving else logging.DEBUG, "gateway stopped")

    async def _flush_traces(self) -> None:
        tracing = self.tracing
        if tracing is not None:  # exports what is left; may block on the exporter: a thread
            await asyncio.to_thread(tracing.shutdown)

    async def _close_reads(self) -> None:
        self.reads.mark_closing()
        await _cancel(self._freeze_task)

    async def __aenter__(self) -> Self:
        try:
            await self.start()
        except BaseException:
            await self.stop(0)
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()


async def _cancel(task: asyncio.Task[None] | None) -> None:
    if task is not None and not task.done():
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
