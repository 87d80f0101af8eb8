"""Tradovate's figures that the sync socket does not carry, fetched over REST in the background.

The user-sync snapshot and ``props`` events carry cash balances and, usually, margin
snapshots, but never Tradovate's open PnL, net liquidation or total PnL, and some
sessions get ``marginSnapshots: null`` or ``[]``. ``FigureRefresher`` fills those in:

- ``marginSnapshot/items`` for the accounts whose sync data has no margin snapshot,
  ``batch_size`` accounts per call (a batch that fails is retried account by account);
- ``cashBalance/getcashbalancesnapshot`` per account (Tradovate has no batch form).

An account is refreshed when its cash balance or positions change (``mark``; changes
within ``debounce`` seconds coalesce into one refresh), once the prices of its open
positions have been quiet for ``quiet`` seconds after moving (``prices_moved``: Tradovate's
open PnL moves with them; a market that never goes quiet is left to the interval, so price
ticks never cost more calls than it does), and at least every ``interval`` seconds. The
refresh has its own share of the rate budget: at most ``rate`` calls per second (so reads
keep the rest of the broker's limiter, which every call also goes through) and
``concurrency`` in flight. A round takes the changed accounts first, then the quiet ones,
then the ones due by interval, at most ``round_seconds`` of calls at that rate; the rest
wait for the next round. A failed fetch keeps the last good figures with their own
``as_of``; with none, the figure is unknown and says why (``AccountFigures.margin_error`` /
``snapshot_error``).

The task is owned by ``LiveService`` (started with the sync consumer, cancelled on close).
This module knows broker structs only, never protos.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Protocol

from trading_gateway.server.broker.errors import NOT_ACCOUNT_SPECIFIC
from trading_gateway.server.broker.schemas import CashBalanceSnapshot, MarginSnapshot
from trading_gateway.server.deadline import Deadline

logger = logging.getLogger(__name__)

#: Why a fetched figure is unknown (UnknownFigure.reason).
NOT_FETCHED_YET = "NOT_FETCHED_YET"
FETCH_FAILED = "FETCH_FAILED"


class FigureFetcher(Protocol):
    """The broker façade's two calls (trading_gateway.server.broker.client.TradovateClient)."""

    async def margin_snapshots(
        self,
        account_ids: Sequence[int],
        *,
        deadline: Deadline | None = None,
    ) -> list[MarginSnapshot]: ...

    async def cash_balance_snapshot(
        self,
        account_id: int,
        *,
        deadline: Deadline | None = None,
    ) -> CashBalanceSnapshot: ...


@dataclass(frozen=True, slots=True)
class RefreshSettings:
    #: Changes within this many seconds are fetched once.
    debounce: float = 0.25
    #: Every account is refreshed at least this often (seconds).
    interval: float = 60.0
    #: After its positions' prices move, an account is refreshed once they have been
    #: still this long (seconds).
    quiet: float = 2.0
    #: Bound on one upstream call (seconds).
    timeout: float = 10.0
    #: Accounts per ``marginSnapshot/items`` call.
    batch_size: int = 50
    #: Upstream calls in flight at once.
    concurrency: int = 4
    #: Upstream calls per second the refresh may make (0: only the broker's limiter).
    rate: float = 5.0
    #: A round holds at most this many seconds of calls at ``rate``.
    round_seconds: float = 5.0


@dataclass(frozen=True, slots=True)
class AccountFigures:
    """The last fetched figures of one account, each part with its own time (epoch s).

    ``*_error`` is the reason the part is unknown (None once a fetch succeeded): a later
    failure keeps the last good part and its time, and leaves the error unset."""

    snapshot: CashBalanceSnapshot | None = None
    snapshot_as_of: float | None = None
    snapshot_error: str | None = NOT_FETCHED_YET
    margin: MarginSnapshot | None = None
    margin_as_of: float | None = None
    margin_error: str | None = NOT_FETCHED_YET


