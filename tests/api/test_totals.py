"""Balance totals never count an unknown figure as 0 (server/convert.py ``totals_fields``)."""

from __future__ import annotations

from decimal import Decimal

from tradovate_gateway.v1 import trading_pb2 as pb

from trading_gateway.server import convert
from trading_gateway.server.broker.errors import UpstreamTimeout
from trading_gateway.server.broker.schemas import Account, CashBalanceSnapshot
from trading_gateway.server.reads.records import AccountRead, BalanceData, MarkFigures, Source

ALICE = Account(id=11, name="ALICE", active=True)
BOB = Account(id=22, name="BOB", active=True)
CAROL = Account(id=33, name="CAROL", active=True)


def known(cash: str, margin: str | None) -> BalanceData:
    value = Decimal(margin) if margin is not None else None
    return BalanceData(
        snapshot=CashBalanceSnapshot(
            total_cash_value=Decimal(cash),
            realized_pnl=Decimal("10"),
            week_realized_pnl=Decimal("10"),
            open_pnl=Decimal("5"),
            net_liq=Decimal(cash) + 5,
            total_pnl=Decimal("15"),
            initial_margin=value,
            maintenance_margin=value,
        ),
        unknown={} if margin is not None else {"initial_margin": "FETCH_FAILED"},
    )


def totals(*reads: AccountRead[BalanceData]) -> pb.BalanceTotals:
    return convert.totals(list(reads))


def test_a_figure_one_account_lacks_has_no_total_and_names_the_account() -> None:
    got = totals(
        AccountRead(ALICE, known("100", "40"), source=Source.LIVE),
        AccountRead(BOB, known("200", None), source=Source.LIVE),
    )
    assert got.accounts_included == 2
    assert got.cash.value == "300"  # known everywhere: summed
    assert not got.HasField("initial_margin")  # never 40 + 0
    assert not got.HasField("maintenance_margin")
    gaps = {g.figure: list(g.account_ids) for g in got.gaps}
    assert gaps == {"initial_margin": [22], "maintenance_margin": [22]}


def test_failed_accounts_are_counted_apart_and_not_gaps() -> None:
    got = totals(
        AccountRead(ALICE, known("100", "40"), source=Source.UPSTREAM),
        AccountRead(BOB, error=UpstreamTimeout("slow")),
    )
    assert (got.accounts_included, got.accounts_failed) == (1, 1)
    assert got.initial_margin.value == "40"
    assert list(got.gaps) == []


def test_mark_totals_need_a_mark_on_every_included_account() -> None:
    marked = BalanceData(
        snapshot=known("100", "40").snapshot,
        mark=MarkFigures(open_pnl=Decimal("7"), total_pnl=Decimal("17"), net_liquidation=None),
    )
    got = totals(
        AccountRead(ALICE, marked, source=Source.LIVE),
        AccountRead(CAROL, known("5", "1"), source=Source.UPSTREAM),  # no quotes: no mark
    )
    assert not got.HasField("mark_open_pnl")
    gaps = {g.figure: list(g.account_ids) for g in got.gaps}
    assert gaps["mark_open_pnl"] == [33]
    assert gaps["mark_net_liquidation"] == [11, 33]
    # Without a mark anywhere there is nothing to total and no gap.
    plain = totals(AccountRead(CAROL, known("5", "1"), source=Source.UPSTREAM))
    assert not plain.HasField("mark_open_pnl") and list(plain.gaps) == []


def test_every_unset_tradovate_figure_is_named_with_a_reason() -> None:
    data = BalanceData(snapshot=CashBalanceSnapshot(total_cash_value=Decimal("1")))
    balance = convert.balance(data, ALICE)
    unknown = {u.figure: u.reason for u in balance.unknown_figures}
    assert set(unknown) == set(convert.TRADOVATE_FIGURES) - {"cash"}
    assert set(unknown.values()) == {"NOT_REPORTED"}
    assert all(u.message for u in balance.unknown_figures)
