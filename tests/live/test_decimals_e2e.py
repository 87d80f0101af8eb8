"""Fractional averages end to end: the simulator trades, the wire carries rounded strings.

Three buys at two prices give a net price of a third of a tick (the simulator sends it as a
double, ``…166666666667``), an order filled at two prices gives an average fill price, and
a partial close realizes a third of a cent. Every read path (LIVE on one gateway; UPSTREAM
and the Redis cache on a second, live-off gateway over the same simulator) and the stream
must write the same state as the same strings, and none may carry float residue (the
stubs' wire check, tests/conftest.py, also looks at every Decimal received).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from decimal import Decimal
from fractions import Fraction
from typing import Any, cast

import grpc
from tradovate_gateway.v1 import trading_pb2 as pb
from tradovate_gateway.v1 import trading_pb2_grpc as pb_grpc

from tests.live.streaming import WAIT, Subscriber, until
from tests.support.residue import WIRE, CheckingChannel, decimal_strings
from tests.support.stack import Stack, running_gateway, running_stack, settings_for
from trading_gateway.server.deadline import Deadline
from trading_gateway.server.live.components import BrokerLiveSubsystem
from trading_gateway.simulator import SimConfig

LIVE = pb.READ_POLICY_FRESH
UPSTREAM = pb.READ_POLICY_UPSTREAM
CACHED = pb.READ_POLICY_CACHED
# Positions' and orders' own figures (last price and open PnL exist only on LIVE).
OWN = ("net_price", "bought_value", "sold_value", "prev_price", "value_per_point")
ORDER_OWN = ("limit_price", "stop_price", "avg_fill_price")


def eight_places(value: Fraction) -> str:
    """The rule for averages, computed independently: half-even at 8 places, canonical."""
    scaled = round(value * 10**8)
    text = format(Decimal(scaled).scaleb(-8).normalize(), "f")
    return "0" if scaled == 0 else text


@asynccontextmanager
async def upstream_gateway(stack: Stack, redis_url: str) -> AsyncIterator[Any]:
    """A second gateway over the same simulator, live state off, Redis cache, long TTLs."""
    settings = settings_for(
        stack.sim,
        redis_url,
        live_enabled=False,
        ttl_positions_s=60,
        ttl_orders_s=60,
        ttl_balances_s=60,
    )
    async with (
        running_gateway(settings) as gateway,
        grpc.aio.insecure_channel(gateway.address) as channel,
    ):
        yield pb_grpc.TradingServiceStub(cast(grpc.aio.Channel, CheckingChannel(channel)))


def own_strings(message: Any, names: tuple[str, ...]) -> dict[str, str]:
    return {name: getattr(message, name).value for name in names if message.HasField(name)}


async def test_fractional_averages_are_the_same_rounded_strings_on_every_path(
    redis_url: str,
) -> None:
    config = SimConfig(accounts=2, seed=7, price_interval=0.0)
    async with running_stack(sim_config=config, redis_url=redis_url, pnl_interval_ms=0) as stack:
        control = stack.sim.control
        live = cast(BrokerLiveSubsystem, stack.gateway.live).service
        assert await live.wait_synced(Deadline.after(WAIT))
        account = control.account_ids()[0]
        held = await stack.stub.GetPositions(
            pb.GetPositionsRequest(
                selector=pb.AccountSelector(accounts=[str(account)]), include_flat=True
            )
        )
        taken = {p.contract_id for p in held.accounts[0].positions}
        contract = next(
            c
            for c in control.contracts()
            if c["tickSize"] == 0.25 and c["id"] not in taken and c["valuePerPoint"] >= 5
        )
        symbol, tick = contract["name"], Fraction(contract["tickSize"])
        base = Fraction(str(contract["price"]))
        subscriber = Subscriber(
            stack.stub,
            pb.StreamUpdatesRequest(selector=pb.AccountSelector(accounts=[str(account)])),
        )
        try:
            # Subscribed before trading, so every change after the snapshot is a delta.
            await subscriber.wait_for(
                lambda s: any(m.WhichOneof("payload") == "snapshot_complete" for m in s.messages)
            )
            # Limits away from the market, filled by hand: net price is low + tick / 3.
            low = base - 8 * tick
            first = control.place_order(account, symbol, "Buy", 1, price=str(low))
            control.fill_order(first)
            second = control.place_order(account, symbol, "Buy", 2, price=str(low + tick))
            control.fill_order(second, price=str(low + tick), qty=1)
            control.fill_order(second, price=str(low), qty=1)  # better than its limit
            net_price = (low + (low + tick) + low) / 3
            # Sell one above: realized (price - net) x value per point, a fraction of a cent.
            close = control.place_order(account, symbol, "Sell", 1, price=str(base + 8 * tick))
            control.fill_order(close)
            mark = base + tick
            control.move_price(symbol, str(mark))

            async def live_positions() -> pb.GetPositionsResponse:
                request = pb.GetPositionsRequest(
                    selector=pb.AccountSelector(accounts=[str(account)]), read_policy=LIVE
                )
                return await stack.stub.GetPositions(request)

            async def settled() -> bool:
                reply = await live_positions()
                rows = [p for p in reply.accounts[0].positions if p.symbol == symbol]
                return bool(rows) and rows[0].net_pos == 2 and rows[0].HasField("open_pnl")

            async with asyncio.timeout(WAIT):
                while not await settled():  # noqa: ASYNC110 - polling the gateway's reads
                    await asyncio.sleep(0.02)

            selector = pb.AccountSelector(accounts=[str(account)])
            async with upstream_gateway(stack, redis_url) as other:
                reads: dict[str, tuple[Any, Any]] = {}
                for name, stub, policy in (
                    ("live", stack.stub, LIVE),
                    ("upstream", other, UPSTREAM),
                    ("cache", other, CACHED),  # what UPSTREAM just stored in Redis
                ):
                    positions = await stub.GetPositions(
                        pb.GetPositionsRequest(selector=selector, read_policy=policy)
                    )
                    orders = await stub.GetOrders(
                        pb.GetOrdersRequest(
                            selector=selector, read_policy=policy, filter=pb.ORDER_FILTER_ALL
                        )
                    )
                    reads[name] = (positions.accounts[0], orders.accounts[0])
                sources = {name: part.meta.source for name, (part, _) in reads.items()}
                assert sources == {
                    "live": pb.SOURCE_LIVE,
                    "upstream": pb.SOURCE_UPSTREAM,
                    "cache": pb.SOURCE_CACHE,
                }

            by_path: dict[str, dict[str, Any]] = {}
            for name, (positions_part, orders_part) in reads.items():
                row = next(p for p in positions_part.positions if p.symbol == symbol)
                by_path[name] = {
                    "position": own_strings(row, OWN),
                    "orders": {
                        o.id: own_strings(o, ORDER_OWN)
                        for o in orders_part.orders
                        if o.id in (first, second, close)
                    },
                }
            assert by_path["live"] == by_path["upstream"] == by_path["cache"], by_path
            shown = by_path["live"]
            assert shown["position"]["net_price"] == eight_places(net_price)
            assert len(shown["position"]["net_price"].partition(".")[2]) == 8
            assert shown["orders"][second]["avg_fill_price"] == eight_places(low + tick / 2)

            # A position's open PnL is money: cents, from the exact figures.
            live_row = next(p for p in reads["live"][0].positions if p.symbol == symbol)
            vpp = Fraction(contract["valuePerPoint"])
            exact_open = (mark - Fraction(Decimal(repr(float(net_price))))) * vpp * 2
            assert Decimal(live_row.open_pnl.value) == round(Decimal(float(exact_open)), 2)

            # The stream wrote the same state as the same strings.
            await subscriber.wait_for(lambda s: _streamed_net_price(s, live_row.id) is not None)
            await until(
                lambda: _streamed_net_price(subscriber, live_row.id) == net_pos_text(live_row)
            )
            await subscriber.wait_for(lambda s: _pnl_of(s, live_row.id) is not None)
            assert _pnl_of(subscriber, live_row.id) == live_row.open_pnl.value
            pnl = [m.pnl for m in subscriber.messages if m.WhichOneof("payload") == "pnl"]
            for update in pnl:
                for _, text in decimal_strings(update):
                    assert len(text.partition(".")[2]) <= 8
                if update.HasField("realized_pnl"):
                    assert len(update.realized_pnl.value.partition(".")[2]) <= 2
            assert WIRE.decimals > 0  # the wire check saw this traffic
        finally:
            await subscriber.close()


def net_pos_text(row: pb.Position) -> str:
    return row.net_price.value


def _streamed_net_price(subscriber: Subscriber, position_id: int) -> str | None:
    """The net price of the last position delta (or snapshot row) for ``position_id``."""
    found: str | None = None
    for message in subscriber.messages:
        which = message.WhichOneof("payload")
        if which == "position" and message.position.position.id == position_id:
            found = message.position.position.net_price.value
        elif which == "snapshot":
            for row in message.snapshot.account.positions.positions:
                if row.id == position_id:
                    found = row.net_price.value
    return found


def _pnl_of(subscriber: Subscriber, position_id: int) -> str | None:
    """The open PnL of ``position_id`` in the last PnL update that priced it."""
    found: str | None = None
    for message in subscriber.messages:
        if message.WhichOneof("payload") == "pnl":
            for row in message.pnl.positions:
                if row.position_id == position_id and row.HasField("open_pnl"):
                    found = row.open_pnl.value
    return found


def _figures(
    positions: pb.GetPositionsResponse, orders: pb.GetOrdersResponse
) -> dict[tuple[str, int], dict[str, str]]:
    """Every position's and order's own decimal strings, by entity."""
    out: dict[tuple[str, int], dict[str, str]] = {}
    for part in positions.accounts:
        for row in part.positions:
            out["position", row.id] = own_strings(row, OWN)
    for orders_part in orders.accounts:
        for order in orders_part.orders:
            out["order", order.id] = own_strings(order, ORDER_OWN)
    return out


async def test_random_trading_gives_live_and_upstream_the_same_strings(redis_url: str) -> None:
    """Random orders, fills and cancels with moving prices (the demo's traffic): once it
    stops, every position's and order's figures read the same on LIVE and UPSTREAM, and no
    Decimal received on the way (reads, the stream) has residue (tests/conftest.py)."""
    config = SimConfig(accounts=3, seed=11, price_interval=0.0)
    async with running_stack(sim_config=config, redis_url=redis_url, pnl_interval_ms=0) as stack:
        control = stack.sim.control
        live = cast(BrokerLiveSubsystem, stack.gateway.live).service
        assert await live.wait_synced(Deadline.after(WAIT))
        subscriber = Subscriber(stack.stub, pb.StreamUpdatesRequest())
        try:
            await subscriber.wait_for(
                lambda s: any(m.WhichOneof("payload") == "snapshot_complete" for m in s.messages)
            )
            for _ in range(10):
                control.random_activity(30)
                control.market_step(3)
                await asyncio.sleep(0.02)

            async def read(
                policy: pb.ReadPolicy.ValueType,
            ) -> dict[tuple[str, int], dict[str, str]]:
                positions = await stack.stub.GetPositions(
                    pb.GetPositionsRequest(read_policy=policy, include_flat=True)
                )
                orders = await stack.stub.GetOrders(
                    pb.GetOrdersRequest(read_policy=policy, filter=pb.ORDER_FILTER_ALL)
                )
                return _figures(positions, orders)

            async with asyncio.timeout(WAIT):
                while True:
                    on_live, upstream = await read(LIVE), await read(UPSTREAM)
                    shared = on_live.keys() & upstream.keys()
                    if all(on_live[k] == upstream[k] for k in shared):
                        break
                    await asyncio.sleep(0.05)
            assert len(shared) > 20
            # The traffic had averages off the grid (what float residue comes from).
            assert any(len(v.partition(".")[2]) == 8 for k in shared for v in on_live[k].values())
            assert any(k[0] == "order" and "avg_fill_price" in on_live[k] for k in shared)
            assert len([m for m in subscriber.messages if m.WhichOneof("payload") == "pnl"]) > 0
            assert WIRE.decimals > 100
        finally:
            await subscriber.close()
