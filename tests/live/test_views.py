"""LiveViews: which deltas a snapshot, a change, a resync and a quote publish."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Sequence
from decimal import Decimal

import msgspec
from tradovate_gateway.v1 import trading_pb2 as pb

from tests.live import factories as f
from trading_gateway.server.api.status import account_status
from trading_gateway.server.broker.events import ChangeType, Entity, SyncSnapshot
from trading_gateway.server.broker.schemas import TradeDate
from trading_gateway.server.live.hub import StreamHub
from trading_gateway.server.live.state import LiveState
from trading_gateway.server.live.views import LiveViews


class Recorder:
    """Everything the hub published, decoded, via a real subscription."""

    def __init__(self, hub: StreamHub) -> None:
        self._sub = hub.subscribe(None, [])
        self._seen: list[pb.StreamUpdate] = []

    def _pull(self) -> list[pb.StreamUpdate]:
        self._seen.extend(pb.StreamUpdate.FromString(d.body) for d in self._sub.take())
        return self._seen

    def __iter__(self) -> Iterator[pb.StreamUpdate]:
        return iter(self._pull())

    def __len__(self) -> int:
        return len(self._pull())

    def __getitem__(self, index: int) -> pb.StreamUpdate:
        return self._pull()[index]

    def __eq__(self, other: object) -> bool:
        return self._pull() == other

    def clear(self) -> None:
        self._pull()
        self._seen = []


def make(pnl_interval: float = 0.0) -> tuple[LiveViews, StreamHub, Recorder]:
    hub = StreamHub(epoch="e", queue_capacity=100_000)
    views = LiveViews(LiveState(), hub, pnl_interval=pnl_interval)
    return views, hub, Recorder(hub)


def base_snapshot(reconnect: bool = False, **overrides: Sequence[Entity]) -> SyncSnapshot:
    parts: dict[str, Sequence[Entity]] = {
        "accounts": [f.account(1), f.account(2)],
        "positions": [f.position(100, 1, 2, "5000.25"), f.position(101, 2, 0, None)],
        "orders": [f.order(200, 1)],
        "order_versions": [f.version(300, 200, qty=3)],
        "fills": [f.fill(400, 200, qty=1, price="5000.25")],
        "cash_balances": [f.cash(500, 1, "10000", "25"), f.cash(501, 2, "500")],
        "margin_snapshots": [f.margin(1)],
    }
    parts.update(overrides)
    return f.snapshot(reconnect=reconnect, **parts)


def kinds(updates: list[pb.StreamUpdate]) -> list[str]:
    return [str(u.WhichOneof("payload")) for u in updates]


async def test_first_snapshot_publishes_every_view_once_in_order() -> None:
    views, _hub, got = make()
    count = views.apply(base_snapshot())
    assert count == 7
    entity_updates = [u for u in got if u.WhichOneof("payload") != "pnl"]
    assert kinds(entity_updates) == [
        "account",
        "account",
        "order",
        "position",
        "position",
        "balance",
        "balance",
    ]
    assert [u.sequence for u in got] == list(range(1, len(got) + 1))
    order = entity_updates[2].order
    assert order.change == pb.CHANGE_TYPE_CREATED
    assert (order.order.qty, order.order.filled_qty, order.order.symbol) == (3, 1, "ESZ6")
    position = entity_updates[3].position.position
    assert position.account_name == "DEMO1"
    assert position.value_per_point.value == "50"
    balance = entity_updates[5].balance.balance
    assert (balance.cash.value, balance.realized_pnl.value) == ("10000", "25")
    assert views.open_contracts == frozenset({f.ES_CONTRACT})


async def test_changes_publish_only_real_changes() -> None:
    views, _hub, got = make()
    views.apply(base_snapshot())
    got.clear()
    assert views.apply(f.change("position", f.position(100, 1, 2, "5000.25"))) == 0
    assert views.apply(f.change("position", f.position(100, 1, 3, "5001"))) == 1
    assert views.apply(f.change("fill", f.fill(401, 200, qty=2))) == 1
    assert views.apply(f.change("order", f.order(200, 1), ChangeType.DELETED)) == 1
    updates = [u for u in got if u.WhichOneof("payload") != "pnl"]
    assert updates[0].position.position.net_pos == 3
    assert updates[0].position.change == pb.CHANGE_TYPE_UPDATED
    assert updates[1].order.order.filled_qty == 3
    assert updates[2].order.change == pb.CHANGE_TYPE_DELETED
    assert updates[2].account_id == 1


async def test_changes_that_arrive_together_publish_each_view_once_with_final_state() -> None:
    views, hub, got = make()
    views.apply(base_snapshot())
    got.clear()
    # One trading action as one upstream frame: the order, its version and a fill, and the
    # position and cash balance they move.
    published = views.apply_all(
        [
            f.change("order", f.order(200, 1, "Filled")),
            f.change("orderVersion", f.version(300, 200, qty=3, price="5001")),
            f.change("fill", f.fill(401, 200, qty=2, price="5001")),
            f.change("position", f.position(100, 1, 4, "5000.5")),
            f.change("cashBalance", f.cash(500, 1, "9990", "25")),
        ]
    )
    updates = [u for u in got if u.WhichOneof("payload") != "pnl"]
    assert published == len(updates) == 3
    assert kinds(updates) == ["order", "position", "balance"]
    order = updates[0].order.order
    assert order.status == pb.ORDER_STATUS_FILLED
    assert order.filled_qty == 3  # both fills: the final state, not an intermediate one
    assert order.limit_price.value == "5001"
    assert updates[1].position.position.net_pos == 4
    assert updates[2].balance.balance.cash.value == "9990"
    # The sequence stays gap-free and each delta chains on the one before.
    assert [u.sequence for u in got] == list(range(got[0].sequence, hub.sequence + 1))
    # A change and its undoing in one batch publish nothing: the state did not change.
    got.clear()
    assert (
        views.apply_all(
            [
                f.change("position", f.position(100, 1, 9, "5000.5")),
                f.change("position", f.position(100, 1, 4, "5000.5")),
            ]
        )
        == 0
    )
    assert got == []


async def test_resync_diffs_against_what_was_held() -> None:
    views, _hub, got = make()
    views.apply(base_snapshot())
    got.clear()
    assert views.apply(base_snapshot(reconnect=True)) == 0
    assert got == []
    changed = base_snapshot(
        reconnect=True,
        positions=[f.position(100, 1, 1, "5000.25")],  # 101 is gone, 100 changed
        orders=[f.order(200, 1, "Filled")],
    )
    assert views.apply(changed) == 3
    updates = [u for u in got if u.WhichOneof("payload") != "pnl"]
    assert [(u.WhichOneof("payload"), u.account_id) for u in updates] == [
        ("order", 1),
        ("position", 1),
        ("position", 2),
    ]
    assert updates[0].order.order.status == pb.ORDER_STATUS_FILLED
    assert updates[2].position.change == pb.CHANGE_TYPE_DELETED


async def test_pnl_matches_hand_computed_values() -> None:
    views, _hub, got = make()
    views.apply(
        base_snapshot(
            positions=[
                f.position(100, 1, 2, "5000.25"),
                f.position(102, 1, -3, "18000.5", contract_id=f.NQ_CONTRACT),
            ]
        )
    )
    got.clear()
    views.on_quote(f.quote(f.ES_CONTRACT, "5010.75"))
    views.on_quote(f.quote(f.NQ_CONTRACT, "17990"))
    pnl = [u.pnl for u in got if u.WhichOneof("payload") == "pnl"]
    # ES: (5010.75 - 5000.25) * 50 * 2 = 1050; NQ: (17990 - 18000.5) * 20 * -3 = 630.
    last = pnl[-1]
    assert last.account_id == 1
    assert Decimal(last.mark_open_pnl.value) == Decimal("1680")
    assert Decimal(last.realized_pnl.value) == Decimal("25")
    assert Decimal(last.mark_total_pnl.value) == Decimal("1705")
    # The deprecated aliases carry the same (gateway's) figures.
    assert (last.open_pnl, last.total_pnl) == (last.mark_open_pnl, last.mark_total_pnl)
    assert last.HasField("mark_time")
    by_position = {p.position_id: p for p in last.positions}
    assert Decimal(by_position[100].open_pnl.value) == Decimal("1050")
    assert Decimal(by_position[102].open_pnl.value) == Decimal("630")
    # Before NQ had a price the total was unknown, not wrong.
    assert not pnl[0].HasField("mark_open_pnl")
    position = views.position(100)
    assert Decimal(position.open_pnl.value) == Decimal("1050")
    assert position.last_price.value == "5010.75"
    balance = views.balance(1)
    assert balance is not None
    # The gateway's mark is in mark_*; Tradovate's own figures were never fetched here
    # (no background refresh), so they are unknown and say so instead of showing a mark.
    assert Decimal(balance.mark_net_liquidation.value) == Decimal("11680")
    assert Decimal(balance.mark_open_pnl.value) == Decimal("1680")
    assert not balance.HasField("net_liquidation")
    unknown = {u.figure: u.reason for u in balance.unknown_figures}
    assert unknown["net_liquidation"] == unknown["open_pnl"] == "NOT_FETCHED_YET"
    # The same price again publishes nothing.
    got.clear()
    views.on_quote(f.quote(f.ES_CONTRACT, "5010.75"))
    assert got == []


async def test_pnl_is_throttled_per_account_and_latest_wins() -> None:
    views, _hub, got = make(pnl_interval=0.05)
    views.apply(base_snapshot())
    await asyncio.sleep(0.06)
    got.clear()
    for tick in range(10):
        views.on_quote(f.quote(f.ES_CONTRACT, str(5001 + tick)))
    assert len(got) == 1  # the first goes out at once
    await asyncio.sleep(0.1)
    assert len(got) == 2  # the rest collapse into one, with the latest price
    assert got[-1].pnl.positions[0].last_price.value == "5010"
    views.close()


async def test_open_contracts_follow_positions() -> None:
    seen: list[frozenset[int]] = []
    views = LiveViews(LiveState(), StreamHub(), on_contracts=seen.append)
    views.apply(base_snapshot())
    views.apply(f.change("position", f.position(102, 2, 1, "18000", contract_id=f.NQ_CONTRACT)))
    views.apply(f.change("position", f.position(100, 1, 0, None)))
    assert seen == [
        frozenset({f.ES_CONTRACT}),
        frozenset({f.ES_CONTRACT, f.NQ_CONTRACT}),
        frozenset({f.NQ_CONTRACT}),
    ]


async def test_contracts_missing_from_sync_data_are_resolved_and_views_refreshed() -> None:
    from collections.abc import Mapping

    from trading_gateway.server.broker.schemas import ContractInfo
    from trading_gateway.server.live.service import LiveService, LiveSettings

    asked: list[list[int]] = []

    async def lookup(ids: Sequence[int]) -> Mapping[int, ContractInfo]:
        asked.append(list(ids))
        return {
            9999: ContractInfo(
                contract_id=9999,
                symbol="CLZ6",
                product_name="CL",
                value_per_point=Decimal(1000),
                tick_size=Decimal("0.01"),
                currency_id=1,
            )
        }

    service = LiveService(
        LiveSettings(pnl_interval=0.0), contract_lookup=lookup, status_of=account_status
    )
    recorder = Recorder(service.hub)
    service._spawn(service._run_contract_lookups(lookup), "test-lookups")
    service.handle(base_snapshot(positions=[f.position(150, 1, 2, "70.5", contract_id=9999)]))
    before = [u.position.position for u in recorder if u.WhichOneof("payload") == "position"]
    assert before[0].symbol == ""
    for _ in range(100):
        if any(u.position.position.symbol == "CLZ6" for u in recorder):
            break
        await asyncio.sleep(0.01)
    after = [u.position for u in recorder if u.WhichOneof("payload") == "position"][-1]
    assert after.change == pb.CHANGE_TYPE_UPDATED
    assert (after.position.symbol, after.position.value_per_point.value) == ("CLZ6", "1000")
    assert asked == [[9999]]
    service.views.on_quote(f.quote(9999, "71.25"))
    pnl = [u.pnl for u in recorder if u.WhichOneof("payload") == "pnl" and u.account_id == 1][-1]
    # (71.25 - 70.5) * 1000 * 2 = 1500
    rows = {p.position_id: p for p in pnl.positions}
    assert Decimal(rows[150].open_pnl.value) == Decimal(1500)
    await service.aclose()


async def test_service_applies_a_batch_in_order_publishing_each_run_of_changes_once() -> None:
    from trading_gateway.server.broker.events import SyncStatus
    from trading_gateway.server.live.service import LiveService, LiveSettings

    service = LiveService(LiveSettings(pnl_interval=0.0), status_of=account_status)
    recorder = Recorder(service.hub)
    service.handle_all(
        [
            base_snapshot(),
            f.change("orderVersion", f.version(300, 200, qty=5)),
            f.change("fill", f.fill(401, 200, qty=2)),
            SyncStatus(False, "dropped"),
        ]
    )
    assert service.views.synced
    assert not service.healthy  # the status after the changes was applied last
    orders = [u for u in recorder if u.WhichOneof("payload") == "order"]
    assert [u.order.change for u in orders] == [pb.CHANGE_TYPE_CREATED, pb.CHANGE_TYPE_UPDATED]
    assert (orders[1].order.order.qty, orders[1].order.order.filled_qty) == (5, 3)
    await service.aclose()


async def test_balance_uses_the_latest_usd_row_not_a_sum_of_rows() -> None:
    views, _, _ = make()
    older = msgspec.structs.replace(
        f.cash(500, 1, "9000", "10"), trade_date=TradeDate(year=2024, month=4, day=24)
    )
    latest = msgspec.structs.replace(
        f.cash(501, 1, "10000", "25"), trade_date=TradeDate(year=2024, month=4, day=25)
    )
    euro = msgspec.structs.replace(f.cash(502, 1, "700", "7"), currency_id=2)
    views.apply(
        f.snapshot(
            accounts=[f.account(1), f.account(2)],
            cash_balances=[latest, older, euro, f.cash(503, 2, "1", "1")],
        )
    )
    data = views.balance_data(1)
    assert data is not None
    assert data.snapshot.total_cash_value == Decimal("10000")
    assert data.snapshot.realized_pnl == Decimal("25")
    assert data.snapshot.week_realized_pnl == Decimal("25")
    assert views.pnl(1).realized_pnl == Decimal("25")
    # Only non-USD currencies, several of them: no USD figure rather than a mixed sum.
    views.apply(
        f.change(
            "cashBalance",
            msgspec.structs.replace(f.cash(503, 2, "1", "1"), currency_id=3),
        )
    )
    views.apply(f.change("cashBalance", msgspec.structs.replace(euro, id=504, account_id=2)))
    other = views.balance_data(2)
    assert other is not None and other.snapshot.total_cash_value is None
