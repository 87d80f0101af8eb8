"""The cache keeps Tradovate's figures exactly, so a CACHED read writes the strings a LIVE or
UPSTREAM read of the same state writes (the rounding happens after, in convert.py)."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator, Callable
from decimal import Decimal
from typing import Any

import pytest
from google.protobuf.message import Message
from tradovate_gateway.v1 import trading_pb2 as pb

from trading_gateway.server import convert
from trading_gateway.server.broker.schemas import (
    Account,
    CashBalanceSnapshot,
    Fill,
    Order,
    OrderVersion,
    Position,
)
from trading_gateway.server.cache import Cache, MemoryCache, RedisCache
from trading_gateway.server.reads.readcache import DECODERS, encode
from trading_gateway.server.reads.records import (
    BalanceData,
    ContractRef,
    Fetched,
    Kind,
    OrderDetail,
    OrdersData,
    PositionsData,
)

NOW = dt.datetime(2026, 12, 4, 18, 0, tzinfo=dt.UTC)
ACCOUNT = Account(id=2, name="DEMO2", user_id=1, account_type="Customer", active=True)
REF = ContractRef(symbol="ESZ6", value_per_point=Decimal("50.0"), tick_size=Decimal("0.25"))
RESIDUE = Decimal("71.63333333333334")


@pytest.fixture(params=["memory", "redis"])
async def cache(request: pytest.FixtureRequest) -> AsyncIterator[Cache]:
    store: Cache
    if request.param == "memory":
        store = MemoryCache(max_entries=100)
    else:
        store = RedisCache(request.getfixturevalue("redis_url"))
    async with store:
        yield store


async def test_records_with_float_residue_round_trip_exactly(cache: Cache) -> None:
    positions = PositionsData(
        positions=[
            Position(
                id=1,
                account_id=2,
                contract_id=3,
                net_pos=3,
                net_price=RESIDUE,
                bought=3,
                bought_value=Decimal("214.90000000000001"),
                prev_price=Decimal("2386.3999999999996"),
                timestamp=NOW,
            )
        ],
        contracts={3: REF},
    )
    orders = OrdersData(
        orders=[
            OrderDetail(
                order=Order(id=4, account_id=2, contract_id=3, timestamp=NOW, ord_status="Filled"),
                version=OrderVersion(id=5, order_id=4, order_qty=3, price=Decimal("71.75")),
                fills=[
                    Fill(id=6, order_id=4, qty=1, price=Decimal("71.5")),
                    Fill(id=7, order_id=4, qty=2, price=Decimal("71.75000000000001")),
                ],
            )
        ],
        contracts={3: REF},
    )
    balance = BalanceData(
        snapshot=CashBalanceSnapshot(
            total_cash_value=Decimal("60782.503333333557"),
            realized_pnl=Decimal("529.99999999998"),
            net_liq=Decimal("58613.875"),  # a tie: half-even keeps the even cent
        )
    )
    wrote: dict[Kind, Callable[[Any], Message]] = {
        Kind.POSITIONS: lambda d: pb.Position(**convert.position_fields(d.positions[0], "x", REF)),
        Kind.ORDERS: lambda d: pb.Order(**convert.order_fields(d.orders[0], "x", REF)),
        Kind.BALANCES: lambda d: convert.balance(d, ACCOUNT),
    }
    for kind, data in (
        (Kind.POSITIONS, positions),
        (Kind.ORDERS, orders),
        (Kind.BALANCES, balance),
    ):
        key = f"tg:test:1:{kind}:2"
        await cache.set(key, encode(Fetched(data, 1.0)), ttl=30)
        raw = await cache.get(key)
        assert raw is not None
        back = DECODERS[kind].decode(raw).data
        assert back == data
        # Not only equal: the same digits (Decimal("1.0") == Decimal("1.00")).
        assert repr(back) == repr(data)
        before = wrote[kind](data).SerializeToString(deterministic=True)
        assert wrote[kind](back).SerializeToString(deterministic=True) == before

    position = pb.Position(**convert.position_fields(positions.positions[0], "x", REF))
    assert position.net_price.value == "71.63333333"
    assert position.bought_value.value == "214.9"
    assert position.prev_price.value == "2386.4"
    order = convert.order(orders.orders[0], "x", REF)
    assert order.avg_fill_price.value == "71.66666667"
    shown = convert.balance(balance, ACCOUNT)
    assert (shown.cash.value, shown.realized_pnl.value) == ("60782.5", "530")
    assert shown.net_liquidation.value == "58613.88"
