"""StreamUpdates end to end: the simulator, the real gateway, a real grpc.aio channel."""

from __future__ import annotations

import asyncio
import time
from decimal import Decimal
from typing import Any, cast

import grpc
from google.protobuf import duration_pb2
from grpc_health.v1 import health_pb2
from tradovate_gateway.v1 import trading_pb2 as pb
from tradovate_gateway.v1 import trading_pb2_grpc as pb_grpc

from tests.live.streaming import (
    WAIT,
    Subscriber,
    assert_chained,
    entity_key,
    payload_bytes,
    reached,
    until,
)
from tests.support.stack import Stack, running_stack
from trading_gateway.server.deadline import Deadline
from trading_gateway.server.live.components import BrokerLiveSubsystem
from trading_gateway.server.live.service import LiveService
from trading_gateway.simulator import SimConfig

# Frozen prices (no random walk) and fast reconnects, so every test is deterministic.
FROZEN: dict[str, Any] = {"price_interval": 0.0}
FAST: dict[str, Any] = {
    "ws_reconnect_initial_s": 0.02,
    "ws_reconnect_max_s": 0.2,
    "ws_reconnect_stable_s": 0.05,
    "pnl_interval_ms": 0.0,
}
ENTITY_KINDS = [
    pb.UPDATE_KIND_POSITIONS,
    pb.UPDATE_KIND_ORDERS,
    pb.UPDATE_KIND_BALANCES,
    pb.UPDATE_KIND_ACCOUNTS,
]


def live_of(stack: Stack) -> LiveService:
    live = cast(BrokerLiveSubsystem, stack.gateway.live)
    return live.service


def sim_config(accounts: int = 2) -> SimConfig:
    return SimConfig(accounts=accounts, seed=7, **FROZEN)


def request(
    *accounts: int, kinds: list[pb.UpdateKind.ValueType] | None = None, **kwargs: Any
) -> pb.StreamUpdatesRequest:
    return pb.StreamUpdatesRequest(
        selector=pb.AccountSelector(accounts=[str(a) for a in accounts]),
        kinds=kinds or [],
        **kwargs,
    )


async def synced(stack: Stack) -> LiveService:
    """Live state has its snapshot and the background refresh its first figures."""
    service = live_of(stack)
    assert await service.wait_synced(Deadline.after(WAIT))
    await until(lambda: figures_fetched(service))
    return service


def figures_fetched(service: LiveService) -> bool:
    refresher = service.figures
    assert refresher is not None
    got = [refresher.get(a) for a in service.state.accounts]
    return all(f is not None and f.snapshot is not None for f in got)


def completed(sub: Subscriber) -> bool:
    return any(m.WhichOneof("payload") == "snapshot_complete" for m in sub.messages)


class View:
    """What a subscriber knows: the snapshot, then every delta applied in order."""

    def __init__(self, messages: list[pb.StreamUpdate]) -> None:
        self.positions: dict[int, pb.Position] = {}
        self.orders: dict[int, pb.Order] = {}
        self.balances: dict[int, pb.Balance] = {}
        for m in messages:
            which = m.WhichOneof("payload")
            if which == "snapshot":
                snap = m.snapshot.account
                for p in snap.positions.positions:
                    self.positions[p.id] = p
                for o in snap.orders.orders:
                    self.orders[o.id] = o
                if snap.balance.HasField("balance"):
                    self.balances[m.account_id] = snap.balance.balance
            elif which == "position":
                self.positions[m.position.position.id] = m.position.position
            elif which == "order":
                self.orders[m.order.order.id] = m.order.order
            elif which == "balance":
                self.balances[m.account_id] = m.balance.balance


def sim_final(stack: Stack) -> dict[tuple[str, int], dict[str, Any]]:
    """The last state of every entity, from the simulator's event log."""
    final: dict[tuple[str, int], dict[str, Any]] = {}
    for entry in stack.sim.control.event_log(0):
        entities = entry["entity"] if isinstance(entry["entity"], list) else [entry["entity"]]
        for entity in entities:
            key = (entry["entityType"], int(entity["id"]))
            if entry["eventType"] == "Deleted":
                final.pop(key, None)
            else:
                final[key] = entity
    return final


