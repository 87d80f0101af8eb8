"""Prometheus metrics, in a registry of their own, served on their own port.

``Metrics`` is the one object the rest of the server reports to: RPC latency by method
and code, upstream calls by endpoint and outcome, cache hits and misses by kind,
rate-limit penalties, and the state of the broker login, the upstream and the cache.
Nothing outside this package imports prometheus_client.

Streams and the upstream connection are read when Prometheus scrapes, not counted on the
hot path: ``watch_streams`` and ``watch_upstream`` take a function that returns a
snapshot (server/live/stats.py, server/broker/stats.py), and ``StateCollector`` turns it
into families. Process and Python runtime collectors (prometheus_client's defaults) and
``tg_build_info`` (version, git commit) are registered with every ``Metrics``. Labels stay
bounded: method, code, endpoint, kind, reason, component, socket, login (a configured
login's name, never its user name or a secret); never a subscriber or an account.

Upstream and stream families carry the ``login`` they belong to: each login's broker is
watched with ``watch_upstream(stats, login=...)`` and ``watch_circuit(source, login=...)``,
its live subsystem with ``watch_streams(stats, login=...)`` (its own hub: its own
sequence, queues and replay buffer), its read path reports through
``login_observer(login)``; ``DEFAULT_LOGIN`` ("default", the single-login shorthand) is
the default everywhere, and ``forget_login`` drops a removed login's watched state. The
per-IP bucket every login shares is watched with ``watch_ip_budget``.
"""

from __future__ import annotations

import contextlib
import logging
import platform
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Final

from aiohttp import web
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    GC_COLLECTOR,
    PLATFORM_COLLECTOR,
    PROCESS_COLLECTOR,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from trading_gateway.server.broker.stats import BudgetStats, UpstreamStats
from trading_gateway.server.live.stats import StreamStats
from trading_gateway.server.logins.spec import DEFAULT_LOGIN
from trading_gateway.server.replicas.stats import ReplicaStats
from trading_gateway.server.version import git_sha, version

if TYPE_CHECKING:
    from trading_gateway.server.broker import Circuit

logger = logging.getLogger(__name__)

LATENCY_BUCKETS: Final = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)
PENALTY_REASONS: Final = frozenset(
    {"BROKER_PENALTY", "BROKER_RATE_LIMITED", "BROKER_LOCKED_OUT", "BROKER_CAPTCHA_REQUIRED"}
)
#: The circuits that stop every upstream call for a time (429, 423, p-captcha).
CIRCUIT_REASONS: Final = ("BROKER_RATE_LIMITED", "BROKER_LOCKED_OUT", "BROKER_CAPTCHA_REQUIRED")

CircuitSource = Callable[[], "Circuit | None"]


