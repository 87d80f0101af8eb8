"""GroupFetch: the life of one group of accounts in a fan-out (batch, hedges, retries).

``FanOut`` (fanout.py) decides which accounts go together and owns the task that runs
a group; this module runs it: one batch call, per-account hedges when it lags, per-account
retries when it fails for an account-specific reason, and an answer or an error for each.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Generic, TypeVar

from trading_gateway.server.broker.errors import NOT_ACCOUNT_SPECIFIC, UpstreamTimeout
from trading_gateway.server.deadline import Deadline
from trading_gateway.server.reads.records import Fetched, now_epoch

if TYPE_CHECKING:
    from trading_gateway.server.reads.fanout import FanOut

logger = logging.getLogger(__name__)

T = TypeVar("T")


class GroupFetch(Generic[T]):
    """One fetch of a group of accounts, from its batch call until every account is answered.

    The batch call starts at once. If it is still pending after the hedge delay (counted
    from when the call itself started, and put off while a p-ticket is being sat out),
    per-account calls race it; if it fails with an account-specific error, each account
    is retried alone. Each account's future is resolved exactly once, with the first
    answer or the last error; ``troubled`` names the accounts that failed or lagged, for
    the owner to isolate, and ``fetched`` what arrived, for its sink.
    """

    def __init__(
        self,
        owner: FanOut[T],
        ids: list[int],
        futures: dict[int, asyncio.Future[Fetched[T]]],
        deadline: Deadline,
    ) -> None:
        self.owner = owner
        self.ids = ids
        self.unresolved = dict(futures)
        self.deadline = deadline
        self.fetched: dict[int, Fetched[T]] = {}
        self.troubled: set[int] = set()
        self.errors: dict[int, BaseException] = {}
        self.singles: dict[asyncio.Task[Mapping[int, T]], int] = {}
        self.single_started: dict[int, float] = {}
        self.batch: asyncio.Task[Mapping[int, T]] | None = None
        # When the batch's upstream call started (it may first wait for a limiter slot).
        self.batch_started: float | None = None
        # The end of the last p-ticket seen while the batch was pending: no hedge before it.
        self.held_until = 0.0
        self.hedge_delay = owner.hedge_delay()

    def _spawn(
        self, ids: Sequence[int], on_start: Callable[[float], None] | None = None
    ) -> asyncio.Task[Mapping[int, T]]:
        return asyncio.get_running_loop().create_task(self.owner.call(ids, self.deadline, on_start))

    def _batch_started(self, at: float) -> None:
        self.batch_started = at

    def _hedge_at(self) -> float:
        """When to hedge the batch: its own call's start plus the delay (never earlier)."""
        if len(self.ids) <= 1:
            return math.inf
        if self.batch_started is None:
            return time.monotonic() + self.hedge_delay  # not started: look again later
        return max(self.batch_started, self.held_until) + self.hedge_delay

    def _held_back(self) -> bool:
        """Upstream has us sitting out a p-ticket: put the hedge off until after it."""
        left = self.owner.held_back()
        if left <= 0:
            return False
        self.held_until = max(self.held_until, time.monotonic() + left)
        return True

    def _resolve(self, account_id: int, value: T, as_of: float) -> None:
        fut = self.unresolved.pop(account_id, None)
        if fut is not None and not fut.done():
            fetched = Fetched(data=value, as_of=as_of)
            self.fetched[account_id] = fetched
            fut.set_result(fetched)

    def _fail(self, account_id: int, exc: BaseException) -> None:
        fut = self.unresolved.pop(account_id, None)
        if not isinstance(exc, NOT_ACCOUNT_SPECIFIC) or isinstance(exc, UpstreamTimeout):
            self.troubled.add(account_id)
        if fut is not None and not fut.done():
            fut.set_exception(exc)

    def _start_singles(self) -> None:
        now = time.monotonic()
        for account_id in list(self.unresolved):
            if account_id not in self.single_started:
                self.single_started[account_id] = now
                self.singles[self._spawn([account_id])] = account_id

    async def execute(self) -> None:
        self.batch = self._spawn(self.ids, self._batch_started)
        single = len(self.ids) <= 1
        while self.unresolved:
            waiting: set[asyncio.Task[Mapping[int, T]]] = set(self.singles)
            if not self.batch.done():
                waiting.add(self.batch)
            if not waiting:
                return
            left = self.deadline.remaining()
            timeout = left
            hedge_pending = not single and not self.single_started and not self.batch.done()
            if hedge_pending:
                timeout = min(left, max(0.0, self._hedge_at() - time.monotonic()))
            done, _ = await asyncio.wait(
                waiting, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
            )
            if not done:
                if not hedge_pending or self.deadline.remaining() <= 0:
                    return
                if self.batch_started is None or time.monotonic() < self._hedge_at():
                    continue  # still queued for a slot, or woke early: not slow yet
                if self._held_back():
                    continue  # sitting out a penalty, not slow: no extra calls
                logger.debug(
                    "%s: batch of %d pending after %.0f ms; hedging per account",
                    self.owner.endpoint,
                    len(self.ids),
                    self.hedge_delay * 1000,
                )
                self._start_singles()
                continue
            for task in done:
                if task is self.batch:
                    self._batch_done(task)
                else:
                    self._single_done(task, self.singles.pop(task))

    def _batch_done(self, task: asyncio.Task[Mapping[int, T]]) -> None:
        exc = task.exception()
        if exc is None:
            as_of = now_epoch()
            result = task.result()
            for account_id in list(self.unresolved):
                if account_id in result:
                    self._resolve(account_id, result[account_id], as_of)
            return
        if len(self.ids) == 1 or isinstance(exc, NOT_ACCOUNT_SPECIFIC):
            for account_id in list(self.unresolved):
                self._fail(account_id, self.errors.get(account_id, exc))
            return
        logger.info(
            "%s: batch of %d failed (%s); retrying per account",
            self.owner.endpoint,
            len(self.ids),
            getattr(exc, "reason", type(exc).__name__),
        )
        for account_id, error in list(self.errors.items()):
            self._fail(account_id, error)
        self._start_singles()

    def _single_done(self, task: asyncio.Task[Mapping[int, T]], account_id: int) -> None:
        exc = task.exception()
        elapsed = time.monotonic() - self.single_started[account_id]
        if exc is None:
            result = task.result()
            if account_id in result:
                self._resolve(account_id, result[account_id], now_epoch())
            if elapsed > self.hedge_delay:
                self.troubled.add(account_id)
            return
        self.errors[account_id] = exc
        # While the batch may still answer for this account, keep waiting for it.
        if self.batch is None or self.batch.done():
            self._fail(account_id, exc)

    async def cleanup(self) -> None:
        tasks = [t for t in [self.batch, *self.singles] if t is not None]
        for task in tasks:
            if not task.done():
                task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        for account_id in list(self.unresolved):
            error = self.errors.get(account_id) or UpstreamTimeout(
                f"Tradovate did not answer for account {account_id} before the deadline"
            )
            self._fail(account_id, error)
