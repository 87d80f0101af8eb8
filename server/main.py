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
from collections.abc import Awaitable, Callable, Mapping
from types import TracebackType
from typing import Any, Protocol, Self, TypeVar

import grpc
from grpc_health.v1.health import aio as health_aio

from server.accounts import AccountDirectory
from server.api.auth import ApiKeyAuth, build_auth
from server.api.calls import CallWrapper
from server.api.health import SERVICE_CACHE, HealthMonitor
from server.api.server import build_server
from server.api.servicer import DeadlinePolicy, TradingServicer
from server.api.status import account_status
from server.api.stream_handler import AccountResolver, LiveStreamHandler, StreamSessions
from server.auth.keys import load_keyring
from server.broker import AuthError, BrokerError, BrokerSettings, CaptchaRequired, TradovateClient
from server.broker.deadline import Deadline
from server.broker.schemas import Account
from server.cache import Cache, CacheWatch, RedisCache, build_cache
from server.config import GatewaySettings
from server.fanout import FanOut, FanOutSettings, Loader, UpstreamObserver, observed_call
from server.heap import freeze_long_lived
from server.live.components import build_live
from server.loaders import Loaders
from server.login_problem import login_problem
from server.observability.access_log import AccessLog
from server.observability.metrics import Metrics, MetricsServer
from server.readcache import ReadCache
from server.reads import KindReader, LiveSource, ReadService
from server.records import Fetched, Kind
from server.setting_error import SettingError

logger = logging.getLogger(__name__)

T = TypeVar("T")

LOGIN_RETRY_INITIAL = 1.0
LOGIN_RETRY_MAX = 30.0
# Login attempts in a row answered, but not as Tradovate (a wrong TRADOVATE_URL), before
# start-up stops: a few, so one bad answer from a proxy does not end it.
LOGIN_MISCONFIGURED_ATTEMPTS = 3
# How long a health PING of Redis (start-up, then every GATEWAY_CACHE_PING_INTERVAL_S) waits.
CACHE_PING_TIMEOUT_S = 1.0
# How long to wait for live state's first snapshot before freezing the heap anyway.
FREEZE_AFTER_SYNC_WAIT_S = 60.0


class LiveComponents(Protocol):
    """The seam for server/live: live state for reads, and stream sessions with the
    resolver of their selectors (server/api/stream_handler.py runs them over grpc)."""

    @property
    def source(self) -> LiveSource | None: ...

    @property
    def streams(self) -> StreamSessions: ...

    @property
    def resolver(self) -> AccountResolver: ...

    @property
    def healthy(self) -> bool:
        """True while the user-sync socket is connected and its state is applied."""
        ...

    async def start(self) -> None:
        """Called once the broker is logged in."""
        ...

    async def wait_synced(self, timeout: float) -> bool:  # noqa: ASYNC109
        """Until live state has its first snapshot (True), or ``timeout`` passes."""
        ...

    async def drain(self) -> None:
        """End open streams with a resumable status (before the server stops)."""
        ...

    async def aclose(self) -> None: ...


LiveFactory = Callable[[TradovateClient, GatewaySettings, Metrics], LiveComponents]


class FatalStartupError(RuntimeError):
    """The gateway cannot work with this configuration (bad credentials, captcha)."""


