"""Fan-out behaviour seen from a client: isolation, hedging, deadlines, single flight.

Upstream call counts come from the simulator's own counters.
"""

from __future__ import annotations

import asyncio
import logging
import time

import grpc
import pytest
from tradovate_gateway.v1 import trading_pb2 as pb
from tradovate_gateway.v1 import trading_pb2_grpc as pb_grpc

from tests.support.stack import Stack, running_stack

pytestmark = pytest.mark.timeout(60)

OK = 0
UNAVAILABLE = grpc.StatusCode.UNAVAILABLE.value[0]
DEADLINE_EXCEEDED = grpc.StatusCode.DEADLINE_EXCEEDED.value[0]


def _by_account(reply: pb.GetPositionsResponse) -> dict[int, pb.AccountStatus]:
    return {a.meta.account_id: a.meta.status for a in reply.accounts}


async def test_one_failing_and_one_slow_account_do_not_fail_the_others(api_stack: Stack) -> None:
    control = api_stack.sim.control
    failing, slow, *healthy = await api_stack.account_ids()
    await api_stack.stub.GetPositions(pb.GetPositionsRequest(), timeout=5)  # warm contracts
    control.fail_account(failing, status=500)
    control.set_latency(ms=10_000, account_id=slow)

    started = time.monotonic()
    reply = await api_stack.stub.GetPositions(pb.GetPositionsRequest(), timeout=1.0)
    elapsed = time.monotonic() - started

    statuses = _by_account(reply)
    assert statuses[failing].code == UNAVAILABLE
    assert statuses[failing].reason == "UPSTREAM_UNAVAILABLE"
    assert "500" in statuses[failing].message
    assert statuses[slow].code == DEADLINE_EXCEEDED
    assert statuses[slow].reason == "UPSTREAM_TIMEOUT"
    for account_id in healthy:
        assert statuses[account_id].code == OK
    assert elapsed < 5, "answered by the deadline, not after the slow account"
    assert set(api_stack.gateway.positions_fanout.isolated()) == {failing, slow}

    # Now the troubled accounts are fetched on their own; the healthy ones in one batch.
    control.reset_counters()
    control.clear_faults()
    control.clear_latency()
    again = await api_stack.stub.GetPositions(pb.GetPositionsRequest(), timeout=5)
    assert all(s.code == OK for s in _by_account(again).values())
    assert api_stack.upstream_calls("position/ldeps") == 1
    assert api_stack.upstream_calls("position/deps") == 2


async def test_a_slow_batch_is_hedged_per_account() -> None:
    async with running_stack(
        accounts=4, live_enabled=False, hedge_initial_ms=100, hedge_min_ms=50
    ) as stack:
        control = stack.sim.control
        slow, *fast = await stack.account_ids()
        control.set_latency(ms=3_000, account_id=slow)
        reply = await stack.stub.GetPositions(
            pb.GetPositionsRequest(selector=pb.AccountSelector(accounts=[str(a) for a in fast])),
            timeout=5,
        )
        assert all(s.code == OK for s in _by_account(reply).values())
        assert stack.upstream_calls("position/deps") == 0, "no slow account: no hedge"

        control.reset_counters()
        started = time.monotonic()
        call = stack.stub.GetPositions(pb.GetPositionsRequest(), timeout=1.5)
        reply = await call
        statuses = _by_account(reply)
        assert [statuses[a].code for a in fast] == [OK, OK, OK]
        assert statuses[slow].code == DEADLINE_EXCEEDED
        # the batch (slow) was split: one deps call per account after the hedge delay
        assert stack.upstream_calls("position/ldeps") == 1
        assert stack.upstream_calls("position/deps") == 4
        assert time.monotonic() - started < 5


async def test_the_caller_deadline_bounds_upstream_calls(api_stack: Stack) -> None:
    api_stack.sim.control.set_latency(ms=2_000)
    started = time.monotonic()
    reply = await api_stack.stub.GetBalances(pb.GetBalancesRequest(), timeout=0.5)
    elapsed = time.monotonic() - started
    assert elapsed < 1.5
    assert {a.meta.status.code for a in reply.accounts} == {DEADLINE_EXCEEDED}
    assert reply.totals.accounts_failed == 4
    assert not any(a.HasField("balance") for a in reply.accounts)


async def test_a_short_deadline_caller_does_not_time_out_a_longer_one() -> None:
    async with running_stack(accounts=2, live_enabled=False) as stack:
        stack.sim.control.set_latency(ms=400)
        request = pb.GetPositionsRequest(read_policy=pb.READ_POLICY_UPSTREAM)
        short = asyncio.ensure_future(stack.stub.GetPositions(request, timeout=0.15))
        await asyncio.sleep(0.02)  # the short caller's fetch is in flight
        patient = await stack.stub.GetPositions(request, timeout=5)
        assert [a.meta.status.code for a in patient.accounts] == [OK, OK]
        hasty = await short
        assert {a.meta.status.code for a in hasty.accounts} == {DEADLINE_EXCEEDED}


