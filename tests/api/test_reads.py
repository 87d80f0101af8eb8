"""Every unary RPC against the simulator, checked against the simulator's own state."""

from __future__ import annotations

from decimal import Decimal

import grpc
import pytest
from tradovate_gateway.v1 import trading_pb2 as pb

from tests.support.stack import Stack

pytestmark = pytest.mark.timeout(60)


def _selector(*names: str) -> pb.AccountSelector:
    return pb.AccountSelector(accounts=list(names))


async def test_list_accounts_matches_the_simulator(api_stack: Stack) -> None:
    reply = await api_stack.stub.ListAccounts(pb.ListAccountsRequest(), timeout=5)
    expected = {a["id"]: a for a in api_stack.sim.control.accounts()}
    assert [a.id for a in reply.accounts] == sorted(expected)
    first = reply.accounts[0]
    wire = expected[first.id]
    assert first.name == wire["name"]
    assert first.user_id == wire["userId"]
    assert first.account_type == pb.ACCOUNT_TYPE_CUSTOMER
    assert first.active is True
    assert first.margin_account_type == wire["marginAccountType"]
    assert first.legal_status == wire["legalStatus"]
    assert first.HasField("timestamp")
    assert reply.source in (pb.SOURCE_CACHE, pb.SOURCE_UPSTREAM)
    assert reply.HasField("as_of")


async def test_list_accounts_fresh_reads_upstream_and_inactive_ones_on_request(
    api_stack: Stack,
) -> None:
    wire = api_stack.sim.control.accounts()[-1]
    api_stack.sim.control.set_account_active(wire["id"], False)  # closed upstream
    fresh = await api_stack.stub.ListAccounts(
        pb.ListAccountsRequest(read_policy=pb.READ_POLICY_FRESH), timeout=5
    )
    assert fresh.source == pb.SOURCE_UPSTREAM
    assert wire["id"] not in [a.id for a in fresh.accounts]
    everything = await api_stack.stub.ListAccounts(
        pb.ListAccountsRequest(include_inactive=True), timeout=5
    )
    inactive = [a for a in everything.accounts if not a.active]
    assert [a.id for a in inactive] == [wire["id"]]
    assert everything.source == pb.SOURCE_CACHE


async def test_list_accounts_with_a_selector_keeps_its_order(api_stack: Stack) -> None:
    ids = await api_stack.account_ids()
    names = [f"DEMO{ids[2]}", str(ids[0])]
    reply = await api_stack.stub.ListAccounts(
        pb.ListAccountsRequest(selector=_selector(*names)), timeout=5
    )
    assert [a.id for a in reply.accounts] == [ids[2], ids[0]]


async def test_positions_carry_symbols_values_and_exact_prices(api_stack: Stack) -> None:
    reply = await api_stack.stub.GetPositions(pb.GetPositionsRequest(include_flat=True), timeout=5)
    contracts = {c["id"]: c for c in api_stack.sim.control.contracts()}
    assert len(reply.accounts) == 4
    seen = 0
    for part in reply.accounts:
        assert part.meta.status.code == 0
        assert part.meta.source == pb.SOURCE_UPSTREAM  # FRESH by default, live state off
        assert part.meta.HasField("as_of")
        for position in part.positions:
            seen += 1
            contract = contracts[position.contract_id]
            assert position.account_id == part.meta.account_id
            assert position.account_name == part.meta.account_name
            assert position.symbol == contract["name"]
            assert Decimal(position.value_per_point.value) == Decimal(
                str(contract["valuePerPoint"])
            )
            if position.net_pos:
                assert Decimal(position.net_price.value) > 0
            else:
                assert not position.HasField("net_price")
    assert seen > 0


async def test_flat_positions_are_left_out_unless_asked(api_stack: Stack) -> None:
    everything = await api_stack.stub.GetPositions(
        pb.GetPositionsRequest(include_flat=True), timeout=5
    )
    open_only = await api_stack.stub.GetPositions(pb.GetPositionsRequest(), timeout=5)
    all_positions = [p for a in everything.accounts for p in a.positions]
    open_positions = [p for a in open_only.accounts for p in a.positions]
    assert all(p.net_pos != 0 for p in open_positions)
    assert {p.id for p in open_positions} == {p.id for p in all_positions if p.net_pos != 0}


async def test_orders_join_versions_and_fills(api_stack: Stack) -> None:
    control = api_stack.sim.control
    account_id = control.account_ids()[0]
    order_id = control.place_order(account_id, "ESZ6", "Buy", 5, price="5000.25")
    control.fill_order(order_id, qty=2, price="5000.25")
    reply = await api_stack.stub.GetOrders(
        pb.GetOrdersRequest(
            selector=_selector(str(account_id)), read_policy=pb.READ_POLICY_UPSTREAM
        ),
        timeout=5,
    )
    [part] = reply.accounts
    order = next(o for o in part.orders if o.id == order_id)
    assert order.symbol == "ESZ6"
    assert order.side == pb.SIDE_BUY
    assert order.qty == 5
    assert order.filled_qty == 2
    assert order.order_type == pb.ORDER_TYPE_LIMIT
    assert order.limit_price.value == "5000.25"
    assert order.avg_fill_price.value == "5000.25"
    assert order.status == pb.ORDER_STATUS_WORKING
    assert order.working is True
    assert order.version_id > 0
    assert order.HasField("created_time") and order.HasField("updated_time")
    assert order.account_name == part.meta.account_name


