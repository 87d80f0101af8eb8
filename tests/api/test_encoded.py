"""Responses assembled from serialized parts parse to the same message convert.py builds."""

from __future__ import annotations

from decimal import Decimal
from typing import TypeVar

import pytest
from tradovate_gateway.v1 import trading_pb2 as pb

from tests.support import responses
from trading_gateway.server import convert, wire
from trading_gateway.server.api.encoded import PartCache, ResponseEncoder, field, timestamp_field
from trading_gateway.server.api.status import account_status
from trading_gateway.server.broker.errors import UpstreamTimeout
from trading_gateway.server.broker.schemas import Account, CashBalanceSnapshot, Order, Position
from trading_gateway.server.reads.records import (
    AccountRead,
    BalanceData,
    ContractRef,
    OrderDetail,
    OrdersData,
    PositionsData,
    Snapshot,
    Source,
)
from trading_gateway.server.wire import varint

ALICE = Account(id=11, name="ALICE", active=True)
BOB = Account(id=22, name="BOB", active=True)
CONTRACTS = {7: ContractRef(symbol="ESZ6", value_per_point=Decimal(50))}
errors: list[BaseException | None] = []
T = TypeVar("T")


def status_of(exc: BaseException | None) -> pb.AccountStatus:
    errors.append(exc)
    return account_status(exc)


def positions(net: int) -> PositionsData:
    return PositionsData(
        positions=[
            Position(id=1, account_id=11, contract_id=7, net_pos=net, net_price=Decimal("5000.25")),
            Position(id=2, account_id=11, contract_id=7, net_pos=0),
        ],
        contracts=CONTRACTS,
        last_prices={7: Decimal("5001.5")},
    )


def orders() -> OrdersData:
    return OrdersData(
        orders=[
            OrderDetail(order=Order(id=5, account_id=11, contract_id=7, ord_status="Working")),
            OrderDetail(order=Order(id=6, account_id=11, contract_id=7, ord_status="Filled")),
        ],
        contracts=CONTRACTS,
    )


def balance(cash: str) -> BalanceData:
    return BalanceData(
        snapshot=CashBalanceSnapshot(total_cash_value=Decimal(cash), net_liq=Decimal(cash))
    )


def reads_of(data: T) -> list[AccountRead[T]]:
    return [
        AccountRead(ALICE, data, None, Source.LIVE, 1_700_000_000.25),
        AccountRead(BOB, error=UpstreamTimeout("slow")),
    ]


def without_time(message: pb.GetSnapshotResponse | pb.GetBalancesResponse) -> object:
    message.ClearField("server_time")
    return message


def test_varint_and_field_follow_the_wire_format() -> None:
    assert varint(1) == b"\x01"
    assert varint(300) == b"\xac\x02"
    assert field(2, b"abc") == b"\x12\x03abc"


def test_positions_orders_and_balances_match_convert() -> None:
    encoder = ResponseEncoder()
    for _ in range(2):  # built, then reused
        pos = reads_of(positions(3))
        got = pb.GetPositionsResponse.FromString(
            encoder.positions(pos, status_of, include_flat=False)
        )
        want = responses.positions_response(pos, status_of, include_flat=False)
        assert got.HasField("server_time")
        got.ClearField("server_time")
        want.ClearField("server_time")
        assert got == want
        assert len(got.accounts[0].positions) == 1

        ords = reads_of(orders())
        got_o = pb.GetOrdersResponse.FromString(
            encoder.orders(ords, status_of, order_filter=pb.ORDER_FILTER_ALL, statuses=())
        )
        want_o = responses.orders_response(
            ords,
            status_of,
            order_filter=pb.ORDER_FILTER_ALL,
            statuses=(),
        )
        got_o.ClearField("server_time")
        want_o.ClearField("server_time")
        assert got_o == want_o
        assert len(got_o.accounts[0].orders) == 2

        bals = reads_of(balance("1000"))
        got_b = pb.GetBalancesResponse.FromString(encoder.balances(bals, status_of))
        want_b = responses.balances_response(bals, status_of)
        assert without_time(got_b) == without_time(want_b)
        assert got_b.accounts[0].HasField("balance")
        assert not got_b.accounts[1].HasField("balance")