def status_name(value: pb.OrderStatus.ValueType) -> str:
    return pb.OrderStatus.Name(value).removeprefix("ORDER_STATUS_").replace("_", "").lower()


def mismatches(
    view: View, final: dict[tuple[str, int], dict[str, Any]], accounts: set[int]
) -> list[str]:
    """Differences between the subscriber's view and the simulator's final state."""
    problems = []
    for (kind, entity_id), entity in final.items():
        if kind == "position" and entity["accountId"] in accounts:
            got = view.positions.get(entity_id)
            if got is None or got.net_pos != entity["netPos"]:
                problems.append(
                    f"position {entity_id}: {got and got.net_pos} != {entity['netPos']}"
                )
        elif kind == "order" and entity["accountId"] in accounts:
            got_order = view.orders.get(entity_id)
            want = str(entity["ordStatus"]).lower()
            if got_order is None or status_name(got_order.status) != want:
                problems.append(f"order {entity_id}: {got_order and got_order.status} != {want}")
        elif kind == "cashBalance" and entity["accountId"] in accounts:
            balance = view.balances.get(entity["accountId"])
            want_cash = Decimal(str(entity["amount"]))
            if balance is None or Decimal(balance.cash.value) != want_cash:
                problems.append(f"cash of {entity['accountId']}: {balance and balance.cash.value}")
    return problems


async def converge(stack: Stack, sub: Subscriber, accounts: set[int]) -> View:
    """Until the subscriber's view equals the simulator's final state (or time runs out)."""
    async with asyncio.timeout(WAIT):
        while True:
            view = View(sub.messages)
            problems = mismatches(view, sim_final(stack), accounts)
            if not problems:
                return view
            await asyncio.sleep(0.05)


def assert_no_duplicates(deltas: list[pb.StreamUpdate]) -> None:
    """No delta repeats the entity state the one before it already gave."""
    last: dict[tuple[str, int], bytes] = {}
    for delta in deltas:
        key, body = entity_key(delta), payload_bytes(delta)
        assert last.get(key) != body, f"duplicate delta for {key} at {delta.sequence}"
        last[key] = body


async def test_stream_order_then_deltas_that_match_the_simulator() -> None:
    async with running_stack(sim_config=sim_config(), **FAST) as stack:
        await synced(stack)
        control = stack.sim.control
        account = control.account_ids()[0]
        sub = Subscriber(stack.stub, request(account))
        await sub.wait_for(completed)
        payloads = [m.WhichOneof("payload") for m in sub.messages]
        assert payloads == ["subscription", "snapshot", "snapshot_complete"]
        status = sub.messages[0].subscription.accounts[0].meta
        assert (status.account_id, status.status.code, status.source) == (
            account,
            0,
            pb.SOURCE_LIVE,
        )
        start = sub.messages[-1].snapshot_complete.sequence
        before_ns = time.time_ns()
        price = control.price("ESZ6")
        working = control.place_order(account, "ESZ6", "Buy", 2, price=price - 10)
        control.fill_order(working, price=price - 10)
        market = control.place_order(account, "ESZ6", "Sell", 1)
        resting = control.place_order(account, "ESZ6", "Buy", 1, price=price - 50)
        control.cancel_order(resting)
        view = await converge(stack, sub, {account})
        assert_chained(sub.deltas, start)
        assert_no_duplicates(sub.deltas)
        assert all(d.account_id == account for d in sub.deltas)
        assert {working, market, resting} <= set(view.orders)
        assert view.orders[working].filled_qty == 2
        assert view.orders[resting].status == pb.ORDER_STATUS_CANCELED
        # Deltas carry the account, entity ids and times.
        first_order = next(d for d in sub.deltas if d.WhichOneof("payload") == "order")
        assert first_order.order.change == pb.CHANGE_TYPE_CREATED
        assert first_order.event_time.seconds > 0 and first_order.server_time.seconds > 0
        # Each entity delta says when the gateway read the upstream frame behind it: after
        # the action was made, no later than the delta's own publish time.
        for delta in (d for d in sub.deltas if d.WhichOneof("payload") != "pnl"):
            assert delta.HasField("received_time"), delta.WhichOneof("payload")
            received = delta.received_time.ToNanoseconds()
            assert before_ns <= received <= delta.server_time.ToNanoseconds()
        await sub.close()