class Metrics:
    """All gateway metrics. Safe to create many (each has its own registry)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self._rpc_children: dict[tuple[str, str], Histogram] = {}
        self._cache_children: dict[tuple[str, str], Counter] = {}
        self.rpc_duration = Histogram(
            "tg_rpc_duration_seconds",
            "gRPC call latency by method and status code",
            ["method", "code"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.rpc_in_flight = Gauge("tg_rpc_in_flight", "gRPC calls being served", registry=r)
        self.upstream_calls = Counter(
            "tg_upstream_calls_total",
            "Upstream (Tradovate) fetches by login, endpoint and outcome (OK or an error reason)",
            ["login", "endpoint", "outcome"],
            registry=r,
        )
        self.upstream_duration = Histogram(
            "tg_upstream_duration_seconds",
            "Upstream fetch latency by login and endpoint",
            ["login", "endpoint"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.cache_lookups = Counter(
            "tg_cache_lookups_total",
            "TTL cache lookups by kind and result: hit, miss, local (the gateway's own copy "
            "while Redis is down), stale (past its TTL: upstream slow or rate-limited)",
            ["kind", "result"],
            registry=r,
        )
        self.penalties = Counter(
            "tg_rate_limit_penalties_total",
            "Tradovate rate limits and time penalties seen, by login and reason",
            ["login", "reason"],
            registry=r,
        )
        self.account_errors = Counter(
            "tg_account_errors_total",
            "Accounts answered with an error inside a multi-account response, by reason",
            ["method", "reason"],
            registry=r,
        )
        self.malformed_requests = Counter(
            "tg_malformed_requests_total",
            "Requests whose bytes did not parse as the method's message (INVALID_ARGUMENT)",
            ["method"],
            registry=r,
        )
        self.component_up = Gauge(
            "tg_component_up",
            "1 when a dependency is healthy: broker_login, upstream, cache",
            ["component"],
            registry=r,
        )
        for component in ("broker_login", "upstream", "cache"):
            self.component_up.labels(component).set(0)
        self.circuit_seconds = Gauge(
            "tg_upstream_circuit_seconds",
            "Seconds left while a 429, 423 or captcha circuit stops every upstream call of "
            "a login, by login and reason (0 when closed)",
            ["login", "reason"],
            registry=r,
        )
        self.build_info = Gauge(
            "tg_build_info",
            "Always 1; the labels say which build is running",
            ["version", "git_sha", "python"],
            registry=r,
        )
        self.build_info.labels(version(), git_sha(), platform.python_version()).set(1)
        # process_* (CPU, memory, fds, start time), python_info and python_gc_*: the same
        # collectors prometheus_client puts in its default registry.
        for collector in (PROCESS_COLLECTOR, PLATFORM_COLLECTOR, GC_COLLECTOR):
            r.register(collector)
        self.state = StateCollector()
        r.register(self.state)

    def watch_circuit(self, source: CircuitSource, login: str = DEFAULT_LOGIN) -> None:
        """Read one login's circuit's time left from ``source`` at every scrape."""
        for reason in CIRCUIT_REASONS:
            self.circuit_seconds.labels(login, reason).set_function(_left_for(source, reason))

    # --- hooks other modules call ---------------------------------------------------
    def rpc_done(self, method: str, code: str, seconds: float) -> None:
        # The labelled child per (method, code), looked up once: labels() takes a lock.
        child = self._rpc_children.get((method, code))
        if child is None:
            child = self._rpc_children[(method, code)] = self.rpc_duration.labels(method, code)
        child.observe(seconds)

    def upstream_call(
        self, endpoint: str, outcome: str, seconds: float, login: str = DEFAULT_LOGIN
    ) -> None:
        self.upstream_calls.labels(login, endpoint, outcome).inc()
        self.upstream_duration.labels(login, endpoint).observe(seconds)
        if outcome in PENALTY_REASONS:
            self.penalties.labels(login, outcome).inc()

    def login_observer(self, login: str) -> LoginUpstreamMetrics:
        """What one login's read path reports its upstream calls to (an UpstreamObserver)."""
        return LoginUpstreamMetrics(self, login)

    def cache_lookup(self, kind: str, hits: int, misses: int) -> None:
        if hits:
            self._cache_child(kind, "hit").inc(hits)
        if misses:
            self._cache_child(kind, "miss").inc(misses)

    def cache_served(self, kind: str, result: str, count: int) -> None:
        if count:
            self._cache_child(kind, result).inc(count)

    def _cache_child(self, kind: str, result: str) -> Counter:
        child = self._cache_children.get((kind, result))
        if child is None:
            child = self._cache_children[(kind, result)] = self.cache_lookups.labels(kind, result)
        return child

    def account_error(self, method: str, reason: str) -> None:
        self.account_errors.labels(method, reason).inc()

    def malformed_request(self, method: str) -> None:
        self.malformed_requests.labels(method).inc()

    def set_up(self, component: str, up: bool) -> None:
        self.component_up.labels(component).set(1 if up else 0)

    def watch_streams(self, read: Callable[[], StreamStats], login: str = DEFAULT_LOGIN) -> None:
        """Report one login's streams (tg_stream_*{login}) from ``read()`` at every scrape."""
        self.state.streams[login] = read

    def watch_replica(self, read: Callable[[], ReplicaStats], login: str) -> None:
        """Report one login's replication (tg_replica_*{login}) from ``read()`` at every
        scrape (GATEWAY_REPLICAS=redis)."""
        self.state.replicas[login] = read

    def watch_upstream(self, read: Callable[[], UpstreamStats], login: str = DEFAULT_LOGIN) -> None:
        """Report one login's upstream connection (tg_upstream_*{login}) from ``read()`` at
        every scrape."""
        self.state.upstreams[login] = read

    def forget_login(self, login: str) -> None:
        """Stop reporting a login that was removed: its watched state and circuit go (the
        counts of its calls and penalties stay: counters only grow)."""
        self.state.upstreams.pop(login, None)
        self.state.streams.pop(login, None)
        self.state.replicas.pop(login, None)
        for reason in CIRCUIT_REASONS:
            with contextlib.suppress(KeyError):
                self.circuit_seconds.remove(login, reason)

    def watch_ip_budget(self, read: Callable[[], BudgetStats | None]) -> None:
        """Report the per-IP bucket every login shares (tg_upstream_ip_rate_*) from
        ``read()`` at every scrape; None (a disabled bucket) reports nothing."""
        self.state.ip_budget = read

    def render(self) -> bytes:
        return generate_latest(self.registry)


