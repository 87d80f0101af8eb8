"""Metrics on their own port, request ids, JSON logs, and rate-limit statuses with RetryInfo."""

from __future__ import annotations

import asyncio
import gc
import io
import json

import aiohttp
import grpc
import pytest
from google.rpc import error_details_pb2
from tradovate_gateway.v1 import trading_pb2 as pb

from tests.conftest import free_port
from tests.support.stack import Stack, running_stack
from tests.support.waiting import eventually

pytestmark = pytest.mark.timeout(60)

RESOURCE_EXHAUSTED = grpc.StatusCode.RESOURCE_EXHAUSTED.value[0]


async def _scrape(port: int) -> str:
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"http://127.0.0.1:{port}/metrics") as response,
    ):
        assert response.status == 200
        return await response.text()


async def test_prometheus_endpoint_reports_rpcs_upstream_and_cache() -> None:
    port = free_port()
    async with running_stack(accounts=2, live_enabled=False, metrics_port=port) as stack:
        assert stack.gateway.metrics_port == port
        await stack.stub.GetPositions(pb.GetPositionsRequest(), timeout=5)
        await stack.stub.GetOrders(pb.GetOrdersRequest(), timeout=5)  # CACHED: a miss
        await stack.stub.GetOrders(pb.GetOrdersRequest(), timeout=5)  # then a hit
        with pytest.raises(grpc.aio.AioRpcError):
            await stack.stub.GetPositions(
                pb.GetPositionsRequest(selector=pb.AccountSelector(accounts=["NOPE"])), timeout=5
            )
        text = await _scrape(port)
    assert 'tg_rpc_duration_seconds_count{code="OK",method="GetPositions"} 1.0' in text
    assert 'tg_rpc_duration_seconds_count{code="NOT_FOUND",method="GetPositions"} 1.0' in text
    assert 'tg_upstream_calls_total{endpoint="positions",login="default",outcome="OK"} 1.0' in text
    assert 'tg_cache_lookups_total{kind="orders",result="miss"} 2.0' in text
    assert 'tg_cache_lookups_total{kind="orders",result="hit"} 2.0' in text
    assert 'tg_component_up{component="broker_login"} 1.0' in text
    assert 'tg_component_up{component="cache"} 1.0' in text


async def test_request_ids_are_echoed_or_generated(api_stack: Stack) -> None:
    call = api_stack.stub.ListAccounts(
        pb.ListAccountsRequest(), metadata=(("x-request-id", "req-42"),), timeout=5
    )
    await call
    assert ("x-request-id", "req-42") in tuple(await call.trailing_metadata())
    other = api_stack.stub.ListAccounts(pb.ListAccountsRequest(), timeout=5)
    await other
    generated = dict(await other.trailing_metadata())["x-request-id"]
    assert isinstance(generated, str) and len(generated) == 32
    failing = api_stack.stub.GetPositions(
        pb.GetPositionsRequest(selector=pb.AccountSelector(accounts=["NOPE"])),
        metadata=(("x-request-id", "req-43"),),
        timeout=5,
    )
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await failing
    assert ("x-request-id", "req-43") in tuple(caught.value.trailing_metadata() or ())


async def test_access_log_lines_are_json_with_the_request_id(json_log: io.StringIO) -> None:
    async with running_stack(accounts=2, live_enabled=False, access_log=True) as stack:
        await stack.stub.GetBalances(
            pb.GetBalancesRequest(), metadata=(("x-request-id", "trace-7"),), timeout=5
        )
    entries = [json.loads(line) for line in json_log.getvalue().splitlines()]
    access = [e for e in entries if e["logger"] == "trading_gateway.server.api.access"]
    mine = [e for e in access if e.get("request_id") == "trace-7"]
    assert len(mine) == 1
    assert mine[0]["rpc"] == "GetBalances"
    assert mine[0]["code"] == "OK"
    assert mine[0]["duration_ms"] > 0
    assert all({"ts", "level", "msg"} <= e.keys() for e in entries)
    assert "sim-pass" not in json_log.getvalue()


def _retry_delay(status: pb.AccountStatus) -> float:
    return status.retry_after.seconds + status.retry_after.nanos / 1e9


async def test_a_penalty_is_resource_exhausted_with_retry_after() -> None:
    port = free_port()
    async with running_stack(accounts=2, live_enabled=False, metrics_port=port) as stack:
        stack.sim.control.penalize("position/ldeps", count=1, p_time=30)
        reply = await stack.stub.GetPositions(pb.GetPositionsRequest(), timeout=2)
        text = await _scrape(port)
    statuses = [a.meta.status for a in reply.accounts]
    assert {s.code for s in statuses} == {RESOURCE_EXHAUSTED}
    assert {s.reason for s in statuses} == {"BROKER_PENALTY"}
    assert all(_retry_delay(s) == pytest.approx(30) for s in statuses)
    assert 'tg_rate_limit_penalties_total{login="default",reason="BROKER_PENALTY"}' in text


async def test_a_rate_limited_account_list_fails_the_call_with_retry_info() -> None:
    async with running_stack(accounts=2, live_enabled=False, ttl_accounts_s=0.05) as stack:
        stack.sim.control.burst_429(5)
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stack.stub.ListAccounts(
                pb.ListAccountsRequest(read_policy=pb.READ_POLICY_UPSTREAM), timeout=5
            )
    error = caught.value
    assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    from grpc_status import rpc_status

    status = rpc_status.from_call(error)
    assert status is not None
    kinds = {d.type_url.rsplit("/", 1)[-1] for d in status.details}
    assert kinds == {"google.rpc.ErrorInfo", "google.rpc.RetryInfo"}
    retry = error_details_pb2.RetryInfo()
    next(d for d in status.details if d.Is(retry.DESCRIPTOR)).Unpack(retry)
    assert retry.retry_delay.seconds > 0


async def test_cancelled_streams_are_logged_without_touching_the_finished_call() -> None:
    # Regression: reading the peer of a stream whose call had already ended crashed
    # the process (the access log now reads it when the call starts).
    async with running_stack(accounts=2, access_log=True) as stack:

        async def streams_open() -> bool:
            call = stack.stub.StreamUpdates(pb.StreamUpdatesRequest(), timeout=5)
            try:
                await call.read()
            except grpc.aio.AioRpcError:
                return False  # live state still syncing
            call.cancel()
            return True

        await eventually(streams_open, within=10)
        for _ in range(20):
            call = stack.stub.StreamUpdates(pb.StreamUpdatesRequest(), timeout=5)
            await call.read()
            call.cancel()
        gc.collect()
        await asyncio.sleep(0.2)
        gc.collect()
        reply = await stack.stub.ListAccounts(pb.ListAccountsRequest(), timeout=5)
        assert len(reply.accounts) == 2
        registry = stack.gateway.metrics.registry
        assert registry.get_sample_value("tg_rpc_in_flight") == 0
        cancelled = registry.get_sample_value(
            "tg_rpc_duration_seconds_count", {"method": "StreamUpdates", "code": "CANCELLED"}
        )
        assert cancelled is not None and cancelled >= 20
