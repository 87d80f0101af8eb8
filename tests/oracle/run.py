"""Drive many seeds through one simulator + gateway stack and record, per settle point, the
ledger and what every path answered: LIVE (read policy FRESH, live state on) and UPSTREAM
unary reads, GetSnapshot on both, and a StreamUpdates snapshot.

One stack serves every seed: seed ``s`` trades on account ``s mod accounts``; a round is
one seed per account, then the stack settles and is read. Later rounds trade on top of
earlier ones, so histories grow long (flat positions, partly filled and cancelled orders).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field

from tradovate_gateway.v1 import trading_pb2 as pb

from tests.oracle import compare
from tests.oracle.compare import Ledger, Mismatch, Reads
from tests.oracle.driver import Market, drive_seed
from tests.support.stack import Stack, running_stack
from trading_gateway.simulator import SimConfig

WORLD_SEED = 15
SETTLE_S = 10.0
#: How long to wait for LIVE's Tradovate-marked figures (open PnL, net liq, total PnL) to
#: match the ledger: the live refresh refetches them once quotes have been still for
#: GATEWAY_LIVE_FIGURES_QUIET_S (2 s by default, QUIET_S in the oracle's own stack).
MARKED_SETTLE_S = 6.0
#: The oracle's quiet period: short, so a round does not wait long for its refetch.
QUIET_S = 0.3
POLL_S = 0.05
DEADLINE_S = 20.0


LIVE = "LIVE"
UPSTREAM = "UPSTREAM"
LIVE_SNAPSHOT = "LIVE GetSnapshot"
STREAM = "StreamUpdates snapshot"
UPSTREAM_SNAPSHOT = "UPSTREAM GetSnapshot"
#: Each other path, and the unary path on the same side that must give the same strings.
SAME_SIDE = {LIVE_SNAPSHOT: LIVE, STREAM: LIVE, UPSTREAM_SNAPSHOT: UPSTREAM}
SOURCES = {
    LIVE: pb.SOURCE_LIVE,
    LIVE_SNAPSHOT: pb.SOURCE_LIVE,
    STREAM: pb.SOURCE_LIVE,
    UPSTREAM: pb.SOURCE_UPSTREAM,
    UPSTREAM_SNAPSHOT: pb.SOURCE_UPSTREAM,
}


@dataclass(frozen=True, slots=True)
class Round:
    number: int
    seeds: dict[int, int]  # account id -> the seed that traded on it this round
    actions: dict[int, list[str]]
    ledger: Ledger
    paths: dict[str, Reads]  # LIVE and UPSTREAM (unary reads), and the SAME_SIDE paths
    settled: bool

    @property
    def live(self) -> Reads:
        return self.paths[LIVE]

    @property
    def upstream(self) -> Reads:
        return self.paths[UPSTREAM]

    def name(self, account_id: int) -> str:
        seed = self.seeds[account_id]
        return f"seed {seed} (world {WORLD_SEED}, round {self.number}), account {account_id}"


@dataclass
class Outcome:
    rounds: list[Round] = field(default_factory=list)

    def failures(self, check: str) -> list[str]:
        """Every mismatch of one named check, each naming its seed, account and figure."""
        out: list[str] = []
        for rnd in self.rounds:
            for account_id, what in CHECKS[check](rnd):
                out.append(f"{rnd.name(account_id)}: {what}")
        return out

    def first_actions(self, check: str) -> str:
        """What the first seed that fails ``check`` did this round, to replay it by hand."""
        for rnd in self.rounds:
            for account_id, _ in CHECKS[check](rnd):
                steps = "; ".join(rnd.actions[account_id])
                return f"{rnd.name(account_id)} did: {steps}"
        return ""


CHECKS: dict[str, Callable[[Round], Iterable[Mismatch]]] = {
    "sources": lambda r: [
        _tag(path, m)
        for path, reads in r.paths.items()
        for m in (
            *compare.covers(reads, list(r.seeds)),
            *compare.sources(reads, SOURCES[path]),
        )
    ],
    "upstream balances vs ledger": lambda r: compare.balances_vs_ledger(
        r.upstream, r.ledger, compare.ALL_FIGURES
    ),
    "live account figures vs ledger": lambda r: compare.balances_vs_ledger(
        r.live, r.ledger, compare.ACCOUNT_FIGURES
    ),
    "live marked figures vs ledger": lambda r: compare.balances_vs_ledger(
        r.live, r.ledger, compare.MARKED_FIGURES
    ),
    "account figures live vs upstream": lambda r: compare.balances_across(
        r.live, r.upstream, list(compare.ACCOUNT_FIGURES)
    ),
    "marked figures live vs upstream": lambda r: compare.balances_across(
        r.live, r.upstream, list(compare.MARKED_FIGURES)
    ),
    "positions vs ledger": lambda r: [
        *(_tag("LIVE", m) for m in compare.positions_vs_ledger(r.live, r.ledger)),
        *(_tag("UPSTREAM", m) for m in compare.positions_vs_ledger(r.upstream, r.ledger)),
    ],
    "positions live vs upstream": lambda r: compare.positions_across(r.live, r.upstream),
    "orders vs ledger": lambda r: [
        *(_tag("LIVE", m) for m in compare.orders_vs_ledger(r.live, r.ledger)),
        *(_tag("UPSTREAM", m) for m in compare.orders_vs_ledger(r.upstream, r.ledger)),
    ],
    "orders live vs upstream": lambda r: compare.orders_across(r.live, r.upstream),
    "snapshot and stream vs ledger": lambda r: [
        *(
            _tag(path, m)
            for path in SAME_SIDE
            for m in (
                *compare.positions_vs_ledger(r.paths[path], r.ledger),
                *compare.orders_vs_ledger(r.paths[path], r.ledger),
                *compare.balances_vs_ledger(r.paths[path], r.ledger, compare.ACCOUNT_FIGURES),
            )
        ),
        *(
            _tag(UPSTREAM_SNAPSHOT, m)
            for m in compare.balances_vs_ledger(
                r.paths[UPSTREAM_SNAPSHOT], r.ledger, compare.MARKED_FIGURES
            )
        ),
    ],
    "snapshot and stream strings vs unary": lambda r: [
        _tag(f"{path} vs {unary}", m)
        for path, unary in SAME_SIDE.items()
        for m in (
            *compare.positions_across(r.paths[path], r.paths[unary]),
            *compare.orders_across(r.paths[path], r.paths[unary]),
            *compare.balances_across(r.paths[path], r.paths[unary], list(compare.ALL_FIGURES)),
        )
    ],
    "rounded strings": lambda r: [
        *(_tag("UPSTREAM", m) for m in compare.rounded_strings(r.upstream, compare.ALL_FIGURES)),
        *(_tag("LIVE", m) for m in compare.rounded_strings(r.live, compare.ALL_FIGURES)),
    ],
}


def _tag(path: str, mismatch: Mismatch) -> Mismatch:
    return mismatch[0], f"{path} {mismatch[1]}"


def _selector(account_ids: list[int]) -> pb.AccountSelector:
    return pb.AccountSelector(accounts=[str(a) for a in account_ids])


async def read(stack: Stack, account_ids: list[int], policy: pb.ReadPolicy.ValueType) -> Reads:
    selector = _selector(account_ids)
    balances, positions, orders = await asyncio.gather(
        stack.stub.GetBalances(
            pb.GetBalancesRequest(selector=selector, read_policy=policy), timeout=DEADLINE_S
        ),
        stack.stub.GetPositions(
            pb.GetPositionsRequest(selector=selector, read_policy=policy, include_flat=True),
            timeout=DEADLINE_S,
        ),
        stack.stub.GetOrders(
            pb.GetOrdersRequest(selector=selector, read_policy=policy, filter=pb.ORDER_FILTER_ALL),
            timeout=DEADLINE_S,
        ),
    )
    return Reads(balances, positions, orders)


def _from_snapshots(parts: Sequence[pb.AccountSnapshot]) -> Reads:
    return Reads(
        pb.GetBalancesResponse(accounts=[p.balance for p in parts]),
        pb.GetPositionsResponse(accounts=[p.positions for p in parts]),
        pb.GetOrdersResponse(accounts=[p.orders for p in parts]),
    )


async def read_snapshot(
    stack: Stack, account_ids: list[int], policy: pb.ReadPolicy.ValueType
) -> Reads:
    request = pb.GetSnapshotRequest(
        selector=_selector(account_ids),
        read_policy=policy,
        include_flat=True,
        order_filter=pb.ORDER_FILTER_ALL,
    )
    reply = await stack.stub.GetSnapshot(request, timeout=DEADLINE_S)
    return _from_snapshots(reply.accounts)


async def read_stream_snapshot(stack: Stack, account_ids: list[int]) -> Reads:
    """A StreamUpdates call's snapshot (every kind), up to its snapshot-complete marker."""
    request = pb.StreamUpdatesRequest(selector=_selector(account_ids), with_snapshot=True)
    call = stack.stub.StreamUpdates(request, timeout=DEADLINE_S)
    parts: list[pb.AccountSnapshot] = []
    try:
        async for update in call:
            kind = update.WhichOneof("payload")
            if kind == "snapshot":
                parts.append(update.snapshot.account)
            elif kind == "snapshot_complete":
                break
    finally:
        call.cancel()
    by_id = {p.account.id: p for p in parts}
    return _from_snapshots([by_id[a] for a in account_ids if a in by_id])


