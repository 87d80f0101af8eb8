"""Tradovate's balance figures on LIVE: complete, the same as UPSTREAM, honest when unknown.

Real simulator over HTTP/WebSocket, real gateway and grpc.aio server (tests/support/stack).
Prices are frozen (no random walk), so Tradovate's open PnL only moves when a test moves it.
"""

from __future__ import annotations

import asyncio
import contextlib
from decimal import Decimal
from typing import Any, cast

import pytest
from google.protobuf.message import Message
from tradovate_gateway.v1 import trading_pb2 as pb

from tests.live.streaming import WAIT, Subscriber, until
from tests.support.stack import Stack, running_stack
from trading_gateway.server.convert import TRADOVATE_FIGURES
from trading_gateway.server.deadline import Deadline
from trading_gateway.server.live.components import BrokerLiveSubsystem
from trading_gateway.server.live.figures import FigureRefresher
from trading_gateway.server.live.service import LiveService
from trading_gateway.simulator import SimConfig

FAST: dict[str, Any] = {
    "ws_reconnect_initial_s": 0.02,
    "ws_reconnect_max_s": 0.2,
    "ws_reconnect_stable_s": 0.05,
    "pnl_interval_ms": 0.0,
    "live_figures_debounce_ms": 50.0,
}
SNAPSHOT_CALL = "cashbalance/getcashbalancesnapshot"
MARGIN_CALLS = ("marginsnapshot/item", "marginsnapshot/items")


def config(accounts: int = 4, **extra: Any) -> SimConfig:
    # The demo's accounts (seed 7), prices frozen.
    return SimConfig(accounts=accounts, seed=7, price_interval=0.0, **extra)


def live_of(stack: Stack) -> LiveService:
    return cast(BrokerLiveSubsystem, stack.gateway.live).service


def refresher_of(stack: Stack) -> FigureRefresher:
    refresher = live_of(stack).figures
    assert refresher is not None
    return refresher


async def fetched(stack: Stack) -> LiveService:
    """Synced, and the background refresh answered (well or not) for every account."""
    service = live_of(stack)
    assert await service.wait_synced(Deadline.after(WAIT))
    refresher = refresher_of(stack)

    def answered(account_id: int) -> bool:
        got = refresher.get(account_id)
        if got is None or got.snapshot_error == "NOT_FETCHED_YET":
            return False
        return account_id in service.state.margins or got.margin_error != "NOT_FETCHED_YET"

    def done() -> bool:
        return all(answered(a) for a in service.state.accounts)

    await until(done)
    return service


def calls(stack: Stack, *names: str) -> int:
    counted: dict[str, int] = stack.sim.control.counters()["calls"]
    return sum(n for endpoint, n in counted.items() if endpoint.lower() in names)


async def balances(stack: Stack, policy: pb.ReadPolicy.ValueType) -> pb.GetBalancesResponse:
    return await stack.stub.GetBalances(pb.GetBalancesRequest(read_policy=policy), timeout=5)


def figures(balance: pb.Balance) -> dict[str, str | None]:
    """Tradovate's figures of a balance, as text (None: unset)."""
    message: Message = balance  # HasField by a name known only at run time
    return {
        name: getattr(balance, name).value if message.HasField(name) else None
        for name in TRADOVATE_FIGURES
    }


@pytest.mark.parametrize("mode", ["null", "empty"])
async def test_live_margins_come_from_the_refresh_when_the_sync_snapshot_has_none(
    mode: str,
) -> None:
    async with running_stack(sim_config=config(sync_margin_snapshots=mode), **FAST) as stack:
        service = await fetched(stack)
        assert service.state.margins == {}  # the sync snapshot carried none
        assert calls(stack, *MARGIN_CALLS) >= 1
        live = await balances(stack, pb.READ_POLICY_FRESH)
        upstream = await balances(stack, pb.READ_POLICY_UPSTREAM)
        total_initial = Decimal(0)
        for got, want in zip(live.accounts, upstream.accounts, strict=True):
            assert got.meta.source == pb.SOURCE_LIVE
            b = got.balance
            assert b.HasField("initial_margin") and b.HasField("maintenance_margin")
            assert b.initial_margin == want.balance.initial_margin
            assert b.maintenance_margin == want.balance.maintenance_margin
            assert b.HasField("margin_time")
            assert list(b.unknown_figures) == []
            total_initial += Decimal(b.initial_margin.value)
        assert total_initial > 0  # the demo holds positions: a 0 here would be the old bug
        assert Decimal(live.totals.initial_margin.value) == total_initial
        assert list(live.totals.gaps) == []


