"""The differential oracle (issue 15, item 6): for many seeds, random trading in the
simulator (orders, partial and full fills, cancels, price moves), then per account and per
figure: LIVE (FRESH, live state on) vs UPSTREAM vs the simulator's ledger.

The run happens once per module (``outcome``); each test asserts one comparison over every
seed, and a failure lists the seeds, accounts and figures that differ.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from tests.oracle.run import Outcome, run_oracle

SEEDS = 200
SLOW_SEEDS = 2000
ACCOUNTS = 50
SHOWN = 25

NEEDS_ROUNDING = pytest.mark.xfail(
    reason="needs the one rounding rule in convert.py (h-decimals)", strict=True
)

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def outcome() -> Outcome:
    started = time.monotonic()
    result = asyncio.run(run_oracle(SEEDS, ACCOUNTS))
    seeds = sum(len(r.seeds) for r in result.rounds)
    print(f"\noracle: {seeds} seeds in {time.monotonic() - started:.1f} s")
    return result


def _assert_none(outcome: Outcome, check: str) -> None:
    failures = outcome.failures(check)
    shown = "\n".join(failures[:SHOWN])
    more = f"\n... and {len(failures) - SHOWN} more" if len(failures) > SHOWN else ""
    replay = outcome.first_actions(check) if failures else ""
    assert not failures, f"{check}: {len(failures)} mismatches\n{shown}{more}\n{replay}"


def test_every_seed_ran_and_live_settled(outcome: Outcome) -> None:
    assert sum(len(r.seeds) for r in outcome.rounds) == SEEDS
    assert sum(len(a) for r in outcome.rounds for a in r.actions.values()) >= 4 * SEEDS
    unsettled = [r.number for r in outcome.rounds if not r.settled]
    assert not unsettled, f"LIVE never showed the ledger in rounds {unsettled}"
    _assert_none(outcome, "sources")


def test_upstream_balances_match_the_ledger(outcome: Outcome) -> None:
    _assert_none(outcome, "upstream balances vs ledger")


def test_live_cash_realized_and_margins_match_the_ledger(outcome: Outcome) -> None:
    _assert_none(outcome, "live account figures vs ledger")


def test_live_and_upstream_cash_realized_and_margins_are_identical(outcome: Outcome) -> None:
    _assert_none(outcome, "account figures live vs upstream")


def test_live_open_pnl_net_liq_total_pnl_match_the_ledger(outcome: Outcome) -> None:
    _assert_none(outcome, "live marked figures vs ledger")


def test_live_and_upstream_open_pnl_net_liq_total_pnl_are_identical(outcome: Outcome) -> None:
    _assert_none(outcome, "marked figures live vs upstream")


def test_positions_match_the_ledger_on_both_paths(outcome: Outcome) -> None:
    _assert_none(outcome, "positions vs ledger")


def test_live_and_upstream_positions_are_identical(outcome: Outcome) -> None:
    _assert_none(outcome, "positions live vs upstream")


def test_orders_match_the_ledger_on_both_paths(outcome: Outcome) -> None:
    _assert_none(outcome, "orders vs ledger")


def test_live_and_upstream_orders_are_identical(outcome: Outcome) -> None:
    _assert_none(outcome, "orders live vs upstream")


def test_getsnapshot_and_the_stream_snapshot_match_the_ledger(outcome: Outcome) -> None:
    _assert_none(outcome, "snapshot and stream vs ledger")


def test_getsnapshot_and_the_stream_snapshot_give_the_unary_strings(outcome: Outcome) -> None:
    _assert_none(outcome, "snapshot and stream strings vs unary")


@NEEDS_ROUNDING
def test_no_string_carries_float_residue(outcome: Outcome) -> None:
    _assert_none(outcome, "rounded strings")


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_oracle_over_2000_seeds() -> None:
    """The long run: every check that holds today, over 2000 seeds (``-m slow``)."""
    result = asyncio.run(run_oracle(SLOW_SEEDS, ACCOUNTS))
    assert all(r.settled for r in result.rounds)
    for check in (
        "sources",
        "upstream balances vs ledger",
        "live account figures vs ledger",
        "account figures live vs upstream",
        "positions vs ledger",
        "positions live vs upstream",
        "orders vs ledger",
        "orders live vs upstream",
        "snapshot and stream vs ledger",
        "snapshot and stream strings vs unary",
    ):
        _assert_none(result, check)
