"""`python -m trading_gateway.client.healthcheck` against a real grpc.aio health service."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from tests.conftest import free_port
from trading_gateway.client import healthcheck


@pytest.fixture
async def health_server() -> AsyncIterator[tuple[str, Any]]:
    server = grpc.aio.server()
    servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        yield f"127.0.0.1:{port}", servicer
    finally:
        await server.stop(None)


async def test_serving_exits_zero(
    health_server: tuple[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    address, servicer = health_server
    await servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    assert await asyncio.to_thread(healthcheck.main, [address]) == 0
    assert capsys.readouterr().out.strip() == "SERVING"


async def test_not_serving_exits_one(health_server: tuple[str, Any]) -> None:
    address, servicer = health_server
    await servicer.set("", health_pb2.HealthCheckResponse.NOT_SERVING)
    await servicer.set(
        "tradovate_gateway.v1.TradingService", health_pb2.HealthCheckResponse.SERVING
    )
    assert await healthcheck.probe(address) == "NOT_SERVING"
    assert await asyncio.to_thread(healthcheck.main, [address]) == 1
    service = ["--service", "tradovate_gateway.v1.TradingService"]
    assert await asyncio.to_thread(healthcheck.main, [address, *service]) == 0


async def test_unknown_service_is_not_found(health_server: tuple[str, Any]) -> None:
    address, _ = health_server
    assert await healthcheck.probe(address, service="no.such.Service") == "NOT_FOUND"
    assert await asyncio.to_thread(healthcheck.main, [address, "--service", "x"]) == 1


async def test_no_server_is_unavailable() -> None:
    assert await healthcheck.probe(f"127.0.0.1:{free_port()}", deadline_s=2) == "UNAVAILABLE"


async def test_live_succeeds_on_any_answer(health_server: tuple[str, Any]) -> None:
    """Liveness: NOT_SERVING (an upstream outage) is a live process; no answer is not."""
    address, servicer = health_server
    await servicer.set("", health_pb2.HealthCheckResponse.NOT_SERVING)
    assert await asyncio.to_thread(healthcheck.main, [address]) == 1
    assert await asyncio.to_thread(healthcheck.main, [address, "--live"]) == 0
    live_unknown = [address, "--live", "--service", "no.such.Service"]
    assert await asyncio.to_thread(healthcheck.main, live_unknown) == 0
    nobody = [f"127.0.0.1:{free_port()}", "--live", "--timeout", "2"]
    assert await asyncio.to_thread(healthcheck.main, nobody) == 1