async def test_live_and_upstream_give_the_same_balance_figures_after_activity() -> None:
    async with running_stack(sim_config=config(), **FAST) as stack:
        await fetched(stack)
        control = stack.sim.control
        control.random_activity(40)
        # Every account traded or not: LIVE's figures settle on Tradovate's (UPSTREAM's).
        last: tuple[list[Any], list[Any]] = ([], [])

        async def agree() -> bool:
            nonlocal last
            live = await balances(stack, pb.READ_POLICY_FRESH)
            upstream = await balances(stack, pb.READ_POLICY_UPSTREAM)
            last = (
                [(a.meta.source, figures(a.balance)) for a in live.accounts],
                [(pb.SOURCE_LIVE, figures(a.balance)) for a in upstream.accounts],
            )
            return last[0] == last[1]

        with contextlib.suppress(TimeoutError):  # then the assert below shows the difference
            async with asyncio.timeout(WAIT):
                while not await agree():  # noqa: ASYNC110 - polling two read paths
                    await asyncio.sleep(0.05)
        live_rows, upstream_rows = last
        assert live_rows == upstream_rows
        for _, row in live_rows:
            assert None not in row.values()  # every figure known, none replaced by 0
        # Open PnL, net liquidation and total PnL are Tradovate's, not the gateway's mark.
        reply = await balances(stack, pb.READ_POLICY_FRESH)
        for part in reply.accounts:
            b = part.balance
            assert b.HasField("tradovate_pnl_time") and b.HasField("margin_time")
            assert b.HasField("mark_open_pnl")  # the mark stays, in a field of its own
            cash, mark_open = Decimal(b.cash.value), Decimal(b.mark_open_pnl.value)
            assert Decimal(b.mark_net_liquidation.value) == cash + mark_open


async def test_totals_leave_out_a_figure_an_account_does_not_know() -> None:
    """No margin snapshots in the sync and the margin fetch failing: the margins are
    unknown and say why, the account stays OK, and the margin totals are unset with the
    accounts named, while the figures every account knows are still summed."""
    sim_config = config(accounts=2, sync_margin_snapshots="null")
    settings = {**FAST, "live_figures_debounce_ms": 1500.0}  # time to break the fetch
    async with running_stack(sim_config=sim_config, **settings) as stack:
        for endpoint in ("marginSnapshot/items", "marginSnapshot/item"):
            stack.sim.control.set_error_rate(1.0, status=500, endpoint=endpoint)
        service = await fetched(stack)
        assert refresher_of(stack).rounds == 1  # the failure came before the first round
        ids = sorted(service.state.accounts)
        reply = await balances(stack, pb.READ_POLICY_FRESH)
        cash = Decimal(0)
        for part in reply.accounts:
            assert part.meta.source == pb.SOURCE_LIVE
            assert part.meta.status.code == 0  # one missing figure hides no other
            b = part.balance
            assert not b.HasField("initial_margin") and not b.HasField("maintenance_margin")
            unknown = {u.figure: u for u in b.unknown_figures}
            assert set(unknown) == {"initial_margin", "maintenance_margin"}
            assert unknown["initial_margin"].reason == "FETCH_FAILED"
            assert "READ_POLICY_UPSTREAM" in unknown["initial_margin"].message
            cash += Decimal(b.cash.value)
        totals = reply.totals
        assert totals.accounts_included == 2
        assert not totals.HasField("initial_margin")
        assert not totals.HasField("maintenance_margin")
        gaps = {g.figure: list(g.account_ids) for g in totals.gaps}
        assert gaps == {"initial_margin": ids, "maintenance_margin": ids}
        assert Decimal(totals.cash.value) == cash
        assert totals.HasField("net_liquidation")


