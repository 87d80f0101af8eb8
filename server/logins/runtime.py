"""One login at run time: its broker client, live state, read path, health and login task.

``LoginRuntime`` is built from a ``LoginSpec`` and the gateway's shared parts (settings,
cache, metrics, the health servicer). ``start()`` logs in in the background (retrying
what looks transient, like the single-login gateway); its ``state`` says whether it is
logging in, ready, or failed for good (and why). Close order: ``drain()`` ends its
streams with a resumable status, then ``aclose()``: reads refuse new work, the login
task, the read path, health, live state, and last the broker's sockets and HTTP session.
"""

from __future__ import annotations

import asyncio
import enum
import logging
from collections.abc import Callable
from typing import cast

from trading_gateway.server.api.health import HealthMonitor
from trading_gateway.server.broker import (
    AuthError,
    BrokerError,
    CaptchaRequired,
    IpPacer,
    SharedToken,
    TradovateClient,
)
from trading_gateway.server.cache import Cache
from trading_gateway.server.config import GatewaySettings
from trading_gateway.server.deadline import Deadline
from trading_gateway.server.errors import LoginFailed, LoginUnavailable
from trading_gateway.server.live_subsystem import LiveFactory, LiveSubsystem
from trading_gateway.server.login import FatalStartupError, broker_settings, log_in_with_retries
from trading_gateway.server.logins.health import DeploymentHealth, login_service
from trading_gateway.server.logins.spec import LoginSpec
from trading_gateway.server.observability.metrics import Metrics
from trading_gateway.server.observability.tracing import Tracing
from trading_gateway.server.reads.build import ReadPath
from trading_gateway.server.reads.fanout import UpstreamObserver
from trading_gateway.server.reads.service import ReadService
from trading_gateway.server.replicas.delta_log import DeltaLogKeys
from trading_gateway.server.replicas.fence import Fenced
from trading_gateway.server.replicas.lease import LeaseTerm, LeaseUnavailable, NotHeld
from trading_gateway.server.replicas.login_role import LoginRole
from trading_gateway.server.replicas.replicated_live import BindableLive, ReplicatedLive
from trading_gateway.server.replicas.token_errors import TokenStoreUnavailable
from trading_gateway.server.replicas.token_sharing import TokenPublisher

logger = logging.getLogger(__name__)

# A follower's start reads only Redis (the holder's token): it retries sooner than a login.
FOLLOWER_RETRY_MAX_S = 2.0
# A new holder that cannot reach Redis to confirm its term or read the token tries again.
TAKE_OVER_RETRY_S = 0.2


class LoginState(enum.Enum):
    LOGGING_IN = "logging in"
    READY = "ready"
    FAILED = "failed"


class _Observers:
    """Fans each upstream-call outcome out to metrics and the login's health monitor."""

    def __init__(self, *observers: UpstreamObserver) -> None:
        self._observers = observers

    def upstream_call(self, endpoint: str, outcome: str, seconds: float) -> None:
        for observer in self._observers:
            observer.upstream_call(endpoint, outcome, seconds)


# Told once when a login is ready, and when it has failed for good.
OnReady = Callable[["LoginRuntime"], None]
OnFailed = Callable[["LoginRuntime", FatalStartupError], None]


