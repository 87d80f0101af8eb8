"""Health transitions, start-up before login, fatal login errors and graceful shutdown."""

from __future__ import annotations

import asyncio

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from pydantic import SecretStr
from tradovate_gateway.v1 import trading_pb2 as pb
from tradovate_gateway.v1 import trading_pb2_grpc as pb_grpc

from tests.support.stack import Stack, running_gateway, running_stack, settings_for
from tests.support.waiting import eventually
from trading_gateway.server.login import FatalStartupError
from trading_gateway.server.main import Gateway
from trading_gateway.simulator import SimConfig, Simulator

pytestmark = pytest.mark.timeout(60)

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
TRADING = "tradovate_gateway.v1.TradingService"
UPSTREAM = "tradovate_gateway.upstream"
CACHE = "tradovate_gateway.cache"
PROCESS = "tradovate_gateway.process"


async def _status(channel: grpc.aio.Channel, service: str) -> int:
    stub = health_pb2_grpc.HealthStub(channel)
    reply = await stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
    return int(reply.status)


async def test_not_serving_until_logged_in_then_serving() -> None:
    async with Simulator(SimConfig(accounts=2, seed=7)).running() as sim:
        sim.control.set_timeout(endpoint="auth/accesstokenrequest")
        settings = settings_for(sim, live_enabled=False, upstream_timeout_s=1.0)
        async with (
            running_gateway(settings, ready=False) as gateway,
            grpc.aio.insecure_channel(gateway.address) as channel,
        ):
            for service in ("", TRADING, UPSTREAM):
                assert await _status(channel, service) == NOT_SERVING
            stub = pb_grpc.TradingServiceStub(channel)
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await stub.GetPositions(pb.GetPositionsRequest(), timeout=5)
            assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
            assert "logging in" in (caught.value.details() or "")

            sim.control.clear_faults()
            await gateway.wait_ready(15)
            for service in ("", TRADING, UPSTREAM, CACHE):
                assert await _status(channel, service) == SERVING
            reply = await stub.GetPositions(pb.GetPositionsRequest(), timeout=5)
            assert len(reply.accounts) == 2


async def test_process_serves_before_login_through_an_outage_until_shutdown() -> None:
    """The liveness target: only shutdown turns it, never the login or Tradovate."""
    async with Simulator(SimConfig(accounts=1, seed=7)).running() as sim:
        sim.control.set_timeout(endpoint="auth/accesstokenrequest")
        settings = settings_for(sim, live_enabled=False, upstream_timeout_s=1.0)
        async with (
            running_gateway(settings, ready=False) as gateway,
            grpc.aio.insecure_channel(gateway.address) as channel,
        ):
            assert await _status(channel, "") == NOT_SERVING
            assert await _status(channel, PROCESS) == SERVING

            sim.control.clear_faults()
            await gateway.wait_ready(15)
            sim.control.set_error_rate(1.0, status=503)
            stub = pb_grpc.TradingServiceStub(channel)
            for _ in range(3):  # failures trigger a probe, which confirms the outage
                await stub.GetBalances(
                    pb.GetBalancesRequest(read_policy=pb.READ_POLICY_UPSTREAM), timeout=5
                )

            async def outage() -> bool:
                return bool(await _status(channel, "") == NOT_SERVING)

            await eventually(outage, within=10)
            assert await _status(channel, PROCESS) == SERVING

            health = health_pb2_grpc.HealthStub(channel)
            watch = health.Watch(health_pb2.HealthCheckRequest(service=PROCESS), timeout=10)
            assert (await watch.read()).status == SERVING
            stopping = asyncio.ensure_future(gateway.stop(grace=1))
            assert (await watch.read()).status == NOT_SERVING
            watch.cancel()
            await stopping


async def test_bad_credentials_are_fatal_and_say_which_setting() -> None:
    async with Simulator(SimConfig(accounts=1, seed=7)).running() as sim:
        settings = settings_for(sim, live_enabled=False, tradovate_password=SecretStr("wrong"))
        gateway = Gateway(settings)
        async with gateway:
            with pytest.raises(FatalStartupError) as caught:
                await gateway.wait_ready(10)
            assert "wrong" not in str(caught.value)
            async with grpc.aio.insecure_channel(gateway.address) as channel:
                assert await _status(channel, "") == NOT_SERVING


async def test_upstream_outage_and_recovery(api_stack: Stack) -> None:
    control = api_stack.sim.control
    control.set_error_rate(1.0, status=503)
    for _ in range(3):  # failures trigger a probe, which confirms the outage
        reply = await api_stack.stub.GetPositions(pb.GetPositionsRequest(), timeout=5)
        assert {a.meta.status.code for a in reply.accounts} == {
            grpc.StatusCode.UNAVAILABLE.value[0]
        }

    async def down() -> bool:
        return bool(await api_stack.health_status(UPSTREAM) == NOT_SERVING)

    await eventually(down, within=10)
    assert await api_stack.health_status("") == NOT_SERVING
    assert await api_stack.health_status(TRADING) == NOT_SERVING
    assert await api_stack.health_status(CACHE) == SERVING

    control.clear_faults()

    async def up() -> bool:
        return bool(await api_stack.health_status("") == SERVING)

    await eventually(up, within=10)
    assert await api_stack.health_status(UPSTREAM) == SERVING


async def test_health_watch_streams_transitions(api_stack: Stack) -> None:
    stub = health_pb2_grpc.HealthStub(api_stack.channel)
    watch = stub.Watch(health_pb2.HealthCheckRequest(service=UPSTREAM), timeout=20)
    first = await watch.read()
    assert first.status == SERVING
    api_stack.sim.control.set_error_rate(1.0, status=503)
    for _ in range(3):
        await api_stack.stub.GetBalances(
            pb.GetBalancesRequest(read_policy=pb.READ_POLICY_UPSTREAM), timeout=5
        )
    second = await watch.read()
    assert second.status == NOT_SERVING
    api_stack.sim.control.clear_faults()
    third = await watch.read()
    assert third.status == SERVING
    watch.cancel()


async def test_graceful_shutdown_drains_in_flight_calls() -> None:
    async with running_stack(accounts=2, live_enabled=False) as stack:
        await stack.stub.GetPositions(pb.GetPositionsRequest(), timeout=5)
        watch = stack.health.Watch(health_pb2.HealthCheckRequest(service=""), timeout=10)
        assert (await watch.read()).status == SERVING
        stack.sim.control.set_latency(ms=500)
        served = stack.upstream_calls("position/ldeps")
        in_flight = asyncio.ensure_future(
            stack.stub.GetPositions(pb.GetPositionsRequest(), timeout=5)
        )

        async def reached_upstream() -> bool:
            return stack.upstream_calls("position/ldeps") > served

        # The call is being served once its upstream request reached the simulator.
        await eventually(reached_upstream, within=5, interval=0.01)
        stopping = asyncio.ensure_future(stack.gateway.stop(grace=3))
        assert (await watch.read()).status == NOT_SERVING
        watch.cancel()  # an open Watch would hold the server for the whole grace period
        reply = await in_flight
        assert all(a.meta.status.code == 0 for a in reply.accounts)
        await stopping
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stack.stub.GetPositions(pb.GetPositionsRequest(), timeout=2)
        assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