async def test_no_gap_and_no_duplicate_across_ten_socket_drops() -> None:
    async with running_stack(sim_config=sim_config(3), **FAST) as stack:
        service = await synced(stack)
        control = stack.sim.control
        accounts = set(control.account_ids())
        sub = Subscriber(stack.stub, request(kinds=ENTITY_KINDS))
        await sub.wait_for(completed)
        start = next(
            m.snapshot_complete.sequence
            for m in sub.messages
            if m.WhichOneof("payload") == "snapshot_complete"
        )
        for drop in range(10):
            control.random_activity(4)
            await converge(stack, sub, accounts)
            assert control.drop_sockets("user") >= 1
            control.random_activity(4)  # while the gateway is disconnected
            await until(reached(lambda: service.resyncs, drop + 1))
        control.random_activity(4)
        await converge(stack, sub, accounts)
        assert service.resyncs == 10
        assert sub.error is None
        deltas = sub.deltas
        assert_chained(deltas, start)
        assert_no_duplicates(deltas)
        # Every order the simulator ever created reached the subscriber.
        created = {k[1] for k in sim_final(stack) if k[0] == "order"}
        assert created <= set(View(sub.messages).orders)
        await sub.close()


async def test_resume_replays_from_the_buffer_or_resyncs() -> None:
    async with running_stack(sim_config=sim_config(), live_replay_capacity=40, **FAST) as stack:
        service = await synced(stack)
        control = stack.sim.control
        account = control.account_ids()[0]
        first = Subscriber(stack.stub, request(account))
        await first.wait_for(completed)
        control.place_order(account, "ESZ6", "Buy", 1)
        await first.wait_for(lambda s: len(s.deltas) >= 2)
        seen = first.deltas[1]
        epoch = seen.epoch
        await first.close()
        last_seen = max(d.sequence for d in first.deltas)
        missed_order = control.place_order(account, "ESZ6", "Buy", 1)
        await until(
            lambda: (
                missed_order in service.state.order_ids_of(account)
                and service.hub.last_sequence_of[account] > last_seen
            )
        )
        target = service.hub.last_sequence_of[account]
        # Covered: no snapshot, a marker at the resume point, then exactly the missed deltas.
        resumed = Subscriber(
            stack.stub, request(account, resume_after_sequence=seen.sequence, resume_epoch=epoch)
        )
        await resumed.reach(target)
        payloads = [m.WhichOneof("payload") for m in resumed.messages]
        assert payloads[:2] == ["subscription", "snapshot_complete"]
        assert resumed.messages[1].snapshot_complete.sequence == seen.sequence
        assert not resumed.messages[1].snapshot_complete.resync
        assert_chained(resumed.deltas, seen.sequence)
        missed = [d.sequence for d in first.deltas if d.sequence > seen.sequence]
        assert [d.sequence for d in resumed.deltas][: len(missed)] == missed
        await resumed.close()
        # Not covered: the ring (40 deltas) has moved past the resume point. Changes that
        # arrive together are published once per entity, but each new order is a delta.
        placed = [control.place_order(account, "MESZ6", "Buy", 1) for _ in range(41)]
        await until(lambda: set(placed) <= set(service.state.order_ids_of(account)))
        await until(lambda: service.hub.sequence - seen.sequence > 40)
        resync = Subscriber(
            stack.stub, request(account, resume_after_sequence=seen.sequence, resume_epoch=epoch)
        )
        await resync.wait_for(completed)
        chunk = next(m for m in resync.messages if m.WhichOneof("payload") == "snapshot")
        done = next(m for m in resync.messages if m.WhichOneof("payload") == "snapshot_complete")
        assert chunk.snapshot.resync and done.snapshot_complete.resync
        assert done.snapshot_complete.sequence > seen.sequence + 40
        await resync.close()


