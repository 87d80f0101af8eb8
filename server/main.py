"""The composition root: build every object, start them, and stop them in order.

``Gateway`` owns the broker client, the cache, the read path, the gRPC server (with
health and reflection) and the metrics endpoint. Start-up binds the port first (health
NOT_SERVING), then logs in to Tradovate in the background and flips to SERVING.
Shutdown: health NOT_SERVING → drain live streams → ``server.stop(grace)`` → fan-outs,
live state, broker sockets and HTTP session, cache, metrics endpoint.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable
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
from trading_gateway.server.api.stream_across import (
    AcrossLoginsStreamHandler,
    one_login_resolver,
)
from trading_gateway.server.auth.keys import load_keyring
from trading_gateway.server.broker import AuthError, BrokerError, CaptchaRequired, TradovateClient
from trading_gateway.server.cache import Cache, CacheWatch, RedisCache, build_cache
from trading_gateway.server.config import GatewaySettings
from trading_gateway.server.deadline import Deadline
from trading_gateway.server.heap import freeze_long_lived
from trading_gateway.server.live.components import build_live
from trading_gateway.server.live_subsystem import LiveFactory, LiveSubsystem
from trading_gateway.server.login import (
    FatalStartupError,
    broker_settings,
    log_in_with_retries,
    shared_ip_pacer,
)
from trading_gateway.server.logins.spec import DEFAULT_LOGIN
from trading_gateway.server.observability.access_log import AccessLog
from trading_gateway.server.observability.metrics import Metrics, MetricsServer
from trading_gateway.server.observability.tracing import Tracing
from trading_gateway.server.reads.build import ReadPath
from trading_gateway.server.reads.fanout import UpstreamObserver
from trading_gateway.server.setting_error import SettingError

logger = logging.getLogger(__name__)

# How long a health PING of Redis (start-up, then every GATEWAY_CACHE_PING_INTERVAL_S) waits.
CACHE_PING_TIMEOUT_S = 1.0
# How long to wait for live state's first snapshot before freezing the heap anyway.
FREEZE_AFTER_SYNC_WAIT_S = 60.0


class _Observers:
    """Fans each upstream-call outcome out to metrics and the health monitor."""

    def __init__(self, *observers: UpstreamObserver) -> None:
        self._observers = observers

    def upstream_call(self, endpoint: str, outcome: str, seconds: float) -> None:
        for observer in self._observers:
            observer.upstream_call(endpoint, outcome, seconds)


class Gateway:
    """One running gateway. ``async with Gateway(settings) as gw:`` starts and stops it."""

    def __init__(
        self,
        settings: GatewaySettings,
        *,
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
        self._build()

    # ---------------------------------------------------------------- wiring
    def _build(self) -> None:
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
        self.ip_pacer = shared_ip_pacer(s)
        self.metrics.watch_ip_budget(self.ip_pacer.stats)
        self.broker = TradovateClient(
            broker_settings(s),
            request_hook=self.tracing.http if self.tracing is not None else None,
            ip_pacer=self.ip_pacer,
        )
        self.metrics.watch_upstream(self.broker.stats)
        self.live: LiveSubsystem | None = (
            self._live_factory(self.broker, s, self.metrics, DEFAULT_LOGIN)
            if self._live_factory
            else None
        )
        live_reads = self.live.reads if self.live else None
        self.health_servicer = health_aio.HealthServicer()
        self.health = HealthMonitor(
            self.health_servicer,
            probe=self._probe_upstream,
            cache_healthy=lambda: self.cache.healthy,
            metrics=self.metrics,
            interval=s.health_interval_s,
            probe_interval=s.upstream_probe_interval_s,
            failure_threshold=s.upstream_failure_threshold,
            live_healthy=self._live_healthy,
            circuit=self.broker.circuit,
        )
        self.read_path = ReadPath.build(
            s,
            broker=self.broker,
            cache=self.cache,
            live=live_reads,
            observer=_Observers(self.metrics, self.health),
            cache_observer=self.metrics,
            tracer=self.tracing,
        )
        self.read_cache = self.read_path.read_cache
        self.directory = self.read_path.directory
        self.positions_fanout = self.read_path.positions_fanout
        self.reads = self.read_path.service
        self.servicer = TradingServicer(
            self.reads,
            deadlines=DeadlinePolicy(
                default=s.default_deadline_s,
                maximum=s.max_deadline_s,
                margin=s.deadline_margin_ms / 1000,
            ),
            metrics=self.metrics,
            streams=self._stream_handler(self.live),
        )
        self.auth = self._build_auth()
        self.access_log = AccessLog() if s.access_log else None
        self.calls = CallWrapper(
            self.metrics, access_log=self.access_log, auth=self.auth, tracing=self.tracing
        )
        self.server: grpc.aio.Server | None = None
        self.metrics_server: MetricsServer | None = None
        self._login_task: asyncio.Task[None] | None = None
        self._serving = False
        self._stopped = False

    def _stream_handler(self, live: LiveSubsystem | None) -> AcrossLoginsStreamHandler | None:
        """StreamUpdates over the gateway's logins (one: the TRADOVATE_* shorthand's)."""
        if live is None:
            return None
        return AcrossLoginsStreamHandler(
            one_login_resolver(DEFAULT_LOGIN, live.resolver),
            lambda: {DEFAULT_LOGIN: live},
            status_of=account_status,
        )

    def _build_auth(self) -> ApiKeyAuth | None:
        """API keys from the settings (KeyFileError when they are invalid); None: auth off."""
        s = self.settings
        keys = load_keyring(s.api_keys_file, s.api_keys)
        if not keys:
            return None
        logger.info("API keys required: %d keys configured (%s)", len(keys), ", ".join(keys.names))
        # The one login the TRADOVATE_* variables configure.
        for warning in keys.unknown_logins([DEFAULT_LOGIN]):
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
        # Called by the cache (built before the health monitor, but only ever calls later).
        self.health.cache_changed(healthy)

    async def _check_cache(self) -> None:
        """Say once what the cache is; a Redis that does not answer is degraded, not fatal."""
        cache = self.cache
        if not isinstance(cache, RedisCache):
            logger.info("cache: in process memory (REDIS_URL is not set)")
            return
        failure = await cache.check(CACHE_PING_TIMEOUT_S, announce=False)
        if failure is None:
            logger.info("cache: Redis at %s (REDIS_URL) answers PING", cache.where)
            return
        logger.warning(
            "cache: Redis at %s (REDIS_URL) does not answer (%s); starting without it: "
            "reads go upstream and health %s is NOT_SERVING until Redis answers "
            "(PINGed every %g s). Check REDIS_URL and that Redis is running.",
            cache.where,
            failure,
            SERVICE_CACHE,
            self.settings.cache_ping_interval_s,
        )

    def _live_healthy(self) -> bool:
        return self.live is not None and self.live.healthy

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
        await self._check_cache()
        await self.health.start()
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
        self._login_task = asyncio.get_running_loop().create_task(self._login(), name="login")

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

    async def _login(self) -> None:
        try:
            await log_in_with_retries(self.broker, self.settings, self.reads.not_ready_because)
            await self._after_login()
        except (AuthError, CaptchaRequired) as exc:
            logger.error("Tradovate login failed for good: %s", exc)
            self._fail(FatalStartupError(str(exc)))
        except FatalStartupError as exc:
            logger.error("Tradovate login failed for good: %s", exc)
            self._fail(exc)
        except Exception as exc:  # a bug: say so instead of never becoming ready
            logger.exception("gateway start-up failed")
            self._fail(FatalStartupError(f"start-up failed: {exc!r}"))

    def _fail(self, exc: FatalStartupError) -> None:
        if not self.failed.done():
            self.failed.set_exception(exc)

    async def _after_login(self) -> None:
        self.read_cache.set_user(self.broker.user_id)
        try:
            accounts = await self.directory.refresh(
                Deadline.after(self.settings.upstream_timeout_s)
            )
            logger.info("logged in to Tradovate: %d accounts", len(accounts))
        except BrokerError as exc:
            logger.warning("logged in, but the account list failed for now: %s", exc)
        if self.live is not None:
            await self.live.start()
        self.reads.mark_ready()
        await self.health.set_logged_in(True)
        self.ready.set()
        if self.settings.gc_freeze:
            # What exists once the first snapshot is in (or the wait gave up) lives long.
            if self.live is not None:
                await self.live.wait_synced(Deadline.after(FREEZE_AFTER_SYNC_WAIT_S))
            freeze_long_lived()

    async def _probe_upstream(self) -> object:
        return await self.directory.refresh(
            Deadline.after(min(2.0, self.settings.upstream_timeout_s))
        )

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
        steps: list[Callable[[], Awaitable[object]]] = [self.health.enter_shutdown]
        if self.live is not None:
            steps.append(self.live.drain)
        if self.server is not None:
            server = self.server
            steps.append(lambda: server.stop(grace))
        steps += [
            self._close_reads,
            self.read_path.aclose,
            self.health.aclose,
        ]
        if self.live is not None:
            steps.append(self.live.aclose)
        if self.cache_watch is not None:
            steps.append(self.cache_watch.aclose)
        steps += [self.broker.aclose, self.cache.aclose]
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
        await _cancel(self._login_task)

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
