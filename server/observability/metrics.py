"""Prometheus metrics, in a registry of their own, served on their own port.

``Metrics`` is the one object the rest of the server reports to: RPC latency by method
and code, upstream calls by endpoint and outcome, cache hits and misses by kind,
rate-limit penalties, and the state of the broker login, the upstream and the cache.
Nothing outside this package imports prometheus_client.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Final

from aiohttp import web
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

if TYPE_CHECKING:
    from server.broker import Circuit

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
            "Upstream (Tradovate) fetches by endpoint and outcome (OK or an error reason)",
            ["endpoint", "outcome"],
            registry=r,
        )
        self.upstream_duration = Histogram(
            "tg_upstream_duration_seconds",
            "Upstream fetch latency by endpoint",
            ["endpoint"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.cache_lookups = Counter(
            "tg_cache_lookups_total",
            "TTL cache lookups by kind and result (hit or miss)",
            ["kind", "result"],
            registry=r,
        )
        self.penalties = Counter(
            "tg_rate_limit_penalties_total",
            "Tradovate rate limits and time penalties seen, by reason",
            ["reason"],
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
            "Seconds left while a 429, 423 or captcha circuit stops every upstream call, "
            "by reason (0 when closed)",
            ["reason"],
            registry=r,
        )
        for reason in CIRCUIT_REASONS:
            self.circuit_seconds.labels(reason).set(0)

    def watch_circuit(self, source: CircuitSource) -> None:
        """Read the circuit's time left from ``source`` at every scrape."""
        for reason in CIRCUIT_REASONS:
            self.circuit_seconds.labels(reason).set_function(_left_for(source, reason))

    # --- hooks other modules call ---------------------------------------------------
    def rpc_done(self, method: str, code: str, seconds: float) -> None:
        # The labelled child per (method, code), looked up once: labels() takes a lock.
        child = self._rpc_children.get((method, code))
        if child is None:
            child = self._rpc_children[(method, code)] = self.rpc_duration.labels(method, code)
        child.observe(seconds)

    def upstream_call(self, endpoint: str, outcome: str, seconds: float) -> None:
        self.upstream_calls.labels(endpoint, outcome).inc()
        self.upstream_duration.labels(endpoint).observe(seconds)
        if outcome in PENALTY_REASONS:
            self.penalties.labels(outcome).inc()

    def cache_lookup(self, kind: str, hits: int, misses: int) -> None:
        if hits:
            self._cache_child(kind, "hit").inc(hits)
        if misses:
            self._cache_child(kind, "miss").inc(misses)

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

    def render(self) -> bytes:
        return generate_latest(self.registry)


def _left_for(source: CircuitSource, reason: str) -> Callable[[], float]:
    def left() -> float:
        circuit = source()
        return circuit.retry_after if circuit is not None and circuit.reason == reason else 0.0

    return left


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