async def test_live_pnl_equals_hand_computed_values() -> None:
    async with running_stack(sim_config=sim_config(), **FAST) as stack:
        await synced(stack)
        control = stack.sim.control
        account = control.account_ids()[1]
        sub = Subscriber(stack.stub, request(account, kinds=[pb.UPDATE_KIND_PNL]))
        await sub.wait_for(completed)
        # Resting limits (away from the market), then filled at their limit price.
        control.move_price("ESZ6", "6100")
        control.move_price("NQZ6", "20900")
        long_es = control.place_order(account, "ESZ6", "Buy", 3, price="6000")
        control.fill_order(long_es, price="6000")
        short_nq = control.place_order(account, "NQZ6", "Sell", 2, price="21000")
        control.fill_order(short_nq, price="21000")
        control.move_price("ESZ6", "6012.25")
        control.move_price("NQZ6", "20990.5")
        # ES: (6012.25 - 6000) * 50 * 3 = 1837.5; NQ: (20990.5 - 21000) * 20 * -2 = 380.
        hand = {"ESZ6": Decimal("1837.5"), "NQZ6": Decimal("380")}

        def priced(s: Subscriber) -> bool:
            pnl = [d.pnl for d in s.deltas]
            if not pnl or not pnl[-1].mark_open_pnl.value:
                return False
            rows = {p.symbol: p.open_pnl.value for p in pnl[-1].positions}
            return all(rows.get(k) and Decimal(rows[k]) == v for k, v in hand.items())

        await sub.wait_for(priced)
        last = sub.deltas[-1].pnl
        assert last.account_id == account
        # PnL is paced and made from many quotes: an event time, no single received time.
        assert sub.deltas[-1].event_time.seconds > 0
        assert not sub.deltas[-1].HasField("received_time")
        rows = {p.symbol: p for p in last.positions}
        assert rows["ESZ6"].last_price.value == "6012.25"
        assert rows["ESZ6"].net_pos == 3 and rows["NQZ6"].net_pos == -2
        # The account's open PnL sums its open positions (the simulator seeds some more);
        # the total adds the realized PnL of its cash balance.
        open_sum = sum((Decimal(p.open_pnl.value) for p in last.positions), Decimal(0))
        assert Decimal(last.mark_open_pnl.value) == open_sum
        realized = Decimal(last.realized_pnl.value)
        assert Decimal(last.mark_total_pnl.value) == open_sum + realized
        # Opening fills realize nothing: realized PnL is still the snapshot balance's.
        chunk = next(m for m in sub.messages if m.WhichOneof("payload") == "snapshot")
        assert realized == Decimal(chunk.snapshot.account.balance.balance.realized_pnl.value)
        # Unary reads from the live state carry the same open PnL.
        reply = await stack.stub.GetPositions(
            pb.GetPositionsRequest(selector=pb.AccountSelector(accounts=[str(account)])),
            timeout=5,
        )
        unary = {p.symbol: p for p in reply.accounts[0].positions}
        assert reply.accounts[0].meta.source == pb.SOURCE_LIVE
        assert Decimal(unary["ESZ6"].open_pnl.value) == hand["ESZ6"]
        assert Decimal(unary["NQZ6"].open_pnl.value) == hand["NQZ6"]
        assert unary["ESZ6"].last_price.value == "6012.25"
        # Market data is subscribed for exactly the contracts with open positions.
        service = live_of(stack)
        assert service.views.open_contracts == service.market_contracts
        assert {3570000, 3570020} <= set(service.market_contracts)
        await sub.close()


