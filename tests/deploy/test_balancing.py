"""The load-balancing advice of README (Deployment) and deploy/k8s/service.yaml, on real
grpc.aio servers: a channel to a name with several addresses (what a headless Service's
DNS answers) sends every call to one server by default, as an L4 balancer pins a
connection; with the round_robin service config the docs give, calls spread over all."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1.health import aio as health_aio

pytestmark = pytest.mark.timeout(30)

# The service config README and service.yaml tell callers to use.
ROUND_ROBIN = json.dumps({"loadBalancingConfig": [{"round_robin": {}}]})
CALLS = 30
# Each replica answers the health service "who" with its own status: that names it.
WHO = "who"
IDENTITIES = (
    health_pb2.HealthCheckResponse.SERVING,
    health_pb2.HealthCheckResponse.NOT_SERVING,
    health_pb2.HealthCheckResponse.UNKNOWN,
)
REPLICAS = len(IDENTITIES)


@asynccontextmanager
async def replicas() -> AsyncIterator[list[str]]:
    """Three health servers on loopback, each answering "who" with its own status."""
    servers: list[grpc.aio.Server] = []
    addresses: list[str] = []
    try:
        for identity in IDENTITIES:
            server = grpc.aio.server()
            servicer = health_aio.HealthServicer()
            await servicer.set(WHO, identity)
            health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
            port = server.add_insecure_port("127.0.0.1:0")
            await server.start()
            servers.append(server)
            addresses.append(f"127.0.0.1:{port}")
        yield addresses
    finally:
        for server in servers:
            await server.stop(None)


async def replicas_reached(
    target: str, options: list[tuple[str, str]], calls: int = CALLS
) -> set[int]:
    """Which replicas answered up to ``calls`` calls over one channel (it stops once all
    have: round_robin uses a replica from the moment its connection is ready)."""
    reached: set[int] = set()
    async with grpc.aio.insecure_channel(target, options=options) as channel:
        await channel.channel_ready()
        stub = health_pb2_grpc.HealthStub(channel)
        for _ in range(calls):
            reply = await stub.Check(health_pb2.HealthCheckRequest(service=WHO), timeout=5)
            reached.add(IDENTITIES.index(reply.status))
            if len(reached) == REPLICAS:
                break
    return reached


async def test_one_connection_pins_every_call_to_one_replica() -> None:
    async with replicas() as addresses:
        target = "ipv4:" + ",".join(addresses)
        assert len(await replicas_reached(target, [])) == 1


async def test_round_robin_spreads_calls_over_every_replica() -> None:
    async with replicas() as addresses:
        target = "ipv4:" + ",".join(addresses)
        options = [("grpc.service_config", ROUND_ROBIN)]
        reached = await replicas_reached(target, options, calls=1000)
        assert reached == set(range(REPLICAS))