async def test_near_simultaneous_identical_requests_still_share_one_call() -> None:
    async with running_stack(accounts=2, live_enabled=False) as stack:
        stack.sim.control.set_latency(ms=200)
        stack.sim.control.reset_counters()
        request = pb.GetPositionsRequest(read_policy=pb.READ_POLICY_UPSTREAM)
        first = asyncio.ensure_future(stack.stub.GetPositions(request, timeout=2))
        await asyncio.sleep(0.02)  # 20 ms later, same timeout: a later deadline by 20 ms
        second = await stack.stub.GetPositions(request, timeout=2)
        await first
        assert [a.meta.status.code for a in second.accounts] == [OK, OK]
        assert stack.upstream_calls("position/ldeps") == 1


async def test_a_caller_joins_a_fetch_that_has_been_running_for_a_while() -> None:
    # During an outage fetches wait behind the limiter; later callers with later
    # deadlines must still share them, or every caller adds another upstream call.
    async with running_stack(accounts=2, live_enabled=False, hedge_initial_ms=10_000) as stack:
        request = pb.GetPositionsRequest(read_policy=pb.READ_POLICY_UPSTREAM)
        await stack.stub.GetPositions(request, timeout=5)  # warm contracts
        stack.sim.control.set_latency(ms=1_000, endpoint="position/ldeps")
        stack.sim.control.reset_counters()
        first = asyncio.ensure_future(stack.stub.GetPositions(request, timeout=3))
        await asyncio.sleep(0.6)  # well past the old join slack (10% of 3 s)
        second = await stack.stub.GetPositions(request, timeout=3)
        assert [a.meta.status.code for a in second.accounts] == [OK, OK]
        assert [a.meta.status.code for a in (await first).accounts] == [OK, OK]
        assert stack.upstream_calls("position/ldeps") == 1


async def test_without_a_caller_deadline_the_default_applies() -> None:
    async with running_stack(accounts=2, live_enabled=False, default_deadline_s=0.4) as stack:
        stack.sim.control.set_latency(ms=2_000)
        started = time.monotonic()
        reply = await stack.stub.GetPositions(pb.GetPositionsRequest())  # no timeout
        assert time.monotonic() - started < 1.5
        assert {a.meta.status.code for a in reply.accounts} == {DEADLINE_EXCEEDED}


async def test_a_hung_account_list_does_not_stop_reads_of_known_accounts() -> None:
    async with running_stack(accounts=2, live_enabled=False, ttl_accounts_s=0.05) as stack:
        await asyncio.sleep(0.1)  # the account list expires
        stack.sim.control.set_timeout(endpoint="account/list")
        reply = await stack.stub.GetPositions(pb.GetPositionsRequest(), timeout=2)
        assert [a.meta.status.code for a in reply.accounts] == [OK, OK]
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stack.stub.ListAccounts(
                pb.ListAccountsRequest(read_policy=pb.READ_POLICY_FRESH), timeout=0.5
            )
        assert caught.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        stack.sim.control.clear_faults()


async def test_an_unreachable_account_list_is_unavailable_for_list_accounts() -> None:
    async with running_stack(accounts=2, live_enabled=False, ttl_accounts_s=0.05) as stack:
        await asyncio.sleep(0.1)
        stack.sim.control.set_error_rate(1.0, status=503, endpoint="account/list")
        reply = await stack.stub.GetBalances(pb.GetBalancesRequest(), timeout=5)
        assert reply.totals.accounts_included == 2
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stack.stub.ListAccounts(
                pb.ListAccountsRequest(read_policy=pb.READ_POLICY_FRESH), timeout=5
            )
        assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
        assert "503" in (caught.value.details() or "")


async def test_without_any_account_list_reads_fail_unavailable() -> None:
    from tests.support.stack import running_gateway, settings_for
    from trading_gateway.simulator import SimConfig, Simulator

    async with Simulator(SimConfig(accounts=2, seed=7)).running() as sim:
        sim.control.set_error_rate(1.0, status=503, endpoint="account/list")
        settings = settings_for(sim, live_enabled=False)
        async with (
            running_gateway(settings) as gateway,
            grpc.aio.insecure_channel(gateway.address) as channel,
        ):
            stub = pb_grpc.TradingServiceStub(channel)
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await stub.GetPositions(pb.GetPositionsRequest(), timeout=5)
            assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
            sim.control.clear_faults()
            reply = await stub.GetPositions(pb.GetPositionsRequest(), timeout=5)
            assert len(reply.accounts) == 2


async def test_100_concurrent_identical_requests_make_one_upstream_call(api_stack: Stack) -> None:
    await api_stack.stub.GetPositions(pb.GetPositionsRequest(), timeout=5)  # warm contracts
    control = api_stack.sim.control
    control.reset_counters()
    control.set_latency(ms=300, endpoint="position/ldeps")
    replies = await asyncio.gather(
        *(api_stack.stub.GetPositions(pb.GetPositionsRequest(), timeout=10) for _ in range(100))
    )
    assert all(len(r.accounts) == 4 for r in replies)
    assert all(a.meta.status.code == OK for r in replies for a in r.accounts)
    assert api_stack.upstream_calls("position/ldeps") == 1
    assert control.counters()["total"] == 1
    as_of = {a.meta.as_of.ToNanoseconds() for r in replies for a in r.accounts}
    assert len(as_of) == 1, "every request got the same fetch"


