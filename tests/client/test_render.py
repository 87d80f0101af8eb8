"""Rendering real response messages as tables and JSON."""

from __future__ import annotations

import json

from google.protobuf import json_format
from google.rpc import code_pb2
from tradovate_gateway.v1 import trading_pb2 as pb

from tests.client import samples
from trading_gateway.client import render


def test_format_table_aligns_columns() -> None:
    text = render.format_table(("A", "NUM"), [("long-name", "1"), ("x", "12345")], right={1})
    assert text.splitlines() == ["A            NUM", "long-name      1", "x          12345"]


def test_accounts_table_and_footer() -> None:
    lines = render.render_accounts(samples.LIST_ACCOUNTS).splitlines()
    assert lines[0].split() == [
        *("ID", "NAME", "TYPE", "ACTIVE", "READONLY", "MARGIN", "TYPE", "LEGAL", "STATUS")
    ]
    assert lines[1].split() == ["101", "DEMO1", "CUSTOMER", "yes", "no", "Speculator", "Individual"]
    assert lines[2].split() == ["102", "DEMO2", "CUSTOMER", "yes", "no", "-", "-"]
    assert lines[3] == "2 accounts (source: cache, as of 2026-11-18 11:06:40)"


def test_positions_rows_and_failed_account() -> None:
    lines = render.render_positions(samples.POSITIONS).splitlines()
    header = lines[0]
    assert header.split() == ["ACCOUNT", "SYMBOL", "NET", "POS", "NET", "PRICE", "OPEN", "PNL"]
    assert lines[1].split() == ["DEMO1", "ESZ6", "2", "5012.25", "-137.50"]
    assert lines[2].split() == ["DEMO1", "MNQZ6", "-10", "20110.5", "1250"]
    # Numbers are right-aligned: their last characters line up with the header's.
    assert lines[1].endswith("-137.50") and len(lines[1]) == len(lines[2]) == len(header)
    assert lines[3:] == [
        "",
        "accounts not OK:",
        "  DEMO2  DEADLINE_EXCEEDED: Tradovate did not answer in time "
        "[UPSTREAM_TIMEOUT, retry after 2s]",
    ]


def test_positions_empty() -> None:
    empty = pb.GetPositionsResponse(accounts=[pb.AccountPositions(meta=samples.meta(1, "A"))])
    assert render.render_positions(empty) == "no open positions"


def test_orders_rows() -> None:
    lines = render.render_orders(samples.ORDERS).splitlines()
    header = lines[0]
    assert header.split()[:2] == ["ACCOUNT", "ID"]
    first, second = lines[1], lines[2]
    assert first.split() == [
        *("DEMO1", "7001", "ESZ6", "BUY", "3", "1", "STOP_LIMIT", "5000.25/5001", "WORKING"),
        *("2026-11-18", "11:06:40"),
    ]
    assert second.split() == [
        *("DEMO1", "7002", "MNQZ6", "SELL", "1", "0", "MARKET", "-", "PENDING_NEW", "-")
    ]
    status_at = header.index("STATUS")
    assert first[status_at:].startswith("WORKING")
    assert second[status_at:].startswith("PENDING_NEW")
    assert "DEMO2  UNAVAILABLE: Tradovate unreachable" in lines[-1]


def test_pending_lists_ids_per_account() -> None:
    lines = render.render_pending(samples.PENDING).splitlines()
    assert lines[0].split() == ["ACCOUNT", "COUNT", "ORDER", "IDS"]
    assert lines[1].split() == ["DEMO1", "2", "7001,7002"]
    assert lines[2].split() == ["DEMO2", "0"]


def test_balances_with_totals_row() -> None:
    lines = render.render_balances(samples.BALANCES).splitlines()
    assert lines[0].split()[:3] == ["ACCOUNT", "CCY", "CASH"]
    assert lines[1].split() == [
        *("DEMO1", "USD", "50000.00", "51112.50", "1112.50", "-20.00", "2400", "2200")
    ]
    assert lines[2].split() == [
        *("TOTAL", "(1", "ok,", "1", "failed)", "50000.00", "51112.50", "1112.50", "-20.00"),
        *("2400", "2200"),
    ]
    assert lines[-1].startswith("  DEMO2  DEADLINE_EXCEEDED")


def test_a_total_with_gaps_is_blank_and_names_the_accounts() -> None:
    response = pb.GetBalancesResponse()
    response.CopyFrom(samples.BALANCES)
    response.totals.ClearField("initial_margin")
    response.totals.gaps.add(figure="initial_margin", account_ids=[101, 103])
    response.totals.gaps.add(figure="mark_open_pnl", account_ids=[103])  # not a column
    lines = render.render_balances(response).splitlines()
    total = lines[2].split()
    assert total[-2:] == ["-", "2200"]  # blank, never 0
    gaps = [line for line in lines if line.startswith("no total")]
    assert gaps == ["no total initial_margin: unknown for account(s) 101, 103"]


def test_snapshot_has_every_section() -> None:
    text = render.render_snapshot(samples.SNAPSHOT)
    sections = text.split("\n\n== ")
    assert [s.splitlines()[0].removeprefix("== ") for s in sections] == [
        "ACCOUNTS",
        "POSITIONS",
        "ORDERS",
        "BALANCES",
    ]
    assert "ESZ6" in sections[1] and "7001" in sections[2] and "TOTAL" in sections[3]


def test_json_uses_proto_field_names_and_round_trips() -> None:
    text = render.render_json(samples.POSITIONS)
    data = json.loads(text)
    first = data["accounts"][0]["positions"][0]
    assert first["net_pos"] == "2"  # int64 is a string in proto JSON
    assert first["net_price"] == {"value": "5012.25"}
    assert data["accounts"][1]["meta"]["status"]["code"] == "DEADLINE_EXCEEDED"
    assert json_format.Parse(text, pb.GetPositionsResponse()) == samples.POSITIONS


def test_empty_tables_say_whether_accounts_failed() -> None:
    failed = samples.meta(2, "B", code_pb2.UNAVAILABLE, "down")
    orders = pb.GetOrdersResponse(accounts=[pb.AccountOrders(meta=failed)])
    assert render.render_orders(orders).splitlines()[:3] == [
        "no orders in the accounts that answered",
        "",
        "accounts not OK:",
    ]
    balances = pb.GetBalancesResponse(accounts=[pb.AccountBalance(meta=samples.meta(1, "A"))])
    assert render.render_balances(balances) == "no balances"
    pending = pb.ListPendingOrderIdsResponse()
    assert render.render_pending(pending) == "no pending orders"