async def test_slow_consumer_is_ended_and_does_not_delay_the_others() -> None:
    async with running_stack(sim_config=sim_config(), live_queue_capacity=32, **FAST) as stack:
        service = await synced(stack)
        control = stack.sim.control
        accounts = control.account_ids()
        # A subscriber that never reads, on a channel with a small HTTP/2 window: the
        # window fills, then its queue, then conflation cannot help any more.
        slow_channel = grpc.aio.insecure_channel(
            stack.address,
            options=[("grpc.http2.bdp_probe", 0), ("grpc.http2.lookahead_bytes", 1024)],
        )
        slow = pb_grpc.TradingServiceStub(slow_channel).StreamUpdates(request())
        fast = Subscriber(stack.stub, request())
        await fast.wait_for(completed)
        price = control.price("MESZ6") - 100
        for _ in range(1000):
            before = service.hub.sequence
            for account in accounts:
                control.place_order(account, "MESZ6", "Buy", 1, price=price)
            # One delta per new order (its version arrives with it and is coalesced).
            wanted = before + len(accounts)
            await until(reached(lambda: service.hub.sequence, wanted))
            await fast.reach(service.hub.sequence)
            if service.hub.slow_consumers_ended:
                break
        assert service.hub.slow_consumers_ended == 1
        await fast.reach(service.hub.sequence)
        start = next(
            m.snapshot_complete.sequence
            for m in fast.messages
            if m.WhichOneof("payload") == "snapshot_complete"
        )
        assert_chained(fast.deltas, start)
        assert fast.last_sequence == service.hub.sequence
        code, details = None, ""
        try:
            async for _ in slow:
                pass
        except grpc.aio.AioRpcError as exc:
            code, details = exc.code(), exc.details() or ""
        assert code is grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "resume with resume_after_sequence=" in details
        assert service.hub.stream_count == 1
        await fast.close()
        await slow_channel.close()


async def test_max_streams_cancel_cleanup_and_drain() -> None:
    async with running_stack(sim_config=sim_config(), max_streams=2, **FAST) as stack:
        service = await synced(stack)
        one = Subscriber(stack.stub, request())
        two = Subscriber(stack.stub, request())
        await one.wait_for(completed)
        await two.wait_for(completed)
        three = Subscriber(stack.stub, request())
        await asyncio.gather(three.task)
        assert three.error is not None
        assert three.error.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
        await two.close()
        await until(lambda: service.hub.stream_count == 1)
        await stack.gateway.stop()
        await asyncio.gather(one.task)
        assert one.error is not None
        assert one.error.code() is grpc.StatusCode.UNAVAILABLE
        assert "resume with resume_after_sequence=" in (one.error.details() or "")


async def test_unknown_account_is_not_found() -> None:
    async with running_stack(sim_config=sim_config(), **FAST) as stack:
        await synced(stack)
        sub = Subscriber(
            stack.stub,
            pb.StreamUpdatesRequest(selector=pb.AccountSelector(accounts=["NO-SUCH-ACCOUNT"])),
        )
        await asyncio.gather(sub.task)
        assert sub.error is not None and sub.error.code() is grpc.StatusCode.NOT_FOUND