class LoginUpstreamMetrics:
    """Upstream-call outcomes of one login, labelled with its name (an UpstreamObserver)."""

    def __init__(self, metrics: Metrics, login: str) -> None:
        self._metrics = metrics
        self.login = login

    def upstream_call(self, endpoint: str, outcome: str, seconds: float) -> None:
        self._metrics.upstream_call(endpoint, outcome, seconds, login=self.login)


def _left_for(source: CircuitSource, reason: str) -> Callable[[], float]:
    def left() -> float:
        circuit = source()
        return circuit.retry_after if circuit is not None and circuit.reason == reason else 0.0

    return left


def _counter(name: str, doc: str, value: float) -> CounterMetricFamily:
    return CounterMetricFamily(name, doc, value=value)


def _gauge(name: str, doc: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, doc, value=value)


class StateCollector(Collector):
    """Stream and upstream families, read from their snapshots at scrape time."""

    def __init__(self) -> None:
        self.streams: dict[str, Callable[[], StreamStats]] = {}
        self.upstreams: dict[str, Callable[[], UpstreamStats]] = {}
        self.replicas: dict[str, Callable[[], ReplicaStats]] = {}
        self.ip_budget: Callable[[], BudgetStats | None] | None = None

    def describe(self) -> Iterator[Metric]:
        return iter(())  # names vary with what is watched: collected at scrape time only

    def collect(self) -> Iterator[Metric]:
        if self.streams:
            streams = {login: read() for login, read in sorted(self.streams.items())}
            yield from _stream_families(streams)
        if self.upstreams:
            stats = {login: read() for login, read in sorted(self.upstreams.items())}
            yield from _upstream_families(stats)
        if self.replicas:
            replicas = {login: read() for login, read in sorted(self.replicas.items())}
            yield from _replica_families(replicas)
        if self.ip_budget is not None:
            budget = self.ip_budget()
            if budget is not None:
                yield from _ip_budget_families(budget)


#: The per-login stream families: (name, kind, help, the StreamStats field). Counters
#: count from the login's hub's start (a replaced login starts again at 0).
_STREAM_FAMILIES: Final = (
    (
        "tg_stream_open",
        "gauge",
        "StreamUpdates calls open now over the login's accounts (a call over several "
        "logins counts under each)",
        "open_streams",
    ),
    ("tg_stream_deltas_published", "counter", "Deltas the hub numbered and published", "published"),
    (
        "tg_stream_deltas_sent",
        "counter",
        "Deltas taken from subscriber queues and written",
        "sent",
    ),
    (
        "tg_stream_deltas_merged",
        "counter",
        "Deltas replaced in a full subscriber queue by a newer one of the same entity",
        "merged",
    ),
    (
        "tg_stream_deltas_dropped",
        "counter",
        "Deltas lost when a subscriber too slow to keep up was ended",
        "dropped",
    ),
    (
        "tg_stream_slow_consumers_ended",
        "counter",
        "Streams ended RESOURCE_EXHAUSTED because they fell too far behind",
        "slow_consumers_ended",
    ),
    (
        "tg_live_resyncs",
        "counter",
        "Fresh snapshots applied after the user-sync socket reconnected",
        "upstream_resyncs",
    ),
    ("tg_stream_queued_deltas", "gauge", "Deltas waiting in all subscriber queues", "queued"),
    (
        "tg_stream_subscriber_lag_max_deltas",
        "gauge",
        "Deltas waiting in the longest subscriber queue (the worst subscriber lag)",
        "max_queued",
    ),
    (
        "tg_stream_queue_capacity",
        "gauge",
        "Per-subscriber queue size before conflation (GATEWAY_LIVE_QUEUE_CAPACITY)",
        "queue_capacity",
    ),
    ("tg_stream_replay_buffered", "gauge", "Deltas held for resume", "replay_buffered"),
    (
        "tg_stream_replay_capacity",
        "gauge",
        "Deltas the replay buffer holds at most (GATEWAY_LIVE_REPLAY_CAPACITY)",
        "replay_capacity",
    ),
)


