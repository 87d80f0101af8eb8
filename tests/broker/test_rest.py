"""REST against the simulator: typed results, deps/ldeps batching, caching, typed errors."""

from __future__ import annotations

import asyncio
import time
from decimal import Decimal

import pytest

from tests.broker.conftest import ClientFactory, client_settings
from trading_gateway.server.broker import (
    BrokerClosed,
    NotFoundError,
    TradovateClient,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from trading_gateway.server.broker.schemas import Account, Position
from trading_gateway.server.deadline import Deadline
from trading_gateway.simulator import Simulator


def calls(sim: Simulator) -> dict[str, int]:
    counted: dict[str, int] = sim.control.counters()["calls"]
    return counted


async def test_accounts_and_one_vs_many_masters(sim: Simulator, client: TradovateClient) -> None:
    accounts = await client.accounts()
    assert len(accounts) == 4 and all(isinstance(a, Account) for a in accounts)
    ids = [a.id for a in accounts]
    assert sorted(ids) == sorted(sim.control.account_ids())
    sim.control.reset_counters()

    one = await client.positions(ids[:1])
    many = await client.positions(ids + ids[:1])  # duplicates are sent once
    assert all(isinstance(p, Position) for p in many)
    assert {p.account_id for p in one} <= {ids[0]}
    assert {p.id for p in one} <= {p.id for p in many}
    orders = await client.orders(ids)
    balances = await client.cash_balances(ids)
    assert {b.account_id for b in balances} == set(ids)
    assert await client.positions([]) == []
    assert await client.orders([], deadline=Deadline.after(0.001)) == []

    counted = calls(sim)
    assert counted.get("position/deps") == 1
    assert counted.get("position/ldeps") == 1
    assert counted.get("order/ldeps") == 1 and counted.get("cashbalance/ldeps") == 1

    order_ids = [o.id for o in orders]
    if order_ids:
        versions = await client.order_versions(order_ids)
        assert {v.order_id for v in versions} <= set(order_ids)
        fills = await client.fills(order_ids[:1])
        assert all(f.order_id == order_ids[0] for f in fills)


async def test_snapshot_margin_and_orders(sim: Simulator, client: TradovateClient) -> None:
    accounts = await client.accounts()
    first = accounts[0]
    snapshot = await client.cash_balance_snapshot(first.id)
    assert snapshot.error_text is None and isinstance(snapshot.total_cash_value, Decimal)
    margins = await client.margin_snapshots([first.id])
    assert [m.id for m in margins] == [first.id]  # marginSnapshot.id == accountId
    assert len(await client.margin_snapshots([a.id for a in accounts])) == len(accounts)

    contract = sim.control.contracts()[0]
    price = Decimal(str(contract["price"])) - 40 * Decimal(str(contract["tickSize"]))
    placed = await client.place_order(
        first.id, first.name, contract["name"], "Buy", 2, "Limit", price=price
    )
    assert placed.order_id is not None and placed.failure_reason in (None, "Success")
    (version,) = await client.order_versions([placed.order_id])
    assert version.order_qty == 2 and version.price == price
    cancelled = await client.cancel_order(placed.order_id)
    assert cancelled.command_id is not None


async def test_contract_info_is_resolved_once_and_cached(
    sim: Simulator, client: TradovateClient
) -> None:
    specs = sim.control.contracts()[:3]
    ids = [c["id"] for c in specs]
    sim.control.reset_counters()
    infos = await client.contract_info([*ids, 987654321])
    assert set(infos) == set(ids)  # the unknown id is left out
    for spec in specs:
        info = infos[spec["id"]]
        assert info.symbol == spec["name"] and info.product_name == spec["product"]
        assert info.value_per_point == Decimal(str(spec["valuePerPoint"]))
        assert info.tick_size == Decimal(str(spec["tickSize"]))
    first_calls = calls(sim)
    assert first_calls.get("contract/items") == 1
    again = await client.contract_info(ids)
    assert again == {i: infos[i] for i in ids}
    assert calls(sim) == first_calls  # served from memory


async def test_an_unknown_contract_is_asked_for_once_per_ttl(
    sim: Simulator, make_client: ClientFactory
) -> None:
    def contract_lookups() -> int:  # one id goes to contract/item, several to /items
        counted = calls(sim)
        return counted.get("contract/item", 0) + counted.get("contract/items", 0)

    client = await make_client(sim, unknown_contract_ttl=0.3)
    known = sim.control.contracts()[0]["id"]
    sim.control.reset_counters()
    assert set(await client.contract_info([known, 987654321])) == {known}
    assert contract_lookups() == 1
    for _ in range(3):  # within the TTL: the unknown id costs no upstream call
        assert set(await client.contract_info([known, 987654321])) == {known}
    assert contract_lookups() == 1
    await asyncio.sleep(0.35)  # the TTL has passed: Tradovate is asked again
    assert set(await client.contract_info([987654321])) == set()
    assert contract_lookups() == 2


async def test_deadline_maps_to_upstream_timeout(sim: Simulator, client: TradovateClient) -> None:
    sim.control.set_latency(ms=2000, endpoint="account/list")
    started = time.monotonic()
    with pytest.raises(UpstreamTimeout):
        await client.accounts(deadline=Deadline.after(0.2))
    assert time.monotonic() - started < 1.5
    sim.control.clear_latency()
    assert await client.accounts()


async def test_404_5xx_and_refused_connections_are_typed(
    sim: Simulator, client: TradovateClient, make_client: ClientFactory
) -> None:
    accounts = await client.accounts()
    with pytest.raises(NotFoundError):
        await client.cash_balance_snapshot(987654321)  # 200 + errorText
    with pytest.raises(NotFoundError):
        await client.cancel_order(987654321)  # 404
    sim.control.set_error_rate(1.0, status=503, endpoint="position/deps")
    with pytest.raises(UpstreamUnavailable):
        await client.positions([accounts[0].id])
    sim.control.set_error_rate(0.0, endpoint="position/deps")

    closed = TradovateClient(client_settings(sim, rest_url="http://127.0.0.1:9/v1"))
    with pytest.raises(UpstreamUnavailable):
        await closed.start(deadline=Deadline.after(2))
    await closed.aclose()
    with pytest.raises(BrokerClosed):
        await closed.accounts()
