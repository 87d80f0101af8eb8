"""One open-PnL rule (server/mark.py) on both paths: a LIVE read and a stream delta of the
same live state show the same open PnL, for flat positions without a price too."""

from __future__ import annotations

from decimal import Decimal

from tradovate_gateway.v1 import trading_pb2 as pb

from tests.live import factories as f
from trading_gateway.server import convert
from trading_gateway.server.api.status import account_status
from trading_gateway.server.live.hub import StreamHub
from trading_gateway.server.live.kinds import UpdateKind
from trading_gateway.server.live.source import LiveViewReads
from trading_gateway.server.live.state import LiveState
from trading_gateway.server.live.views import LiveViews
from trading_gateway.server.mark import position_open_pnl
from trading_gateway.server.reads.records import AccountRead, Source


def _live(*positions: object) -> tuple[LiveViews, LiveViewReads, list[pb.StreamUpdate]]:
    hub = StreamHub(epoch="e", queue_capacity=1_000)
    sub = hub.subscribe(None, [UpdateKind.POSITIONS])
    views = LiveViews(LiveState(), hub, pnl_interval=0.0)
    snapshot = f.snapshot(accounts=[f.account(1)], positions=list(positions))  # type: ignore[arg-type]
    views.apply(snapshot)
    views.healthy = True
    source = LiveViewReads(views, hub)
    streamed = [pb.StreamUpdate.FromString(d.body) for d in sub.take()]
    return views, source, streamed


def _read_positions(source: LiveViewReads, views: LiveViews) -> dict[int, pb.Position]:
    data = source.positions([1])[1].data
    read = AccountRead(views.state.accounts[1], data, None, Source.LIVE, 1.0)
    part = pb.AccountPositions(**convert.positions_part(read, account_status, include_flat=True))
    return {p.id: p for p in part.positions}


def _streamed_positions(updates: list[pb.StreamUpdate]) -> dict[int, pb.Position]:
    return {u.position.position.id: u.position.position for u in updates}


async def test_a_flat_position_without_a_price_shows_zero_open_pnl_on_both_paths() -> None:
    views, source, streamed = _live(f.position(101, 1, 0, None))
    read = _read_positions(source, views)[101]
    sent = _streamed_positions(streamed)[101]
    assert read.open_pnl.value == sent.open_pnl.value == "0"
    assert not read.HasField("last_price") and not sent.HasField("last_price")
    views.close()


async def test_an_open_position_without_a_price_has_no_open_pnl_on_either_path() -> None:
    views, source, streamed = _live(f.position(100, 1, 2, "5000.25"))
    read = _read_positions(source, views)[100]
    sent = _streamed_positions(streamed)[100]
    assert not read.HasField("open_pnl") and not sent.HasField("open_pnl")
    views.close()


def test_the_rule_marks_open_positions_and_knows_flat_ones_without_a_price() -> None:
    flat = f.position(1, 1, 0, None)
    long = f.position(2, 1, 2, "5000.25")
    assert position_open_pnl(flat, None, None) == 0
    assert position_open_pnl(long, None, Decimal(50)) is None
    assert position_open_pnl(long, Decimal("5001.25"), None) is None
    assert position_open_pnl(long, Decimal("5001.25"), Decimal(50)) == Decimal(100)