def test_snapshot_matches_convert() -> None:
    encoder = ResponseEncoder()
    snap = Snapshot(
        [ALICE, BOB],
        reads_of(positions(2)),
        reads_of(orders()),
        reads_of(balance("250.5")),
    )
    got = pb.GetSnapshotResponse.FromString(
        encoder.snapshot(snap, status_of, include_flat=True, order_filter=pb.ORDER_FILTER_WORKING)
    )
    want = responses.snapshot_response(
        snap, status_of, include_flat=True, order_filter=pb.ORDER_FILTER_WORKING
    )
    assert without_time(got) == without_time(want)
    assert [a.account.id for a in got.accounts] == [11, 22]


def test_a_part_follows_its_content_and_failures_are_never_kept() -> None:
    encoder = ResponseEncoder(PartCache(max_entries=4))
    first = encoder.positions(reads_of(positions(3)), status_of, include_flat=False)
    errors.clear()
    # Equal content in a new object: same part; the failed account is rebuilt and counted.
    again = encoder.positions(reads_of(positions(3)), status_of, include_flat=False)
    assert [e for e in errors if e is not None] and all(
        isinstance(e, UpstreamTimeout) for e in errors if e is not None
    )
    changed = encoder.positions(reads_of(positions(4)), status_of, include_flat=False)
    parsed = [pb.GetPositionsResponse.FromString(b) for b in (first, again, changed)]
    assert parsed[0].accounts == parsed[1].accounts
    assert parsed[2].accounts[0].positions[0].net_pos == 4
    assert parsed[0].accounts[0].positions[0].net_pos == 3
    assert len(encoder.cache) <= 4


def test_timestamps_match_convert_to_the_microsecond() -> None:
    for seconds in (1_700_000_000.123456, 1_700_000_000.0, 0.5):
        want = pb.GetPositionsResponse(server_time=convert.epoch(seconds))
        got = pb.GetPositionsResponse.FromString(timestamp_field(2, seconds))
        assert got == want


def test_a_new_fetch_of_the_same_content_gets_its_own_meta() -> None:
    encoder = ResponseEncoder()
    earlier = [AccountRead(ALICE, positions(3), None, Source.UPSTREAM, 1_700_000_000.0)]
    later = [AccountRead(ALICE, positions(3), None, Source.CACHE, 1_700_000_060.0)]
    for reads in (earlier, later, earlier):
        got = pb.GetPositionsResponse.FromString(
            encoder.positions(reads, status_of, include_flat=True)
        )
        want = responses.positions_response(reads, status_of, include_flat=True)
        assert got.accounts == want.accounts
        assert got.accounts[0].meta.as_of.seconds == int(reads[0].as_of or 0)


def test_totals_follow_the_records_they_sum() -> None:
    encoder = ResponseEncoder()
    first = reads_of(balance("1000"))
    again = encoder.balances(first, status_of)
    same = encoder.balances(first, status_of)
    changed = encoder.balances(reads_of(balance("2500")), status_of)
    totals = [pb.GetBalancesResponse.FromString(b).totals for b in (again, same, changed)]
    assert totals[0] == totals[1]
    assert totals[0].cash.value == "1000"
    assert totals[2].cash.value == "2500"
    assert totals[2].accounts_failed == 1


def test_hand_written_tags_are_the_descriptor_fields_the_parser_reads() -> None:
    update = pb.StreamUpdate.DESCRIPTOR
    body = wire.tag(update, "previous_sequence") + varint(7)
    body += wire.tag(update, "epoch") + varint(2) + b"e1"
    assert pb.StreamUpdate.FromString(body) == pb.StreamUpdate(previous_sequence=7, epoch="e1")


def test_a_field_numbered_differently_across_responses_is_refused() -> None:
    responses = (pb.GetPositionsResponse.DESCRIPTOR, pb.GetBalancesResponse.DESCRIPTOR)
    assert wire.shared_number(responses, "accounts") == 1
    with pytest.raises(ValueError, match="different numbers: \\[2, 3\\]"):
        wire.shared_number(responses, "server_time")