class LoginRuntime:
    """Everything one Tradovate login runs; see the module docstring for its lifecycle."""

    def __init__(
        self,
        spec: LoginSpec,
        settings: GatewaySettings,
        *,
        cache: Cache,
        metrics: Metrics,
        health: DeploymentHealth,
        live_factory: LiveFactory | None,
        ip_pacer: IpPacer | None = None,
        tracing: Tracing | None = None,
        on_ready: OnReady | None = None,
        on_failed: OnFailed | None = None,
        replica: LoginRole | None = None,
    ) -> None:
        """``replica``: this login's role under GATEWAY_REPLICAS=redis (login_role.py),
        read once here: the holder logs in (or takes the shared token over), opens the
        sockets and writes the login's delta log; a follower reads the holder's token, opens
        no session and no socket, and mirrors the live state from the log. The gateway
        builds a new runtime when the role changes; the live state of a follower passes to
        its successor (``hand_over``), so its streams go on."""
        self.spec = spec
        self.replica = replica
        self.term: LeaseTerm | None = replica.keeper.term if replica is not None else None
        self.follower = replica is not None and self.term is None
        self._publisher: TokenPublisher | None = None
        self.settings = settings
        self.state = LoginState.LOGGING_IN
        self.why: BaseException | None = None
        self.ready = asyncio.Event()
        self._on_ready = on_ready
        self._on_failed = on_failed
        self.broker = TradovateClient(
            broker_settings(spec, settings),
            request_hook=tracing.http if tracing is not None else None,
            ip_pacer=ip_pacer,
            token_source=replica.token_source if replica is not None and self.follower else None,
        )
        self._metrics = metrics
        metrics.watch_upstream(self.broker.stats, login=spec.name)
        self._handing_over = False
        self.live: LiveSubsystem | None = self._live(live_factory, metrics)
        self.health = HealthMonitor(
            health.servicer,
            probe=self._probe_upstream,
            cache_healthy=lambda: cache.healthy,
            metrics=metrics,
            interval=settings.health_interval_s,
            probe_interval=settings.upstream_probe_interval_s,
            failure_threshold=settings.upstream_failure_threshold,
            live_healthy=self._live_healthy,
            circuit=self.broker.circuit,
            login=spec.name,
            login_service=login_service(spec.name),
            deployment=health,
        )
        self.read_path = ReadPath.build(
            settings,
            broker=self.broker,
            cache=cache,
            live=self.live.reads if self.live else None,
            observer=_Observers(metrics.login_observer(spec.name), self.health),
            cache_observer=metrics,
            tracer=tracing,
            login=spec.name,
        )
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        self._replacing = False
        self._waiting_why: str | None = None

    def _live(self, factory: LiveFactory | None, metrics: Metrics) -> LiveSubsystem | None:
        if factory is None:
            return None
        replica = self.replica
        if replica is None:
            return factory(self.broker, self.settings, metrics, self.name)
        shared = replica.live
        if shared is None or shared.closed:
            inner = factory(self.broker, self.settings, metrics, self.name)
            settings = self.settings
            shared = replica.live = ReplicatedLive(
                cast(BindableLive, inner),
                redis_url=settings.redis_url or "",
                keys=DeltaLogKeys.for_login(settings.deployment, self.name),
                capacity=settings.live_replay_capacity,
                catch_up_s=settings.lease_ttl_s,
                on_refused=replica.lease.drop,
            )
        shared.bind(self.broker, metrics, self.term)
        return shared

    def hand_over(self) -> None:
        """This runtime is being rebuilt for a new role: a follower's live state (and its
        streams) passes to the successor instead of closing."""
        self._handing_over = True

    def _keeps_live(self) -> bool:
        """A live state that never wrote the log (a follower's, or a holder's whose
        takeover did not get that far) is still the replicated state: it passes on."""
        live = self.live
        return self._handing_over and isinstance(live, ReplicatedLive) and live.journal is None

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def reads(self) -> ReadService:
        return self.read_path.service

    def unavailable(self) -> BaseException | None:
        """None while ready; else why its accounts cannot be answered now."""
        if self._replacing:
            return LoginUnavailable(
                [self.name], "a reload changed its configuration; it is being restarted"
            )
        if self._closed:
            return LoginUnavailable([self.name], "it was removed from the gateway's logins")
        if self.state is LoginState.READY:
            return None
        if self.state is LoginState.FAILED:
            if isinstance(self.why, AuthError):
                return LoginFailed(self.name, str(self.why))
            return LoginUnavailable([self.name], f"its login failed: {self.why}")
        return LoginUnavailable(
            [self.name], f"still logging in: {self._waiting_why or 'first try'}"
        )

    def _live_healthy(self) -> bool:
        return self.live is not None and self.live.healthy

    async def _probe_upstream(self) -> object:
        return await self.read_path.directory.refresh(
            Deadline.after(min(2.0, self.settings.upstream_timeout_s))
        )

    # ---------------------------------------------------------------- lifecycle
    async def start(self) -> None:
        """Publish its health (NOT_SERVING) and log in in the background."""
        await self.health.start()
        self._task = asyncio.get_running_loop().create_task(
            self._login(), name=f"login:{self.name}"
        )

    def _waiting(self, why: str | None) -> None:
        self._waiting_why = why
        self.reads.not_ready_because(why)

    async def _login(self) -> None:
        try:
            reuse = await self._take_over()
            await log_in_with_retries(
                self.broker,
                self.settings,
                self._waiting,
                self.spec,
                reuse=reuse,
                retry_max=FOLLOWER_RETRY_MAX_S if self.follower else None,
            )
            self._publish()
            await self._after_login()
        except (Fenced, NotHeld) as exc:
            # The term ended before the session was opened: the role's on_lost has the
            # gateway build this login again as a follower; open nothing meanwhile.
            self._waiting(f"this replica lost the login's lease while taking it over: {exc}")
            logger.warning("login %r: not taking the session over: %s", self.name, exc)
        except (AuthError, CaptchaRequired) as exc:
            self._failed(exc, FatalStartupError(str(exc)))
        except FatalStartupError as exc:
            self._failed(exc, exc)
        except Exception as exc:  # a bug: say so instead of never becoming ready
            logger.exception("login %s: start-up failed", self.name)
            self._failed(exc, FatalStartupError(f"start-up failed: {exc!r}"))

    async def _take_over(self) -> SharedToken | None:
        """As the lease holder: confirm the term, then the previous holder's live token.

        A Redis that cannot answer is retried while the term lasts (when it ends, the
        gateway rebuilds this login as a follower): neither an unconfirmed term nor a
        token nobody could read may open a session.
        """
        replica = self.replica
        if replica is None or self.term is None:
            return None
        while True:
            try:
                await replica.confirm()
                return await replica.shared_token(Deadline.after(self.settings.upstream_timeout_s))
            except (LeaseUnavailable, TokenStoreUnavailable) as exc:
                self._waiting(f"taking the login's session over waits for Redis: {exc}")
                await asyncio.sleep(TAKE_OVER_RETRY_S)

    def _publish(self) -> None:
        """Remember every token of the session (both roles); the holder publishes them."""
        replica = self.replica
        if replica is None:
            return
        manager = self.broker.token_manager
        manager.add_listener(replica.remember)
        if manager.current is not None:
            replica.remember(manager.current)
        if self.term is not None:
            self._publisher = replica.publisher(self.term)
            self._publisher.attach(manager)

    def _failed(self, why: BaseException, fatal: FatalStartupError) -> None:
        logger.error("Tradovate login %r failed for good: %s", self.name, why)
        self.state = LoginState.FAILED
        self.why = why
        if self._on_failed is not None:
            self._on_failed(self, fatal)

    async def _after_login(self) -> None:
        self.read_path.read_cache.set_user(self.broker.user_id)
        try:
            accounts = await self.read_path.directory.refresh(
                Deadline.after(self.settings.upstream_timeout_s)
            )
            logger.info("login %r logged in to Tradovate: %d accounts", self.name, len(accounts))
        except BrokerError as exc:
            logger.warning(
                "login %r logged in, but the account list failed for now: %s", self.name, exc
            )
        if self.live is not None:
            await self.live.start()
        self.reads.mark_ready()
        self.state = LoginState.READY
        await self.health.set_logged_in(True)
        self.ready.set()
        if self._on_ready is not None:
            self._on_ready(self)

    def mark_replacing(self) -> None:
        """A reload changed this login: until its successor is in, it is unavailable."""
        self._replacing = True

    async def drain(self) -> None:
        """End its open streams with a resumable status."""
        if self.live is not None and not self._keeps_live():
            await self.live.drain()

    async def aclose(self) -> None:
        """Close everything but the streams (``drain`` first); safe to call twice."""
        if self._closed:
            return
        self._closed = True
        self.reads.mark_closing()
        task, self._task = self._task, None
        if task is not None and not task.done():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        if self._publisher is not None:
            await self._publisher.aclose()  # first: a replica that lost the lease stops at once
        steps = [self.read_path.aclose, self.health.aclose]
        if self.live is not None and not self._keeps_live():
            steps.append(self.live.aclose)
            if self.replica is not None and self.replica.live is self.live:
                self.replica.live = None
        steps.append(self.broker.aclose)
        self._metrics.forget_login(self.name)
        for step in steps:
            # Every step runs even when one fails: the broker's sockets must not leak.
            try:
                await step()
            except Exception:
                logger.exception("login %r: closing %s failed", self.name, step.__qualname__)
