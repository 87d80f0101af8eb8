"""Done-when (issue 15): for every account of the demo stack (server/demo.py's defaults),
after activity stops, LIVE and UPSTREAM give identical strings for every balance field."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import pytest
from tradovate_gateway.v1 import trading_pb2 as pb

from tests.oracle import compare
from tests.oracle.compare import Reads
from tests.oracle.run import read, settle
from tests.support.stack import running_stack
from trading_gateway.server.demo import DemoOptions
from trading_gateway.simulator import SimConfig

ACTIVE_S = 2.0  # the demo's own background life: random walk and random activity
EXTRA_ACTIONS = 40  # plus a burst of random trading, so every account has traded

pytestmark = pytest.mark.timeout(120)


@dataclass(frozen=True, slots=True)
class DemoReads:
    account_ids: list[int]
    live: Reads
    upstream: Reads
    settled: bool


async def _demo_reads() -> DemoReads:
    options = DemoOptions()
    config = SimConfig(
        accounts=options.accounts, seed=options.seed, activity_rate=options.activity_rate
    )
    async with running_stack(sim_config=config) as stack:
        control = stack.sim.control
        control.random_activity(EXTRA_ACTIONS)
        await asyncio.sleep(ACTIVE_S)
        control.set_activity(0)
        control.set_price_interval(0)
        ids = await stack.account_ids()
        ledger = {row["accountId"]: row for row in control.ledger()}
        live, settled = await settle(stack, ids, ledger)
        upstream = await read(stack, ids, pb.READ_POLICY_UPSTREAM)
        return DemoReads(ids, live, upstream, settled)


@pytest.fixture(scope="module")
def demo() -> DemoReads:
    return asyncio.run(_demo_reads())


def _differences(demo: DemoReads, fields: list[str]) -> list[str]:
    return [
        f"account {a}: {what}"
        for a, what in compare.balances_across(demo.live, demo.upstream, fields)
    ]


def test_every_demo_account_answers_live_and_upstream(demo: DemoReads) -> None:
    assert len(demo.account_ids) == DemoOptions().accounts
    assert demo.settled, "LIVE never caught up with the simulator"
    assert not list(compare.sources(demo.live, pb.SOURCE_LIVE))
    assert not list(compare.sources(demo.upstream, pb.SOURCE_UPSTREAM))
    assert [p.meta.account_id for p in demo.live.balances.accounts] == demo.account_ids


def test_cash_realized_and_margins_are_identical_strings(demo: DemoReads) -> None:
    assert not _differences(demo, list(compare.ACCOUNT_FIGURES))


def test_open_pnl_net_liq_and_total_pnl_are_identical_strings(demo: DemoReads) -> None:
    assert not _differences(demo, list(compare.MARKED_FIGURES))