def _live_agrees(live: Reads, ledger: Ledger, *, marked: bool) -> bool:
    def empty(found: Iterator[Mismatch]) -> bool:
        return next(iter(found), None) is None

    if marked:
        return empty(compare.balances_vs_ledger(live, ledger, compare.MARKED_FIGURES))
    return (
        empty(compare.sources(live, pb.SOURCE_LIVE))
        and empty(compare.positions_vs_ledger(live, ledger))
        and empty(compare.orders_vs_ledger(live, ledger))
        and empty(compare.balances_vs_ledger(live, ledger, compare.ACCOUNT_FIGURES))
    )


async def _wait_for_live(
    stack: Stack, account_ids: list[int], ledger: Ledger, *, marked: bool, within: float
) -> tuple[Reads, bool]:
    """Poll LIVE until it agrees with the ledger; its last answer, and whether it agreed."""
    deadline = asyncio.get_running_loop().time() + within
    while True:
        live = await read(stack, account_ids, pb.READ_POLICY_FRESH)
        if _live_agrees(live, ledger, marked=marked):
            return live, True
        if asyncio.get_running_loop().time() >= deadline:
            return live, False
        await asyncio.sleep(POLL_S)


async def settle(stack: Stack, account_ids: list[int], ledger: Ledger) -> tuple[Reads, bool]:
    """LIVE's answer once it shows the ledger, and whether it did within SETTLE_S.

    First what the sync socket carries (positions, orders, cash, margins); then, briefly,
    Tradovate's marked figures, which LIVE can only have from a background refresh.
    """
    live, settled = await _wait_for_live(stack, account_ids, ledger, marked=False, within=SETTLE_S)
    if settled:
        live, _ = await _wait_for_live(
            stack, account_ids, ledger, marked=True, within=MARKED_SETTLE_S
        )
    return live, settled