async def test_refresh_follows_changes_coalesced_and_keeps_the_last_good_figure() -> None:
    async with running_stack(sim_config=config(accounts=3), **FAST) as stack:
        service = await fetched(stack)
        refresher = refresher_of(stack)
        control = stack.sim.control
        account, other = sorted(service.state.accounts)[:2]
        before = refresher.get(account)
        other_before = refresher.get(other)
        assert before is not None and before.snapshot_as_of is not None
        control.reset_counters()
        # A burst of fills in one account: one refresh of that account, not one per fill.
        price = control.price("ESZ6")
        for _ in range(10):
            order = control.place_order(account, "ESZ6", "Buy", 1, price=price - 20)
            control.fill_order(order, price=price - 20)

        def refreshed() -> bool:
            got = refresher.get(account)
            return got is not None and got.snapshot_as_of != before.snapshot_as_of

        await until(refreshed)
        await asyncio.sleep(0.3)  # room for any extra refresh the burst would cause
        assert 1 <= calls(stack, SNAPSHOT_CALL) <= 3
        assert refresher.get(other) == other_before  # untouched accounts are not refetched
        reply = await balances(stack, pb.READ_POLICY_FRESH)
        upstream = await balances(stack, pb.READ_POLICY_UPSTREAM)
        mine = next(a for a in reply.accounts if a.meta.account_id == account)
        theirs = next(a for a in upstream.accounts if a.meta.account_id == account)
        assert figures(mine.balance) == figures(theirs.balance)

        # Refreshes now fail: the last good figure stays, with its own (older) time.
        good = refresher.get(account)
        assert good is not None
        control.set_error_rate(1.0, status=500, endpoint="cashBalance/getcashbalancesnapshot")
        rounds = refresher.rounds
        order = control.place_order(account, "ESZ6", "Sell", 1, price=price + 20)
        control.fill_order(order, price=price + 20)
        await until(lambda: refresher.rounds > rounds)
        kept = refresher.get(account)
        assert kept is not None
        assert (kept.snapshot, kept.snapshot_as_of) == (good.snapshot, good.snapshot_as_of)
        reply = await balances(stack, pb.READ_POLICY_FRESH)
        b = next(a for a in reply.accounts if a.meta.account_id == account).balance
        assert b.HasField("open_pnl") and list(b.unknown_figures) == []
        assert good.snapshot_as_of is not None
        assert b.tradovate_pnl_time.ToNanoseconds() == round(good.snapshot_as_of * 1e6) * 1000


async def test_interval_refresh_is_bounded() -> None:
    """With nothing changing, each account is refetched once per interval, no more."""
    settings = {**FAST, "live_figures_interval_s": 1.0}
    async with running_stack(sim_config=config(accounts=3), **settings) as stack:
        await fetched(stack)
        stack.sim.control.reset_counters()
        await asyncio.sleep(2.5)
        snapshots = calls(stack, SNAPSHOT_CALL)
        # 3 accounts, 2.5 intervals: 2 or 3 rounds (a round may straddle the window).
        assert 3 * 2 <= snapshots <= 3 * 3
        assert calls(stack, *MARGIN_CALLS) == 0  # the sync snapshot had the margins


def latest_balances(sub: Subscriber) -> dict[int, pb.Balance]:
    """Each account's latest balance on a stream: from its snapshot chunk, then deltas."""
    out: dict[int, pb.Balance] = {}
    for message in sub.messages:
        kind = message.WhichOneof("payload")
        if kind == "snapshot" and message.snapshot.account.balance.HasField("balance"):
            balance = message.snapshot.account.balance.balance
            out[balance.account_id] = balance
        elif kind == "balance":
            out[message.balance.balance.account_id] = message.balance.balance
    return out