def broker_settings(settings: GatewaySettings) -> BrokerSettings:
    password = settings.tradovate_password
    secret = settings.tradovate_secret
    cid = settings.tradovate_cid or "0"
    return BrokerSettings(
        rest_url=settings.rest_url,
        ws_url=settings.tradovate_ws_url or "",
        md_ws_url=settings.md_ws_url,
        username=settings.tradovate_username or "",
        password=password.get_secret_value() if password else "",
        app_id=settings.tradovate_app_id or "trading-gateway",
        app_version=settings.tradovate_app_version or "1.0",
        cid=int(cid) if cid.isdigit() else cid,
        secret=secret.get_secret_value() if secret else "",
        device_id=settings.tradovate_device_id,
        request_timeout=settings.upstream_timeout_s,
        rate_per_second=settings.upstream_rate_per_second,
        rate_burst=settings.upstream_rate_burst,
        rate_limited_backoff=settings.upstream_rate_limited_backoff_s,
        reconnect_initial=settings.ws_reconnect_initial_s,
        reconnect_max=settings.ws_reconnect_max_s,
        reconnect_stable_after=settings.ws_reconnect_stable_s,
    )


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
    ) -> None:
        self.settings = settings
        self.metrics = Metrics()
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
        self.broker = TradovateClient(broker_settings(s))
        self.live: LiveComponents | None = (
            self._live_factory(self.broker, s, self.metrics) if self._live_factory else None
        )
        live_source = self.live.source if self.live else None
        ttls = {kind: s.ttl_for(kind.value) for kind in Kind}
        self.read_cache = ReadCache(
            self.cache,
            env=s.tradovate_env,
            ttls=ttls,
            # No read waits longer than this. The store gives up at 80% of it by itself,
            # so it still sees its own timeouts (and opens its circuit) first.
            timeout=s.cache_timeout_ms / 1000,
            observer=self.metrics,
            stale_window=s.stale_window_s,
        )
        self.loaders = Loaders(
            self.broker,
            chunk_size=s.batch_size,
            terminal_cache_size=s.terminal_order_cache_size,
            concurrency=s.fanout_concurrency,
        )
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
        observer = _Observers(self.metrics, self.health)
        limiter = asyncio.Semaphore(s.fanout_concurrency)
        self.positions_fanout = self._fanout(
            Kind.POSITIONS, self.loaders.positions, limiter, observer
        )
        self.orders_fanout = self._fanout(Kind.ORDERS, self.loaders.orders, limiter, observer)
        # No batch form upstream for balances: one call per account (bounded and shared).
        self.balances_fanout = self._fanout(
            Kind.BALANCES, self.loaders.balances, limiter, observer, batch_size=1
        )
        self._build_reads(live_source, observer)
        self.servicer = TradingServicer(
            self.reads,
            deadlines=DeadlinePolicy(
                default=s.default_deadline_s,
                maximum=s.max_deadline_s,
                margin=s.deadline_margin_ms / 1000,
            ),
            metrics=self.metrics,
            streams=(
                LiveStreamHandler(self.live.streams, self.live.resolver) if self.live else None
            ),
        )
        self.auth = self._build_auth()
        self.access_log = AccessLog() if s.access_log else None
        self.calls = CallWrapper(self.metrics, access_log=self.access_log, auth=self.auth)
        self.server: grpc.aio.Server | None = None
        self.metrics_server: MetricsServer | None = None
        self._login_task: asyncio.Task[None] | None = None
        self._serving = False
        self._stopped = False

    def _build_auth(self) -> ApiKeyAuth | None:
        """API keys from the settings (KeyFileError when they are invalid); None: auth off."""
        s = self.settings
        keys = load_keyring(s.api_keys_file, s.api_keys)
        if not keys:
            return None
        logger.info("API keys required: %d keys configured (%s)", len(keys), ", ".join(keys.names))
        return build_auth(
            keys,
            exempt_health_reflection=s.auth_exempt_health_reflection,
            max_failures=s.auth_max_failures,
            window=s.auth_failure_window_s,
            lockout=s.auth_lockout_s,
            max_lockout=s.auth_max_lockout_s,
            max_peers=s.auth_tracked_peers,
        )

    def _build_reads(self, live_source: LiveSource | None, observer: UpstreamObserver) -> None:
        s = self.settings

        async def load_accounts(deadline: Deadline) -> list[Account]:
            return await observed_call(observer, "accounts", self.loaders.accounts(deadline))

        self.directory = AccountDirectory(
            load_accounts,
            ttl=s.ttl_accounts_s,
            max_per_request=s.max_accounts_per_request,
            refresh_timeout=s.upstream_timeout_s,
            cache_read=self.read_cache.get_accounts,
            cache_write=self.read_cache.put_accounts,
        )
        self.reads = ReadService(
            self.directory,
            positions=KindReader(
                Kind.POSITIONS, self.positions_fanout, self.read_cache, live_source
            ),
            orders=KindReader(Kind.ORDERS, self.orders_fanout, self.read_cache, live_source),
            balances=KindReader(Kind.BALANCES, self.balances_fanout, self.read_cache, live_source),
            live=live_source,
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

    def _fanout(
        self,
        kind: Kind,
        load: Loader[T],
        limiter: asyncio.Semaphore,
        observer: UpstreamObserver,
        *,
        batch_size: int | None = None,
    ) -> FanOut[T]:
        s = self.settings
        settings = FanOutSettings(
            batch_size=batch_size or s.batch_size,
            hedge_min=s.hedge_min_ms / 1000,
            hedge_initial=s.hedge_initial_ms / 1000,
            hedge_factor=s.hedge_factor,
            cooldown=s.isolation_cooldown_s,
        )

        async def sink(entries: Mapping[int, Fetched[T]]) -> None:
            await self.read_cache.put_many(kind, entries)

        return FanOut(
            kind.value,
            load,
            settings=settings,
            limiter=limiter,
            concurrency=s.fanout_concurrency,
            observer=observer,
            sink=sink,
            held_back=lambda: self.broker.penalized_for,
        )

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
            await self._log_in_with_retries()
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

    async def _log_in_with_retries(self) -> None:
        """Log in, retrying what looks transient (server/login_problem.py).

        A URL that answers, but not as Tradovate, ends start-up after
        LOGIN_MISCONFIGURED_ATTEMPTS attempts in a row; one that does not answer is
        retried for as long as it takes, and callers are told why they wait.
        """
        delay = LOGIN_RETRY_INITIAL
        misconfigured = 0
        while True:
            try:
                await self.broker.start(timeout=self.settings.upstream_timeout_s)
                self.reads.not_ready_because(None)
                return
            except (AuthError, CaptchaRequired):
                raise
            except BrokerError as exc:
                problem = login_problem(self.settings, exc)
                misconfigured = misconfigured + 1 if problem.misconfigured else 0
                if misconfigured >= LOGIN_MISCONFIGURED_ATTEMPTS:
                    raise FatalStartupError(
                        f"{problem.message} (after {misconfigured} attempts)"
                    ) from None
                self.reads.not_ready_because(problem.message)
                # A penalty, 429 or 423 says how long to stay away; honour it.
                wait = max(delay, getattr(exc, "retry_after", None) or 0.0)
                logger.warning(
                    "Tradovate login failed: %s; next try in %.0f s", problem.message, wait
                )
                await asyncio.sleep(wait)
                delay = min(delay * 2, LOGIN_RETRY_MAX)

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
                await self.live.wait_synced(FREEZE_AFTER_SYNC_WAIT_S)
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
            self.positions_fanout.aclose,
            self.orders_fanout.aclose,
            self.balances_fanout.aclose,
            self.directory.aclose,
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
