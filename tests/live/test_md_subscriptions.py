"""LiveService keeps md subscriptions per contract: one bad contract blocks nothing."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator, Callable

import pytest

from tests.live import factories as f
from tests.live.streaming import until
from trading_gateway.server.api.status import account_status
from trading_gateway.server.broker.errors import NotFoundError, UpstreamTimeout
from trading_gateway.server.broker.events import SyncEvent
from trading_gateway.server.broker.schemas import Quote
from trading_gateway.server.deadline import Deadline
from trading_gateway.server.live.service import LiveService, LiveSettings

UNKNOWN = 1000  # sorts before the good contracts: the old loop stopped at it every time


class OneSnapshotSync:
    """A sync feed that hands over one snapshot, then stays quiet until closed."""

    def __init__(self) -> None:
        self.closed = asyncio.Event()
        self.sink: Callable[[list[SyncEvent]], None] | None = None

    @property
    def connected(self) -> bool:
        return self.sink is not None

    def deliver_to(
        self,
        sink: Callable[[list[SyncEvent]], None],
        on_end: Callable[[BaseException | None], None],
    ) -> None:
        self.sink = sink

    async def start(self, *, deadline: Deadline | None = None) -> None:
        positions = [
            f.position(1, 1, 1, "10", UNKNOWN),
            f.position(2, 1, 1, "5000", f.ES_CONTRACT),
            f.position(3, 1, 2, "18000", f.NQ_CONTRACT),
        ]
        assert self.sink is not None
        self.sink([f.snapshot(accounts=[f.account(1)], positions=positions)])

    async def aclose(self) -> None:
        self.closed.set()


class ScriptedMarket:
    """md: UNKNOWN does not exist; NQ times out twice before it works."""

    def __init__(self) -> None:
        self.attempts: Counter[int] = Counter()
        self.closed = asyncio.Event()

    async def start(self, *, deadline: Deadline | None = None) -> None:
        return None

    async def subscribe(self, contract_id: int, *, deadline: Deadline | None = None) -> None:
        self.attempts[contract_id] += 1
        if contract_id == UNKNOWN:
            raise NotFoundError(f"Tradovate knows no contract {contract_id}")
        if contract_id == f.NQ_CONTRACT and self.attempts[contract_id] <= 2:
            raise UpstreamTimeout("md/subscribeQuote timed out")

    async def unsubscribe(self, contract_id: int, *, deadline: Deadline | None = None) -> None:
        return None

    async def quotes(self) -> AsyncIterator[Quote]:
        await self.closed.wait()
        none: list[Quote] = []  # the scripted market sends no quote
        for quote in none:
            yield quote

    async def aclose(self) -> None:
        self.closed.set()


async def test_an_unresolvable_contract_blocks_no_other_subscription() -> None:
    settings = LiveSettings(retry_delay=0.01, not_found_retry=300.0)
    service = LiveService(settings, status_of=account_status)
    market = ScriptedMarket()
    service.start(OneSnapshotSync(), market)
    try:
        await until(lambda: service.market_contracts == {f.ES_CONTRACT, f.NQ_CONTRACT})
        # NQ's transient failures were retried with backoff; the unknown contract was
        # asked once and is remembered, not re-asked every retry.
        assert market.attempts[f.NQ_CONTRACT] == 3
        assert market.attempts[UNKNOWN] == 1
        assert service.md_unresolvable == {UNKNOWN}
    finally:
        await service.aclose()


async def test_a_frame_that_fails_to_apply_takes_the_live_state_out_of_service(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A bug while applying a frame leaves state half-applied: the service stops serving
    live (reads fall back) until the resync's snapshot; the failure goes to the socket."""
    service = LiveService(LiveSettings(), status_of=account_status)
    feed = OneSnapshotSync()
    service.start(feed, None)
    try:
        await until(lambda: service.healthy)
        assert feed.sink is not None
        change = f.change("position", f.position(2, 1, 3, "5000", f.ES_CONTRACT))

        def broken(events: object) -> int:
            raise ValueError("a bug while applying")

        monkeypatch.setattr(service.views, "apply_all", broken)
        with pytest.raises(ValueError):
            feed.sink([change])  # UserSync logs it and schedules the resync
        assert not service.healthy
        assert "applying upstream events failed" in service.down_reason
        monkeypatch.undo()  # the fix: the resync's snapshot applies again
        feed.sink([f.snapshot(accounts=[f.account(1)])])
        assert service.healthy
    finally:
        await service.aclose()