async def run_oracle(seeds: int, accounts: int) -> Outcome:
    """Seeds 0..seeds-1 in rounds of ``accounts``; the stack is built once."""
    config = SimConfig(accounts=accounts, seed=WORLD_SEED, price_interval=0.0, activity_rate=0.0)
    outcome = Outcome()
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.INFO)  # thousands of actions: debug lines would dominate the run
    try:
        # 50 accounts start at once: their first refetch is not held to the refresh's own
        # 5 calls per second (rate 0: only the broker's limiter applies).
        async with running_stack(
            sim_config=config, live_figures_quiet_s=QUIET_S, live_figures_rate_per_second=0
        ) as stack:
            sim = stack.sim
            market = Market.of(sim)
            ids = sim.control.account_ids()
            for number, start in enumerate(range(0, seeds, accounts)):
                batch = range(start, min(seeds, start + accounts))
                seeds_of = {ids[seed % accounts]: seed for seed in batch}
                actions = {a: drive_seed(sim, market, s, a) for a, s in seeds_of.items()}
                chosen = list(seeds_of)
                ledger = {a: sim.control.ledger(a)[0] for a in chosen}
                live, settled = await settle(stack, chosen, ledger)
                paths = {
                    LIVE: live,
                    LIVE_SNAPSHOT: await read_snapshot(stack, chosen, pb.READ_POLICY_FRESH),
                    STREAM: await read_stream_snapshot(stack, chosen),
                    UPSTREAM: await read(stack, chosen, pb.READ_POLICY_UPSTREAM),
                    UPSTREAM_SNAPSHOT: await read_snapshot(stack, chosen, pb.READ_POLICY_UPSTREAM),
                }
                outcome.rounds.append(Round(number, seeds_of, actions, ledger, paths, settled))
    finally:
        root.setLevel(level)
    return outcome