async def test_cold_cached_reads_share_one_fetch_too(api_stack: Stack) -> None:
    control = api_stack.sim.control
    control.reset_counters()
    control.set_latency(ms=300)
    replies = await asyncio.gather(
        *(api_stack.stub.GetBalances(pb.GetBalancesRequest(), timeout=10) for _ in range(50))
    )
    assert all(r.totals.accounts_included == 4 for r in replies)
    # No batch form for balances: one snapshot call per account, shared by all 50 requests.
    assert api_stack.upstream_calls("cashBalance/getcashbalancesnapshot") == 4


async def test_a_request_joins_in_flight_accounts_and_fetches_the_rest(api_stack: Stack) -> None:
    ids = await api_stack.account_ids()
    await api_stack.stub.GetPositions(pb.GetPositionsRequest(), timeout=5)
    control = api_stack.sim.control
    control.reset_counters()
    control.set_latency(ms=400, endpoint="position/ldeps")
    first = api_stack.stub.GetPositions(
        pb.GetPositionsRequest(selector=pb.AccountSelector(accounts=[str(ids[0]), str(ids[1])])),
        timeout=5,
    )
    await asyncio.sleep(0.1)
    second = api_stack.stub.GetPositions(pb.GetPositionsRequest(), timeout=5)
    one, two = await asyncio.gather(first, second)
    assert len(one.accounts) == 2 and len(two.accounts) == 4
    assert api_stack.upstream_calls("position/ldeps") == 2  # [0, 1] and then [2, 3]
    joined = {a.meta.account_id: a.meta.as_of.ToNanoseconds() for a in two.accounts}
    assert joined[ids[0]] == one.accounts[0].meta.as_of.ToNanoseconds()


async def test_large_account_counts_are_batched() -> None:
    async with running_stack(accounts=120, live_enabled=False, batch_size=50) as stack:
        stack.sim.control.reset_counters()
        reply = await stack.stub.GetPositions(pb.GetPositionsRequest(), timeout=10)
        assert len(reply.accounts) == 120
        assert all(a.meta.status.code == OK for a in reply.accounts)
        assert stack.upstream_calls("position/ldeps") == 3  # 50 + 50 + 20


async def test_a_failed_hedge_waits_for_the_batch_that_may_still_answer() -> None:
    async with running_stack(
        accounts=3, live_enabled=False, hedge_initial_ms=100, hedge_min_ms=50
    ) as stack:
        control = stack.sim.control
        control.set_latency(ms=800, endpoint="position/ldeps")
        control.set_error_rate(1.0, status=500, endpoint="position/deps")
        reply = await stack.stub.GetPositions(pb.GetPositionsRequest(), timeout=5)
        assert all(s.code == OK for s in _by_account(reply).values())
        assert stack.upstream_calls("position/deps") == 3  # the hedges, all failed
        assert stack.upstream_calls("position/ldeps") == 1  # the batch answered for all


async def test_batches_widen_so_a_large_request_runs_as_one_wave() -> None:
    # 120 accounts, batches of 10, 2 slots: 12 batches would run as 6 waves; widened
    # batches of ceil(120 / 2) = 60 fit the 2 slots at once.
    async with running_stack(
        accounts=120, live_enabled=False, batch_size=10, fanout_concurrency=2
    ) as stack:
        stack.sim.control.reset_counters()
        reply = await stack.stub.GetPositions(pb.GetPositionsRequest(), timeout=10)
        assert len(reply.accounts) == 120
        assert all(a.meta.status.code == OK for a in reply.accounts)
        assert stack.upstream_calls("position/ldeps") == 2


async def test_a_batch_queued_for_a_slot_is_not_hedged_for_the_wait(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # One slot and two requests at once: the second one's batch waits for the first call
    # (together longer than the hedge delay), but its own call is fast: no hedges.
    async with running_stack(
        accounts=4,
        live_enabled=False,
        fanout_concurrency=1,
        hedge_initial_ms=100,
        hedge_min_ms=50,
    ) as stack:
        ids = await stack.account_ids()
        control = stack.sim.control
        control.set_latency(ms=70, endpoint="position/ldeps")
        control.reset_counters()
        caplog.set_level(logging.DEBUG, logger="trading_gateway.server.reads")
        requests = [
            stack.stub.GetPositions(
                pb.GetPositionsRequest(
                    selector=pb.AccountSelector(accounts=[str(i) for i in pair]),
                    read_policy=pb.READ_POLICY_UPSTREAM,
                ),
                timeout=5,
            )
            for pair in (ids[:2], ids[2:])
        ]
        replies = await asyncio.gather(*requests)
        assert all(s.code == OK for r in replies for s in _by_account(r).values())
        assert stack.upstream_calls("position/ldeps") == 2
        assert stack.upstream_calls("position/deps") == 0
        hedges = [r for r in caplog.records if "hedging per account" in r.getMessage()]
        assert hedges == []