async def test_order_filters_and_statuses(api_stack: Stack) -> None:
    control = api_stack.sim.control
    account_id = control.account_ids()[1]
    working = control.place_order(account_id, "ESZ6", "Sell", 1, price="9000")
    done = control.place_order(account_id, "ESZ6", "Buy", 1, price="5000")
    control.cancel_order(done)
    selector = _selector(str(account_id))
    policy = pb.READ_POLICY_UPSTREAM

    default = await api_stack.stub.GetOrders(
        pb.GetOrdersRequest(selector=selector, read_policy=policy), timeout=5
    )
    every = await api_stack.stub.GetOrders(
        pb.GetOrdersRequest(selector=selector, read_policy=policy, filter=pb.ORDER_FILTER_ALL),
        timeout=5,
    )
    canceled = await api_stack.stub.GetOrders(
        pb.GetOrdersRequest(
            selector=selector,
            read_policy=policy,
            filter=pb.ORDER_FILTER_ALL,
            statuses=[pb.ORDER_STATUS_CANCELED],
        ),
        timeout=5,
    )
    default_ids = {o.id for o in default.accounts[0].orders}
    assert working in default_ids and done not in default_ids
    assert all(o.working for o in default.accounts[0].orders)
    assert {working, done} <= {o.id for o in every.accounts[0].orders}
    assert done in {o.id for o in canceled.accounts[0].orders}
    assert all(o.status == pb.ORDER_STATUS_CANCELED for o in canceled.accounts[0].orders)


async def test_pending_order_ids_are_the_working_orders(api_stack: Stack) -> None:
    control = api_stack.sim.control
    account_id = control.account_ids()[2]
    placed = control.place_order(account_id, "NQZ6", "Buy", 1, price="100")
    policy = pb.READ_POLICY_UPSTREAM
    pending = await api_stack.stub.ListPendingOrderIds(
        pb.ListPendingOrderIdsRequest(read_policy=policy), timeout=5
    )
    orders = await api_stack.stub.GetOrders(pb.GetOrdersRequest(read_policy=policy), timeout=5)
    assert [a.meta.account_id for a in pending.accounts] == [
        a.meta.account_id for a in orders.accounts
    ]
    for ids, full in zip(pending.accounts, orders.accounts, strict=True):
        assert list(ids.order_ids) == sorted(o.id for o in full.orders)
    mine = next(a for a in pending.accounts if a.meta.account_id == account_id)
    assert placed in mine.order_ids


async def test_balances_and_totals(api_stack: Stack) -> None:
    reply = await api_stack.stub.GetBalances(pb.GetBalancesRequest(), timeout=5)
    assert len(reply.accounts) == 4
    cash = Decimal(0)
    for part in reply.accounts:
        assert part.meta.status.code == 0
        balance = part.balance
        assert balance.account_id == part.meta.account_id
        assert balance.currency == "USD"
        for field in ("cash", "net_liquidation", "open_pnl", "realized_pnl", "total_pnl"):
            Decimal(getattr(balance, field).value)  # exact decimal text
        assert Decimal(balance.initial_margin.value) >= 0
        cash += Decimal(balance.cash.value)
    assert Decimal(reply.totals.cash.value) == cash
    assert reply.totals.accounts_included == 4
    assert reply.totals.accounts_failed == 0


async def test_snapshot_combines_every_part_per_account(api_stack: Stack) -> None:
    reply = await api_stack.stub.GetSnapshot(pb.GetSnapshotRequest(include_flat=True), timeout=5)
    ids = await api_stack.account_ids()
    assert [s.account.id for s in reply.accounts] == ids
    for part in reply.accounts:
        account_id = part.account.id
        assert part.positions.meta.account_id == account_id
        assert part.orders.meta.account_id == account_id
        assert part.balance.meta.account_id == account_id
        assert part.balance.balance.account_id == account_id
        assert part.positions.meta.source == pb.SOURCE_UPSTREAM
    assert reply.totals.accounts_included == 4
    assert reply.HasField("server_time")


async def test_stream_updates_is_unimplemented_without_live_state(api_stack: Stack) -> None:
    call = api_stack.stub.StreamUpdates(pb.StreamUpdatesRequest(), timeout=5)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call.read()
    assert caught.value.code() == grpc.StatusCode.UNIMPLEMENTED
    details = caught.value.details() or ""
    assert "StreamUpdates" in details
    assert "disabled by configuration" in details
    assert "GATEWAY_LIVE_ENABLED=false" in details


async def test_terminal_orders_are_not_fetched_again(api_stack: Stack) -> None:
    control = api_stack.sim.control
    pending = await api_stack.stub.ListPendingOrderIds(
        pb.ListPendingOrderIdsRequest(read_policy=pb.READ_POLICY_UPSTREAM), timeout=5
    )
    for part in pending.accounts:
        for order_id in part.order_ids:
            control.cancel_order(order_id)  # now every order is terminal
    request = pb.GetOrdersRequest(read_policy=pb.READ_POLICY_UPSTREAM, filter=pb.ORDER_FILTER_ALL)
    first = await api_stack.stub.GetOrders(request, timeout=5)
    assert all(not o.working for a in first.accounts for o in a.orders)
    control.reset_counters()
    second = await api_stack.stub.GetOrders(request, timeout=5)
    assert api_stack.upstream_calls("order/ldeps") == 1
    assert api_stack.upstream_calls("orderVersion/ldeps") == 0
    assert api_stack.upstream_calls("fill/ldeps") == 0
    assert [list(a.orders) for a in second.accounts] == [list(a.orders) for a in first.accounts]
