"""`watch` at a fixed terminal size: nothing wraps, status and totals always show."""

from __future__ import annotations

from decimal import Decimal

import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from tradovate_gateway.v1 import trading_pb2 as pb

from trading_gateway.client.board import WatchBoard


def d(text: str) -> pb.Decimal:
    return pb.Decimal(value=text)


def board_with(accounts: int, positions: int, orders: int) -> WatchBoard:
    board = WatchBoard()
    board.apply(pb.StreamUpdate(epoch="e1", heartbeat=pb.Heartbeat(upstream_healthy=True)))
    for n in range(accounts):
        account_id = 1000 + n
        name = f"DEMO{account_id}"
        snap = pb.AccountSnapshot(
            account=pb.Account(id=account_id, name=name),
            positions=pb.AccountPositions(
                positions=[
                    pb.Position(
                        id=account_id * 100 + i,
                        symbol=f"ESZ{i}",
                        net_pos=i + 1,
                        net_price=d("5012.25"),
                        last_price=d("5013.50"),
                        open_pnl=d("62.50"),
                    )
                    for i in range(positions)
                ]
            ),
            orders=pb.AccountOrders(
                orders=[
                    pb.Order(
                        id=account_id * 1000 + i,
                        symbol="NQZ6",
                        side=pb.SIDE_BUY,
                        qty=3,
                        filled_qty=1,
                        limit_price=d("21298.75"),
                        status=pb.ORDER_STATUS_WORKING,
                        working=True,
                        updated_time=Timestamp(seconds=1_790_000_000),
                    )
                    for i in range(orders)
                ]
            ),
            balance=pb.AccountBalance(
                balance=pb.Balance(
                    cash=d("50375.00"),
                    realized_pnl=d("375"),
                    # The board shows the gateway's mark (live), not Tradovate's figures.
                    mark_open_pnl=d("-9315.25"),
                    mark_total_pnl=d("-8940.25"),
                )
            ),
        )
        board.apply(pb.StreamUpdate(snapshot=pb.SnapshotChunk(account=snap)))
    board.apply(pb.StreamUpdate(snapshot_complete=pb.SnapshotComplete(sequence=7)))
    return board


def text(value: Decimal) -> str:
    return format(value.normalize(), "f")


@pytest.mark.parametrize(("accounts", "positions", "orders"), [(40, 3, 5), (4, 20, 20), (2, 1, 1)])
def test_the_board_fits_80_by_24(accounts: int, positions: int, orders: int) -> None:
    board = board_with(accounts, positions, orders)
    lines = board.render(80, 23).split("\n")  # 24 rows, one kept for the cursor
    assert len(lines) <= 23
    assert all(len(line) <= 80 for line in lines)
    assert lines[0].startswith("sequence 7  epoch e1  live")
    total = next(line for line in lines if line.startswith("TOTAL"))
    # Every account counted, and the sums exact: cash 50375.00 and total PnL -8940.25 each.
    # Written the way the gateway writes decimals: no trailing zeros.
    assert total.split() == [
        "TOTAL",
        f"({accounts})",
        text(Decimal("50375.00") * accounts),
        text(Decimal("-9315.25") * accounts),
        str(375 * accounts),
        text(Decimal("-8940.25") * accounts),
    ]
    shown_everything = accounts + accounts * positions + accounts * orders + 8 <= 23
    assert any("more" in line for line in lines) is not shown_everything


def test_cut_rows_say_how_many_are_hidden() -> None:
    board = board_with(40, 0, 0)
    lines = board.render(80, 23).split("\n")
    account_rows = [line for line in lines if line.startswith("DEMO")]
    (more,) = [line for line in lines if line.startswith("+")]
    assert more == f"+{40 - len(account_rows)} more"
    assert len(lines) == 23


def test_without_a_size_nothing_is_cut() -> None:
    board = board_with(40, 3, 5)
    text = board.render()
    assert "more" not in text
    assert sum(line.startswith("DEMO") for line in text.split("\n")) == 40 + 40 * 3 + 40 * 5


def test_over_several_logins_the_status_line_shows_each_login_and_which_is_down() -> None:
    board = board_with(6, 2, 2)
    for n, login in enumerate(("alpha", "bravo", "charlie")):
        done = pb.SnapshotComplete(sequence=10 * (n + 1))
        board.apply(pb.StreamUpdate(login=login, epoch=f"e{n}", snapshot_complete=done))
    board.apply(pb.StreamUpdate(login="bravo", heartbeat=pb.Heartbeat(upstream_healthy=False)))
    board.apply(pb.StreamUpdate(login="alpha", heartbeat=pb.Heartbeat(upstream_healthy=True)))
    status = board.status()
    assert status == "3 logins alpha@10 bravo@20 charlie@30  DOWN: bravo (last known state)"
    screen = board.render(80, 23).split("\n")
    assert screen[0] == status and len(screen) <= 23
    assert all(len(line) <= 80 for line in screen)
    board.apply(pb.StreamUpdate(login="bravo", heartbeat=pb.Heartbeat(upstream_healthy=True)))
    assert board.status().endswith("charlie@30  live")