async def test_unary_reads_are_served_live_without_upstream_calls() -> None:
    async with running_stack(sim_config=sim_config(3), **FAST) as stack:
        await synced(stack)
        control = stack.sim.control
        account = control.account_ids()[0]
        order = control.place_order(account, "ESZ6", "Buy", 1, price=control.price("ESZ6") - 20)
        await stack.stub.ListAccounts(pb.ListAccountsRequest(), timeout=5)  # warm the directory
        service = live_of(stack)
        # The order is in and the md subscriptions are settled.
        await until(
            lambda: (
                order in service.state.orders
                and service.market_contracts == service.views.open_contracts
            )
        )
        control.reset_counters()
        positions = await stack.stub.GetPositions(pb.GetPositionsRequest(), timeout=5)
        orders = await stack.stub.GetOrders(pb.GetOrdersRequest(), timeout=5)
        balances = await stack.stub.GetBalances(pb.GetBalancesRequest(), timeout=5)
        snapshot = await stack.stub.GetSnapshot(pb.GetSnapshotRequest(), timeout=5)
        metas = [a.meta for a in positions.accounts] + [a.meta for a in orders.accounts]
        metas += [a.meta for a in balances.accounts]
        metas += [a.positions.meta for a in snapshot.accounts]
        assert len(metas) == 12
        assert {m.source for m in metas} == {pb.SOURCE_LIVE}
        assert control.counters()["calls"] == {}
        first = next(a for a in orders.accounts if a.meta.account_id == account)
        assert order in [o.id for o in first.orders]
        # Explicit UPSTREAM still goes upstream.
        await stack.stub.GetPositions(
            pb.GetPositionsRequest(read_policy=pb.READ_POLICY_UPSTREAM), timeout=5
        )
        assert control.counters()["total"] > 0


async def test_500_subscribers_receive_identical_correct_sequences() -> None:
    async with running_stack(sim_config=sim_config(2), **FAST) as stack:
        service = await synced(stack)
        control = stack.sim.control
        accounts = set(control.account_ids())
        subs = [Subscriber(stack.stub, request()) for _ in range(500)]
        await asyncio.gather(*(s.wait_for(completed) for s in subs))
        assert service.hub.stream_count == 500
        start = service.hub.sequence
        for _ in range(10):
            control.random_activity(2)
            await asyncio.sleep(0.01)
        view = await converge(stack, subs[0], accounts)
        target = service.hub.sequence
        assert target > start
        await asyncio.gather(*(s.reach(target) for s in subs))
        starts = [
            next(
                m.snapshot_complete.sequence
                for m in sub.messages
                if m.WhichOneof("payload") == "snapshot_complete"
            )
            for sub in subs
        ]
        common = max(starts)
        assert common < target

        def after_common(sub: Subscriber) -> list[tuple[int, bytes]]:
            return [(d.sequence, d.SerializeToString()) for d in sub.deltas if d.sequence > common]

        reference = after_common(subs[0])
        assert reference[-1][0] == target
        for sub, own_start in zip(subs, starts, strict=True):
            assert_chained(sub.deltas, own_start)
            assert after_common(sub) == reference
        assert view.orders
        await asyncio.gather(*(s.close() for s in subs))
        await until(lambda: service.hub.stream_count == 0)


async def test_upstream_loss_health_fallback_and_unavailable_streams() -> None:
    settings = {**FAST, "upstream_loss_grace_s": 0.3, "health_interval_s": 0.05}
    async with running_stack(sim_config=sim_config(), **settings) as stack:
        service = await synced(stack)
        control = stack.sim.control
        await until_health(stack, SERVING)
        sub = Subscriber(stack.stub, request(heartbeat_interval=duration(0.1)))
        await sub.wait_for(completed)
        await sub.wait_for(lambda s: any(m.HasField("heartbeat") for m in s.messages))
        live = await stack.stub.GetPositions(pb.GetPositionsRequest(), timeout=5)
        assert {a.meta.source for a in live.accounts} == {pb.SOURCE_LIVE}
        # The sync socket drops and cannot sync again.
        control.set_error_rate(1.0, 500, endpoint="user/syncrequest")
        control.drop_sockets("user")
        await until(lambda: not service.healthy)
        await until_health(stack, NOT_SERVING)
        fallback = await stack.stub.GetPositions(pb.GetPositionsRequest(), timeout=5)
        assert {a.meta.source for a in fallback.accounts} == {pb.SOURCE_UPSTREAM}
        assert all(a.meta.status.code == 0 for a in fallback.accounts)
        await asyncio.gather(sub.task)  # ended by the server after the grace period
        assert sub.error is not None
        assert sub.error.code() is grpc.StatusCode.UNAVAILABLE
        assert "resume with resume_after_sequence=" in (sub.error.details() or "")
        beats = [m.heartbeat for m in sub.messages if m.WhichOneof("payload") == "heartbeat"]
        assert beats[0].upstream_healthy and not beats[-1].upstream_healthy
        # Back: resync, healthy, LIVE again.
        control.clear_faults()
        await until(lambda: service.healthy)
        await until_health(stack, SERVING)
        again = await stack.stub.GetPositions(pb.GetPositionsRequest(), timeout=5)
        assert {a.meta.source for a in again.accounts} == {pb.SOURCE_LIVE}


SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


async def until_health(stack: Stack, status: int) -> None:
    async with asyncio.timeout(WAIT):
        while await stack.health_status("tradovate_gateway.live") != status:  # noqa: ASYNC110
            await asyncio.sleep(0.02)


def duration(seconds: float) -> duration_pb2.Duration:
    return duration_pb2.Duration(nanos=int(seconds * 1e9))


async def test_unary_live_reads_follow_every_change() -> None:
    """Reads reuse what they built between events, and never serve it after a change:
    a new order, a fill (position and balance) and a price move each show at once."""
    async with running_stack(sim_config=sim_config(2), **FAST) as stack:
        await synced(stack)
        control = stack.sim.control
        service = live_of(stack)
        account = control.account_ids()[0]
        selector = pb.AccountSelector(accounts=[str(account)])

        async def read() -> tuple[pb.AccountPositions, pb.AccountOrders, pb.AccountBalance]:
            positions = await stack.stub.GetPositions(
                pb.GetPositionsRequest(selector=selector), timeout=5
            )
            orders = await stack.stub.GetOrders(
                pb.GetOrdersRequest(selector=selector, filter=pb.ORDER_FILTER_ALL), timeout=5
            )
            balances = await stack.stub.GetBalances(
                pb.GetBalancesRequest(selector=selector), timeout=5
            )
            parts = (positions.accounts[0], orders.accounts[0], balances.accounts[0])
            assert {p.meta.source for p in parts} == {pb.SOURCE_LIVE}
            return parts

        def es(positions: pb.AccountPositions) -> pb.Position | None:
            return next((p for p in positions.positions if p.symbol == "ESZ6"), None)

        # Market data settled: every open position's contract has its price.
        await until(
            lambda: (
                service.market_contracts == service.views.open_contracts
                and all(c in service.views.prices.last for c in service.views.open_contracts)
            )
        )
        before = await read()
        again = await read()
        assert [p.SerializeToString() for p in again] == [p.SerializeToString() for p in before]

        price = control.price("ESZ6")
        order = control.place_order(account, "ESZ6", "Buy", 2, price=price - 10)
        await until(lambda: order in service.state.orders)
        _, orders, _ = await read()
        assert order in [o.id for o in orders.orders]

        was = es(before[0])
        net_before = was.net_pos if was is not None else 0
        control.fill_order(order, price=price - 10)
        await until(
            lambda: any(
                p.account_id == account and p.contract_id == 3570000 and p.net_pos == net_before + 2
                for p in service.state.positions.values()
            )
        )
        positions, orders, balance_after_fill = await read()
        held = es(positions)
        assert held is not None and held.net_pos == net_before + 2
        assert next(o for o in orders.orders if o.id == order).status == pb.ORDER_STATUS_FILLED

        await until(lambda: service.market_contracts == service.views.open_contracts)
        moved = Decimal(str(price)) + Decimal("7.25")
        control.move_price("ESZ6", str(moved))
        await until(lambda: service.views.prices.last.get(3570000) == moved)
        positions, _, balance = await read()
        held = es(positions)
        assert held is not None and Decimal(held.last_price.value) == moved
        assert balance.balance.mark_open_pnl.value != balance_after_fill.balance.mark_open_pnl.value