async def test_the_stream_carries_tradovates_figures_once_fetched() -> None:
    sim_config = config(accounts=2, sync_margin_snapshots="empty")
    async with running_stack(sim_config=sim_config, **FAST) as stack:
        service = live_of(stack)
        assert await service.wait_synced(Deadline.after(WAIT))
        ids = sorted(service.state.accounts)
        sub = Subscriber(stack.stub, pb.StreamUpdatesRequest(kinds=[pb.UPDATE_KIND_BALANCES]))
        try:

            def complete(s: Subscriber) -> bool:
                got = latest_balances(s)
                return sorted(got) == ids and all(not b.unknown_figures for b in got.values())

            # Margins and Tradovate's PnL figures arrive by BalanceUpdate when fetched
            # (or are in the snapshot when the fetch was quicker than the subscription).
            await sub.wait_for(complete)
            upstream = await balances(stack, pb.READ_POLICY_UPSTREAM)
            want = {a.meta.account_id: figures(a.balance) for a in upstream.accounts}
            got = {a: figures(b) for a, b in latest_balances(sub).items()}
            assert got == want

            # A fill moves Tradovate's figures: the refetched ones follow on the stream.
            control = stack.sim.control
            price = control.price("ESZ6")
            order = control.place_order(ids[0], "ESZ6", "Buy", 2, price=price - 20)
            control.fill_order(order, price=price - 20)
            control.move_price("ESZ6", str(Decimal(str(price)) + 5))
            await asyncio.sleep(0.3)  # the fill's refetch, after the price move
            refresher = refresher_of(stack)
            rounds = refresher.rounds
            refresher.mark([ids[0]])
            await until(lambda: refresher.rounds > rounds)
            upstream = await balances(stack, pb.READ_POLICY_UPSTREAM)
            want_now = figures(upstream.accounts[0].balance)
            assert want_now != want[ids[0]]

            def followed(s: Subscriber) -> bool:
                return figures(latest_balances(s)[ids[0]]) == want_now

            await sub.wait_for(followed)
            last = [
                m
                for m in sub.messages
                if m.WhichOneof("payload") == "balance" and m.account_id == ids[0]
            ][-1]
            # Caused by a REST answer, not by a frame of Tradovate's socket.
            assert not last.HasField("received_time") and last.HasField("event_time")
        finally:
            await sub.close()


async def test_the_refresh_keeps_to_its_own_rate() -> None:
    """12 accounts changed at once, 4 calls a second allowed: the refetch is paced and
    every account still gets its figures, each fetched once."""
    settings = {**FAST, "live_figures_rate_per_second": 4.0}
    async with running_stack(sim_config=config(accounts=12), **settings) as stack:
        service = await fetched(stack)
        refresher = refresher_of(stack)
        control = stack.sim.control
        before = {a: refresher.get(a) for a in service.state.accounts}
        control.reset_counters()
        loop = asyncio.get_running_loop()
        started = loop.time()
        refresher.mark(service.state.accounts)
        await asyncio.sleep(1.0)
        # At most one call per 1/4 s from the first: 1 + 4 in the first second (+1 for a
        # call that starts on the boundary while this test's clock reads it).
        assert calls(stack, SNAPSHOT_CALL) <= 6

        def all_refetched() -> bool:
            return all(refresher.get(a) != before[a] for a in service.state.accounts)

        await until(all_refetched)
        elapsed = loop.time() - started
        assert elapsed >= (12 - 1) / 4.0  # 12 calls spaced by 1/4 s
        assert calls(stack, SNAPSHOT_CALL) == 12


async def test_one_failing_account_does_not_cost_the_others_their_margins() -> None:
    """The sync snapshot has no margins and one account's REST calls fail: the batch is
    retried account by account, so only that account's figures are unknown."""
    settings = {**FAST, "live_figures_debounce_ms": 1500.0}  # time to break one account
    sim_config = config(accounts=3, sync_margin_snapshots="null")
    async with running_stack(sim_config=sim_config, **settings) as stack:
        control = stack.sim.control
        broken, *fine = control.account_ids()
        control.fail_account(broken)
        control.reset_counters()
        service = await fetched(stack)
        refresher = refresher_of(stack)
        assert refresher.rounds == 1  # the failure came before the first round
        for account in fine:
            got = refresher.get(account)
            assert got is not None and got.margin is not None and got.margin_error is None
        lost = refresher.get(broken)
        assert lost is not None and lost.margin is None
        assert (lost.margin_error, lost.snapshot_error) == ("FETCH_FAILED", "FETCH_FAILED")
        # One batch for all three, then one call per account.
        assert calls(stack, *MARGIN_CALLS) == 1 + 3
        reply = await balances(stack, pb.READ_POLICY_FRESH)
        totals = reply.totals
        by_id = {a.meta.account_id: a for a in reply.accounts}
        for account in fine:
            assert by_id[account].meta.source == pb.SOURCE_LIVE
            assert by_id[account].balance.HasField("initial_margin")
        assert by_id[broken].meta.source == pb.SOURCE_LIVE
        assert not by_id[broken].balance.HasField("initial_margin")
        gaps = {g.figure: list(g.account_ids) for g in totals.gaps}
        assert gaps["initial_margin"] == [broken]
        assert not totals.HasField("initial_margin")
        assert service.healthy