def _per_login(
    families: tuple[tuple[str, str, str, str], ...], by_login: Mapping[str, object]
) -> Iterator[Metric]:
    """One family per (name, kind, help, field), one series per login."""
    for name, kind, doc, field in families:
        family: CounterMetricFamily | GaugeMetricFamily
        if kind == "counter":
            family = CounterMetricFamily(name, doc, labels=["login"])
        else:
            family = GaugeMetricFamily(name, doc, labels=["login"])
        for login, stats in by_login.items():
            family.add_metric([login], float(getattr(stats, field)))
        yield family


def _stream_families(by_login: dict[str, StreamStats]) -> Iterator[Metric]:
    """One family per stream figure, one series per login (each login has its own hub)."""
    yield from _per_login(_STREAM_FAMILIES, by_login)
    resumes = CounterMetricFamily(
        "tg_stream_resumes",
        "Resumed streams: replayed from the buffer (replay hit) or resync (a miss: snapshot)",
        labels=["login", "result"],
    )
    for login, stats in by_login.items():
        resumes.add_metric([login, "replayed"], stats.resumed)
        resumes.add_metric([login, "resync"], stats.resynced)
    yield resumes


#: The per-login replication families: (name, kind, help, the ReplicaStats field).
_REPLICA_FAMILIES: Final = (
    (
        "tg_replica_holding",
        "gauge",
        "1 while this replica holds the login's session and writes its delta log, 0 while "
        "it mirrors the log",
        "holding",
    ),
    (
        "tg_replica_log_step",
        "gauge",
        "The last delta-log step this replica appended (holder) or applied (follower)",
        "log_step",
    ),
    (
        "tg_replica_steps_appended",
        "counter",
        "Delta-log steps this replica appended as the login's holder",
        "steps_appended",
    ),
    (
        "tg_replica_append_seconds",
        "counter",
        "Time spent in delta-log appends (divide by tg_replica_steps_appended: the mean)",
        "append_seconds",
    ),
    (
        "tg_replica_pending_records",
        "gauge",
        "Live records waiting for the holder's next delta-log append",
        "pending_records",
    ),
    (
        "tg_replica_mirror_reloads",
        "counter",
        "Snapshots a follower loaded again because the log broke off or a new holder "
        "started another sequence space",
        "mirror_reloads",
    ),
    (
        "tg_replica_feed_up",
        "gauge",
        "1 while this replica can read the login's delta log (a holder: always)",
        "feed_up",
    ),
)


def _replica_families(by_login: dict[str, ReplicaStats]) -> Iterator[Metric]:
    yield from _per_login(_REPLICA_FAMILIES, by_login)


def _login_gauge(name: str, doc: str) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, doc, labels=["login"])