class FigureRefresher:
    """Keeps ``AccountFigures`` per account fresh; tells ``on_update`` which accounts changed."""

    def __init__(
        self,
        fetcher: FigureFetcher,
        settings: RefreshSettings,
        *,
        accounts: Callable[[], Iterable[int]],
        needs_margin: Callable[[int], bool],
        on_update: Callable[[list[int]], None],
        on_stored: Callable[[int, AccountFigures], None] | None = None,
    ) -> None:
        """``on_update``: at the end of a round, the accounts whose figures it fetched.
        ``on_stored``: each account's figures as they are stored, one fetch at a time (a
        replica records them, so that its followers store the same at the same point)."""
        self._fetcher = fetcher
        self.settings = settings
        self._accounts = accounts
        self._needs_margin = needs_margin
        self._on_update = on_update
        self._on_stored = on_stored
        self.figures: dict[int, AccountFigures] = {}
        self._dirty: set[int] = set()
        self._wanted = asyncio.Event()
        self._refreshed_at: dict[int, float] = {}  # loop time of each account's last refresh
        self._moved: dict[int, float] = {}  # loop time of each account's latest price move
        self._gate = asyncio.Semaphore(settings.concurrency)
        self._next_call = 0.0  # loop time before which no call may start (``rate``)
        #: Rounds run and upstream calls made (for tests and metrics).
        self.rounds = 0
        self.calls = 0

    def get(self, account_id: int) -> AccountFigures | None:
        return self.figures.get(account_id)

    def mark(self, account_ids: Iterable[int]) -> None:
        """These accounts' cash or positions changed: refresh them soon (coalesced)."""
        before = len(self._dirty)
        self._dirty.update(account_ids)
        if len(self._dirty) != before:
            self._wanted.set()

    def prices_moved(self, account_ids: Iterable[int]) -> None:
        """Prices of these accounts' open positions moved: refresh once they are quiet."""
        now = asyncio.get_running_loop().time()
        moved = self._moved
        new = False
        for account_id in account_ids:
            new = new or account_id not in moved
            moved[account_id] = now
        if new:
            self._wanted.set()  # the run loop's next wake-up may now be sooner

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            if not self._dirty:
                try:
                    async with asyncio.timeout(self._next_due(loop.time())):
                        await self._wanted.wait()
                except TimeoutError:
                    pass  # an interval refresh is due
            await asyncio.sleep(self.settings.debounce)  # let a burst of changes gather
            self._wanted.clear()
            batch = self._take_round(loop.time())
            if batch:
                await self.refresh(batch)

    def _take_round(self, now: float) -> list[int]:
        """Changed accounts first, then those whose prices went quiet, then those due by
        interval, up to a round's worth."""
        interval = self.settings.interval
        changed = sorted(self._dirty)
        quiet = sorted(
            a
            for a, moved_at in self._moved.items()
            if a not in self._dirty and now - moved_at >= self.settings.quiet
        )
        taken = self._dirty.union(quiet)
        due = sorted(
            a
            for a in self._accounts()
            if a not in taken and now - self._refreshed_at.get(a, -1e18) >= interval
        )
        rate = self.settings.rate
        limit = max(1, int(rate * self.settings.round_seconds)) if rate > 0 else None
        batch = (changed + quiet + due)[:limit]
        self._dirty.difference_update(batch)
        return batch

    def _next_due(self, now: float) -> float:
        known = list(self._accounts())
        due = self.settings.interval
        if known:
            oldest = min(self._refreshed_at.get(a, -1e18) for a in known)
            due = oldest + self.settings.interval - now
        if self._moved:
            due = min(due, min(self._moved.values()) + self.settings.quiet - now)
        return max(0.0, due)

    async def refresh(self, account_ids: Sequence[int]) -> None:
        """Fetch these accounts' figures now, then report them to ``on_update``."""
        self.rounds += 1
        loop = asyncio.get_running_loop()
        for account_id in account_ids:
            self._refreshed_at[account_id] = loop.time()
            self._moved.pop(account_id, None)  # this fetch sees every move so far
        margin_ids = [a for a in account_ids if self._needs_margin(a)]
        size = self.settings.batch_size
        jobs = [self._margins(margin_ids[i : i + size]) for i in range(0, len(margin_ids), size)]
        jobs += [self._snapshot(a) for a in account_ids]
        await asyncio.gather(*jobs)
        self._on_update(list(account_ids))

    async def _margins(self, account_ids: list[int]) -> None:
        try:
            async with self._gate:
                await self._paced()
                found = await self._fetcher.margin_snapshots(
                    account_ids, deadline=Deadline.after(self.settings.timeout)
                )
        except Exception as exc:
            logger.warning("margin snapshots of %s: fetch failed (%s)", account_ids, exc)
            if len(account_ids) > 1 and not isinstance(exc, NOT_ACCOUNT_SPECIFIC):
                # One account may be what fails the batch: the others still get theirs.
                await asyncio.gather(*(self._margins([a]) for a in account_ids))
                return
            # A failure of the whole login (a circuit, a penalty, a closed session): one
            # call per account would only add calls against it.
            for account_id in account_ids:
                self._failed(account_id, margin=True)
            return
        fetched_at = time.time()
        by_id = {m.id: m for m in found}
        for account_id in account_ids:
            margin = by_id.get(account_id)
            if margin is None:
                self._failed(account_id, margin=True)
                continue
            as_of = margin.timestamp.timestamp() if margin.timestamp is not None else fetched_at
            held = self.figures.get(account_id, AccountFigures())
            self._store(
                account_id, replace(held, margin=margin, margin_as_of=as_of, margin_error=None)
            )

    async def _snapshot(self, account_id: int) -> None:
        try:
            async with self._gate:
                await self._paced()
                snapshot = await self._fetcher.cash_balance_snapshot(
                    account_id, deadline=Deadline.after(self.settings.timeout)
                )
        except Exception as exc:
            logger.warning("cash-balance snapshot of %d: fetch failed (%s)", account_id, exc)
            self._failed(account_id, margin=False)
            return
        if snapshot.error_text:
            logger.warning("cash-balance snapshot of %d: %s", account_id, snapshot.error_text)
            self._failed(account_id, margin=False)
            return
        held = self.figures.get(account_id, AccountFigures())
        self._store(
            account_id,
            replace(held, snapshot=snapshot, snapshot_as_of=time.time(), snapshot_error=None),
        )

    async def _paced(self) -> None:
        """Wait for this call's slot under ``rate``, then count it."""
        rate = self.settings.rate
        if rate > 0:
            now = asyncio.get_running_loop().time()
            start = max(now, self._next_call)
            self._next_call = start + 1 / rate
            if start > now:
                await asyncio.sleep(start - now)
        self.calls += 1

    def _store(self, account_id: int, figures: AccountFigures) -> None:
        self.figures[account_id] = figures
        if self._on_stored is not None:
            self._on_stored(account_id, figures)

    def _failed(self, account_id: int, *, margin: bool) -> None:
        """Keep the last good part; with none, the part is unknown because the fetch failed."""
        held = self.figures.get(account_id, AccountFigures())
        if margin and held.margin is None:
            self._store(account_id, replace(held, margin_error=FETCH_FAILED))
        elif not margin and held.snapshot is None:
            self._store(account_id, replace(held, snapshot_error=FETCH_FAILED))

    def forget(self, keep: Iterable[int]) -> None:
        """Drop the figures of accounts no longer in the live state."""
        kept = set(keep)
        for account_id in [a for a in self.figures if a not in kept]:
            del self.figures[account_id]
            self._refreshed_at.pop(account_id, None)
        for account_id in [a for a in self._moved if a not in kept]:
            del self._moved[account_id]
