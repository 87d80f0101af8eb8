"""Upstream discipline through the whole gateway: penalties, circuits, health, logging.

Upstream call counts come from the simulator's own counters; run with ``-s`` to see the
figures each test prints.
"""

from __future__ import annotations

import logging
import re
import time

import grpc
import pytest
from grpc_health.v1 import health_pb2
from tradovate_gateway.v1 import trading_pb2 as pb

from tests.support.stack import running_stack
from tests.support.waiting import eventually

pytestmark = pytest.mark.timeout(60)

OK = 0
RESOURCE_EXHAUSTED = grpc.StatusCode.RESOURCE_EXHAUSTED.value[0]
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
UPSTREAM = "tradovate_gateway.upstream"
LIVE = "tradovate_gateway.live"


def _position_calls(counters: dict[str, int]) -> int:
    return sum(n for endpoint, n in counters.items() if endpoint.startswith("position/"))


async def test_a_batch_sitting_out_a_p_ticket_is_not_hedged() -> None:
    async with running_stack(
        accounts=2, live_enabled=False, hedge_initial_ms=100, hedge_min_ms=50
    ) as stack:
        control = stack.sim.control
        await stack.account_ids()
        control.reset_counters()
        control.penalize("position/ldeps", count=1, p_time=1.0)
        started = time.monotonic()
        reply = await stack.stub.GetPositions(
            pb.GetPositionsRequest(read_policy=pb.READ_POLICY_UPSTREAM), timeout=5
        )
        elapsed = time.monotonic() - started
        assert [a.meta.status.code for a in reply.accounts] == [OK, OK]
        calls = control.counters()["calls"]
        print(f"\npenalized batch: {_position_calls(calls)} position calls in {elapsed:.2f} s")
        assert elapsed >= 0.9  # the ticket was sat out ...
        assert calls.get("position/ldeps") == 2  # ... then re-sent once
        assert calls.get("position/deps", 0) == 0  # and no hedge went out meanwhile


async def test_a_429_circuit_turns_upstream_not_serving_with_the_time_left() -> None:
    async with running_stack(
        accounts=2, live_enabled=False, upstream_rate_limited_backoff_s=1.5
    ) as stack:
        control = stack.sim.control
        await stack.account_ids()
        assert await stack.health_status(UPSTREAM) == SERVING
        control.burst_429(1, endpoint="position/ldeps")
        reply = await stack.stub.GetPositions(
            pb.GetPositionsRequest(read_policy=pb.READ_POLICY_UPSTREAM), timeout=5
        )
        opened = time.monotonic()
        statuses = [a.meta.status for a in reply.accounts]
        assert {s.code for s in statuses} == {RESOURCE_EXHAUSTED}
        assert {s.reason for s in statuses} == {"BROKER_RATE_LIMITED"}

        async def upstream_is(status: int) -> bool:
            return bool(await stack.health_status(UPSTREAM) == status)

        await eventually(lambda: upstream_is(NOT_SERVING), within=1.0, interval=0.02)
        # Live and cached reads still answer: the gateway as a whole stays in rotation.
        assert await stack.health_status("") == SERVING
        scraped = stack.gateway.metrics.render().decode()
        left = re.search(
            r'^tg_upstream_circuit_seconds\{login="default",reason="BROKER_RATE_LIMITED"\} (\S+)$',
            scraped,
            re.MULTILINE,
        )
        assert left is not None and 0 < float(left.group(1)) <= 1.5
        assert 'tg_component_up{component="upstream"} 0.0' in scraped

        await eventually(lambda: upstream_is(SERVING), within=5.0, interval=0.02)
        closed = time.monotonic() - opened
        print(f"\n429 circuit of 1.5 s: upstream NOT_SERVING for {closed:.2f} s")
        assert 1.0 <= closed <= 2.5
        scraped = stack.gateway.metrics.render().decode()
        closed_circuit = 'tg_upstream_circuit_seconds{login="default",reason="BROKER_RATE_LIMITED"}'
        assert f"{closed_circuit} 0.0" in scraped


