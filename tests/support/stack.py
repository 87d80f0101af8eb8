"""A whole running stack for tests: the simulator, the real gateway, and a gRPC channel.

    async with running_stack(accounts=4) as stack:
        reply = await stack.stub.GetPositions(pb.GetPositionsRequest(), timeout=5)
        stack.sim.control.set_latency(ms=200)
        stack.gateway            # the Gateway (stack.gateway.address, .port, .metrics)
        stack.health             # grpc.health.v1 stub on the same channel
        stack.upstream_calls("position/ldeps")   # simulator call counter for one endpoint

Everything is real: the simulator over HTTP/WebSocket on free loopback ports, the
gateway built by the composition root (trading_gateway.server.main.Gateway) on port 0, the cache
in memory unless ``redis_url`` is given, live state on (as in production; pass
``live_enabled=False`` to exercise the cache/upstream read path). Keyword overrides go
to GatewaySettings (e.g. ``ttl_positions_s=0.2``, ``hedge_min_ms=20``). Metrics, the
access log and the broker's client-side rate limit are off unless asked.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, cast

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from tradovate_gateway.v1 import trading_pb2 as pb
from tradovate_gateway.v1 import trading_pb2_grpc as pb_grpc

from tests.support.residue import CheckingChannel
from tests.support.secret_scan import register_secret
from trading_gateway.server.config import GatewaySettings, explicit_settings
from trading_gateway.server.live_subsystem import LiveFactory
from trading_gateway.server.main import Gateway
from trading_gateway.server.observability.tracing import Tracing
from trading_gateway.server.sim_settings import simulator_values
from trading_gateway.simulator import SimConfig, Simulator

READY_TIMEOUT = 20.0

# Test-friendly defaults: no metrics port, quiet access log, generous upstream limits.
DEFAULTS: dict[str, Any] = {
    "listen": "127.0.0.1:0",
    "metrics_port": 0,
    "access_log": False,
    "upstream_rate_per_second": 0,
    "grace_s": 1.0,
    "health_interval_s": 0.1,
    "upstream_probe_interval_s": 0.3,
    # Every test gateway shares the pytest process: freezing its heap would keep each
    # test's dead reference cycles. tests/api/test_heap.py turns it on and undoes it.
    "gc_freeze": False,
}


def settings_for(sim: Simulator, redis_url: str | None = None, **overrides: Any) -> GatewaySettings:
    """GatewaySettings pointed at ``sim`` (environment variables are ignored)."""
    creds = sim.credentials
    register_secret(str(creds["password"]), str(creds["sec"]))  # the log scan's list
    values: dict[str, Any] = {
        **DEFAULTS,
        **simulator_values(
            rest_url=sim.rest_url,
            ws_url=sim.ws_url,
            md_url=sim.md_ws_url,
            credentials=creds,
            device_id="tests",
        ),
        "redis_url": redis_url or "",
        **overrides,
    }
    # Validated like production, but from these values only (no environment).
    return explicit_settings(**values)


@dataclass
class Stack:
    sim: Simulator
    gateway: Gateway
    channel: grpc.aio.Channel
    stub: pb_grpc.TradingServiceAsyncStub
    health: health_pb2_grpc.HealthStub

    @property
    def address(self) -> str:
        return self.gateway.address

    def upstream_calls(self, endpoint: str) -> int:
        """How many times the simulator served ``endpoint`` (e.g. "position/ldeps")."""
        calls: dict[str, int] = self.sim.control.counters()["calls"]
        return sum(n for name, n in calls.items() if name.lower() == endpoint.lower())

    async def health_status(self, service: str = "") -> int:
        reply = await self.health.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
        return int(reply.status)

    async def account_ids(self) -> list[int]:
        reply = await self.stub.ListAccounts(pb.ListAccountsRequest(), timeout=5)
        return [a.id for a in reply.accounts]


@asynccontextmanager
async def running_gateway(
    settings: GatewaySettings,
    *,
    live_factory: LiveFactory | None = None,
    ready: bool = True,
    tracing: Tracing | None = None,
) -> AsyncIterator[Gateway]:
    """The real gateway from the composition root, started (and logged in when ``ready``)."""
    gateway = Gateway(settings, live_factory=live_factory, tracing=tracing)
    async with gateway:
        if ready:
            await gateway.wait_ready(READY_TIMEOUT)
            _scan_tokens(gateway)
        yield gateway


def _scan_tokens(gateway: Gateway) -> None:
    """Every access token the gateway gets must stay out of the logs (tests/conftest.py)."""
    manager = gateway.broker.token_manager
    token = manager.current
    if token is not None:
        register_secret(token.access_token, token.md_access_token)
    manager.add_listener(lambda new: register_secret(new.access_token, new.md_access_token))


@asynccontextmanager
async def running_stack(
    accounts: int = 4,
    redis_url: str | None = None,
    sim_config: SimConfig | None = None,
    *,
    live_factory: LiveFactory | None = None,
    channel_credentials: grpc.ChannelCredentials | None = None,
    tracing: Tracing | None = None,
    **gateway_overrides: Any,
) -> AsyncIterator[Stack]:
    """Simulator + gateway + channel, all on free loopback ports; closed in reverse order.

    ``channel_credentials`` makes the stack's channel TLS (for a gateway given
    ``tls_cert_file``/``tls_key_file``); the server name checked is "localhost".
    """
    config = sim_config or SimConfig(accounts=accounts, seed=7)
    async with Simulator(config).running(host="127.0.0.1", port=0) as sim:
        settings = settings_for(sim, redis_url, **gateway_overrides)
        async with (
            running_gateway(settings, live_factory=live_factory, tracing=tracing) as gateway,
            _channel(gateway.address, channel_credentials) as channel,
        ):
            # Every Decimal the stub receives is checked for float residue (tests/conftest.py).
            stub = pb_grpc.TradingServiceStub(cast(grpc.aio.Channel, CheckingChannel(channel)))
            yield Stack(sim, gateway, channel, stub, health_pb2_grpc.HealthStub(channel))


def _channel(address: str, credentials: grpc.ChannelCredentials | None) -> grpc.aio.Channel:
    if credentials is None:
        return grpc.aio.insecure_channel(address)
    options = [("grpc.ssl_target_name_override", "localhost")]
    return grpc.aio.secure_channel(address, credentials, options=options)
