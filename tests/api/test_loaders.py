"""Loaders own their inner calls: bounded by the fan-out concurrency, cancelled on failure.

The broker here is a stand-in for the BrokerReads protocol that counts concurrent calls
and fails on demand: concurrency and cancellation are not observable through the
simulator deterministically.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence

import pytest

from tests.support.waiting import eventually
from trading_gateway.server.broker.errors import UpstreamUnavailable
from trading_gateway.server.broker.schemas import (
    Account,
    CashBalanceSnapshot,
    Fill,
    Order,
    OrderVersion,
    Position,
)
from trading_gateway.server.deadline import Deadline
from trading_gateway.server.reads.loaders import ContractLike, Loaders

pytestmark = pytest.mark.timeout(30)


class CountingBroker:
    """Balance snapshots that wait for the test; counts how many run at once."""

    def __init__(self, failing: int | None = None) -> None:
        self.running = 0
        self.most = 0
        self.cancelled = 0
        self.failing = failing
        self.release = asyncio.Event()

    async def cash_balance_snapshot(
        self,
        account_id: int,
        *,
        deadline: Deadline | None = None,
    ) -> CashBalanceSnapshot:
        self.running += 1
        self.most = max(self.most, self.running)
        try:
            if account_id == self.failing:
                raise UpstreamUnavailable("Tradovate answered 503")
            await self.release.wait()
            return CashBalanceSnapshot(net_liq=None)
        except asyncio.CancelledError:
            self.cancelled += 1
            raise
        finally:
            self.running -= 1

    async def accounts(self, *, deadline: Deadline | None = None) -> list[Account]:
        raise NotImplementedError

    async def positions(
        self,
        account_ids: Sequence[int],
        *,
        deadline: Deadline | None = None,
    ) -> list[Position]:
        raise NotImplementedError

    async def orders(
        self,
        account_ids: Sequence[int],
        *,
        deadline: Deadline | None = None,
    ) -> list[Order]:
        raise NotImplementedError

    async def order_versions(
        self,
        order_ids: Sequence[int],
        *,
        deadline: Deadline | None = None,
    ) -> list[OrderVersion]:
        raise NotImplementedError

    async def fills(
        self,
        order_ids: Sequence[int],
        *,
        deadline: Deadline | None = None,
    ) -> list[Fill]:
        raise NotImplementedError

    async def contract_info(
        self,
        contract_ids: Sequence[int],
        *,
        deadline: Deadline | None = None,
    ) -> Mapping[int, ContractLike]:
        raise NotImplementedError


async def test_inner_calls_stay_within_the_fanout_concurrency() -> None:
    broker = CountingBroker()
    loaders = Loaders(broker, chunk_size=50, terminal_cache_size=0, concurrency=2)
    load = asyncio.ensure_future(loaders.balances(list(range(1, 9)), Deadline.after(5.0)))

    async def two_running() -> bool:
        return broker.running >= 2

    await eventually(two_running, within=5, interval=0.01)
    for _ in range(5):
        await asyncio.sleep(0)  # give any unbounded call the chance to start
    assert broker.running == 2
    broker.release.set()
    assert sorted(await load) == list(range(1, 9))
    assert broker.most == 2


async def test_a_failed_inner_call_cancels_its_siblings_and_keeps_its_type() -> None:
    broker = CountingBroker(failing=3)
    loaders = Loaders(broker, chunk_size=50, terminal_cache_size=0, concurrency=8)
    with pytest.raises(UpstreamUnavailable):
        await loaders.balances([1, 2, 3, 4], Deadline.after(5.0))
    assert broker.running == 0  # nothing left running unowned
    assert broker.cancelled == 3