async def test_account_list_failures_during_a_circuit_are_logged_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with running_stack(accounts=2, live_enabled=False) as stack:
        await stack.account_ids()
        stack.sim.control.burst_429(1, endpoint="account/list")
        caplog.set_level(logging.INFO, logger="trading_gateway.server.reads.accounts")
        codes = []
        for _ in range(30):
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await stack.stub.ListAccounts(
                    pb.ListAccountsRequest(read_policy=pb.READ_POLICY_UPSTREAM), timeout=5
                )
            codes.append(info.value.code())
        assert set(codes) == {grpc.StatusCode.RESOURCE_EXHAUSTED}
        lines = [r for r in caplog.records if "account list refresh failed" in r.getMessage()]
        assert len(lines) == 1
        assert stack.sim.control.counters()["calls"].get("account/list") == 2  # login's + 429
        caplog.set_level(logging.INFO, logger="trading_gateway.server")
        before = len(caplog.records)
        upstream = pb.READ_POLICY_UPSTREAM
        for _ in range(30):
            await stack.stub.GetPositions(pb.GetPositionsRequest(read_policy=upstream), timeout=5)
            await stack.stub.GetBalances(pb.GetBalancesRequest(read_policy=upstream), timeout=5)
        server_lines = [r for r in caplog.records[before:] if r.name.startswith("server.")]
        print(
            f"\nin a 429 circuit: 30 ListAccounts logged {len(lines)} line(s); "
            f"30 GetPositions and 30 GetBalances after them {len(server_lines)}"
        )
        assert server_lines == []


async def test_live_state_outage_after_each_of_10_drops_stays_short() -> None:
    # Production reconnect settings (the GatewaySettings defaults); health every 0.1 s.
    async with running_stack(accounts=2) as stack:

        async def live_is(status: int) -> bool:
            return bool(await stack.health_status(LIVE) == status)

        outages = []
        for _ in range(10):
            await eventually(lambda: live_is(SERVING), within=10.0, interval=0.01)
            dropped = time.monotonic()
            stack.sim.control.drop_sockets("user")
            await eventually(lambda: live_is(NOT_SERVING), within=5.0, interval=0.01)
            await eventually(lambda: live_is(SERVING), within=60.0, interval=0.01)
            outages.append(time.monotonic() - dropped)
        shown = " ".join(f"{o:.2f}" for o in outages)
        print(f"\nlive health outage per drop over 10 drops (s): {shown}; max {max(outages):.2f}")
        assert max(outages) < 2.0


async def test_a_captcha_answers_resource_exhausted_with_the_time_left_and_stops_calls() -> None:
    async with running_stack(accounts=2, live_enabled=False) as stack:
        control = stack.sim.control
        await stack.account_ids()
        control.penalize("position/ldeps", count=1, p_time=1.0, captcha=True)
        upstream = pb.READ_POLICY_UPSTREAM
        reply = await stack.stub.GetPositions(pb.GetPositionsRequest(read_policy=upstream))
        statuses = [a.meta.status for a in reply.accounts]
        assert {s.code for s in statuses} == {RESOURCE_EXHAUSTED}
        assert {s.reason for s in statuses} == {"BROKER_CAPTCHA_REQUIRED"}
        assert all(3500 < s.retry_after.seconds <= 3600 for s in statuses)
        control.reset_counters()
        for _ in range(10):
            await stack.stub.GetPositions(pb.GetPositionsRequest(read_policy=upstream))
            await stack.stub.GetOrders(pb.GetOrdersRequest(read_policy=upstream))
            await stack.stub.GetBalances(pb.GetBalancesRequest(read_policy=upstream))
        after = control.counters()["total"]
        print(f"\ncaptcha: {after} upstream call(s) for 30 reads after it")
        assert after == 0
        assert await stack.health_status(UPSTREAM) == NOT_SERVING
        assert await stack.health_status("") == SERVING


async def test_an_account_past_the_shared_ip_budget_is_deadline_exceeded_and_says_why() -> None:
    # The shared per-IP bucket holds one token and earns one every 4 s.
    async with running_stack(
        accounts=2,
        live_enabled=False,
        upstream_rate_per_second=0,
        upstream_ip_rate_per_second=0.25,
        upstream_ip_rate_burst=1,
    ) as stack:
        # A caller with time to wait gets a token (the account list is now known) ...
        listed = await stack.stub.ListAccounts(
            pb.ListAccountsRequest(read_policy=pb.READ_POLICY_UPSTREAM), timeout=10
        )
        assert len(listed.accounts) == 2
        # ... one whose deadline ends before the next token is refused it at once.
        started = time.monotonic()
        reply = await stack.stub.GetPositions(
            pb.GetPositionsRequest(read_policy=pb.READ_POLICY_UPSTREAM), timeout=1
        )
        elapsed = time.monotonic() - started
        scraped = stack.gateway.metrics.render().decode()
    statuses = [a.meta.status for a in reply.accounts]
    assert len(statuses) == 2
    assert {s.code for s in statuses} == {grpc.StatusCode.DEADLINE_EXCEEDED.value[0]}
    assert {s.reason for s in statuses} == {"UPSTREAM_TIMEOUT"}
    assert all("shared per-IP rate limit" in s.message for s in statuses), statuses
    assert elapsed < 0.5  # refused at once: waiting would only have hit the deadline
    refusals = re.search(r"^tg_upstream_ip_rate_refusals_total (\S+)$", scraped, re.MULTILINE)
    assert refusals is not None and float(refusals.group(1)) >= 1