def _upstream_families(by_login: dict[str, UpstreamStats]) -> Iterator[Metric]:
    expiry = _login_gauge(
        "tg_upstream_token_expiry_seconds",
        "Seconds until the login's Tradovate access token expires (renewed before)",
    )
    logged_in = _login_gauge(
        "tg_upstream_logged_in", "1 while the login holds an access token that has not expired"
    )
    sessions = CounterMetricFamily(
        "tg_upstream_sessions_opened",
        "Tradovate sessions the login opened (auth/accesstokenrequest); more than one "
        "per token lifetime means it was evicted or lost its token",
        labels=["login"],
    )
    renewals = CounterMetricFamily(
        "tg_upstream_token_renewals",
        "Access-token renewals of the login (auth/renewaccesstoken)",
        labels=["login"],
    )
    circuit_open = _login_gauge(
        "tg_upstream_rate_limit_circuit_open",
        "1 while a 429 or 423 from Tradovate holds every REST call of the login back",
    )
    retry_after = _login_gauge(
        "tg_upstream_rate_limit_retry_after_seconds",
        "Seconds until the login's rate-limit circuit closes (0 when closed)",
    )
    budget = _login_gauge(
        "tg_upstream_rate_budget_tokens",
        "REST calls the login's own limiter allows at once now (negative: callers wait)",
    )
    burst = _login_gauge(
        "tg_upstream_rate_budget_burst",
        "The login's own limiter's ceiling (GATEWAY_UPSTREAM_RATE_BURST)",
    )
    socket_labels = ["login", "socket"]
    connected = GaugeMetricFamily(
        "tg_upstream_socket_connected", "1 while the socket is connected", labels=socket_labels
    )
    reconnects = CounterMetricFamily(
        "tg_upstream_socket_reconnects",
        "Times the socket connected again after its first connection",
        labels=socket_labels,
    )
    uptime = GaugeMetricFamily(
        "tg_upstream_socket_uptime_seconds",
        "Seconds the socket's current connection has been up (0 while down)",
        labels=socket_labels,
    )
    silence = GaugeMetricFamily(
        "tg_upstream_last_event_age_seconds",
        "Seconds since the socket's last data frame from Tradovate",
        labels=socket_labels,
    )
    for login, u in by_login.items():
        if u.token_expires_in is not None:
            expiry.add_metric([login], u.token_expires_in)
        logged_in.add_metric([login], 1 if u.logged_in else 0)
        sessions.add_metric([login], u.sessions_opened)
        renewals.add_metric([login], u.token_renewals)
        circuit_open.add_metric([login], 1 if u.circuit_open else 0)
        retry_after.add_metric([login], u.circuit_retry_after)
        if u.rate_tokens is not None and u.rate_burst is not None:
            budget.add_metric([login], u.rate_tokens)
            burst.add_metric([login], u.rate_burst)
        for sock in u.sockets:
            labels = [login, sock.name]
            connected.add_metric(labels, 1 if sock.connected else 0)
            reconnects.add_metric(labels, max(0, sock.connects - 1))
            uptime.add_metric(labels, sock.uptime)
            if sock.since_last_frame is not None:
                silence.add_metric(labels, sock.since_last_frame)
    yield from (expiry, logged_in, sessions, renewals, circuit_open, retry_after, budget, burst)
    yield from (connected, reconnects, uptime, silence)


def _ip_budget_families(b: BudgetStats) -> Iterator[Metric]:
    yield _gauge(
        "tg_upstream_ip_rate_budget_tokens",
        "REST calls the per-IP bucket shared by every login allows at once now "
        "(negative: callers wait)",
        b.tokens,
    )
    yield _gauge(
        "tg_upstream_ip_rate_budget_burst",
        "The shared per-IP bucket's ceiling (GATEWAY_UPSTREAM_IP_RATE_BURST)",
        b.burst,
    )
    yield _counter(
        "tg_upstream_ip_rate_waits",
        "REST calls that waited for a token of the shared per-IP bucket",
        b.delayed,
    )
    yield _counter(
        "tg_upstream_ip_rate_refusals",
        "REST calls refused by the shared per-IP bucket: the wait would pass their deadline",
        b.refused,
    )


class MetricsServer:
    """``GET /metrics`` on its own host:port, on the event loop (no thread)."""

    def __init__(self, metrics: Metrics, host: str, port: int) -> None:
        self._metrics = metrics
        self._host = host
        self._port = port
        self._runner: web.AppRunner | None = None
        self.port: int | None = None

    async def start(self) -> int:
        app = web.Application()
        app.router.add_get("/metrics", self._handle)
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        site = web.TCPSite(runner, self._host, self._port, reuse_address=True)
        try:
            await site.start()
        except OSError:
            await runner.cleanup()
            raise
        self._runner = runner
        addresses = runner.addresses
        self.port = int(addresses[0][1]) if addresses else self._port
        logger.info("metrics on http://%s:%s/metrics", self._host, self.port)
        return self.port

    async def _handle(self, request: web.Request) -> web.Response:
        body = self._metrics.render()
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def aclose(self) -> None:
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()
