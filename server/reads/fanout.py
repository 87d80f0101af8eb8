"""Upstream fetches for one kind across many accounts: batched, hedged, isolated, shared.

``FanOut.fetch(account_ids, deadline)`` answers every account with data or an error and
never waits past the deadline:

- single flight: an account already being fetched joins that fetch, however long it
  has been running (queued behind the limiter during an outage, say); the others start
  one new fetch, so N identical concurrent requests cost one upstream call. A joined
  fetch that times out at its starter's earlier deadline does not answer for a caller
  with time left: that caller joins or starts the next fetch;
- batching: accounts are fetched in chunks with one call each: ``batch_size``, or more
  (up to ``max_batch_size``) when that many chunks would not all fit in the shared
  limiter at once, so a large request runs as one wave of calls instead of several;
- isolation: a failed chunk is retried per account, so only the failing account is
  marked; accounts that failed or were slow recently are fetched alone for a cool-down;
- hedging: a chunk whose upstream call is still pending after the hedge delay
  (``hedge_factor`` x the recent median latency of this endpoint's calls, at least
  ``hedge_min``) is split into per-account calls, so one slow account does not hold the
  others back. The delay runs from the moment the call itself starts (after it got its
  limiter slot), never from when it was queued, so a batch within its normal latency is
  not hedged because other calls held the limiter. While upstream has us sitting out a
  p-ticket (``held_back``), no hedge fires: a hedge is an extra call, and the batch is
  waiting for its time, not slow; the hedge delay then counts from the penalty's end;
- bounded: every upstream call takes a slot of a shared semaphore.

No threads: everything is a task on the event loop, owned here and cancelled by aclose().
"""

from __future__ import annotations

import asyncio
import functools
import logging
import statistics
import time
from collections import deque
from collections.abc import Awaitable, Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

from trading_gateway.server.broker.errors import (
    BrokerError,
    UpstreamTimeout,
)
from trading_gateway.server.deadline import Deadline
from trading_gateway.server.observability.tracing import UpstreamSpan, UpstreamTracer
from trading_gateway.server.reads.group_fetch import GroupFetch
from trading_gateway.server.reads.records import Fetched
from trading_gateway.server.tasks import TaskSet

logger = logging.getLogger(__name__)

# A joined fetch's timeout answers for a caller only if the fetch's deadline was at most
# this much earlier than the caller's own; otherwise the caller tries again.
JOIN_SLACK_MIN_S = 0.05
JOIN_SLACK_FRACTION = 0.1
# Rounds of join-or-start per call: the first, and retries after short-deadline fetches.
MAX_JOIN_ROUNDS = 3

T = TypeVar("T")

Loader = Callable[[Sequence[int], Deadline], Awaitable[Mapping[int, T]]]
"""Fetch data for these accounts by the Deadline; a value for every id."""

Sink = Callable[[Mapping[int, Fetched[T]]], Awaitable[None]]
"""Receives what a fetch produced (e.g. to fill the cache); must not raise."""

Outcome = Fetched[T] | BaseException


class UpstreamObserver(Protocol):
    def upstream_call(self, endpoint: str, outcome: str, seconds: float) -> None: ...


class NullObserver:
    def upstream_call(self, endpoint: str, outcome: str, seconds: float) -> None:
        return None


@dataclass(frozen=True, slots=True)
class FanOutSettings:
    batch_size: int = 50
    # Upper bound on the widened batch: ldeps ids go in the GET query (masterids=1,2,...;
    # ids are at most 10 digits), 200 ids stay well below common 8 KiB request-line limits.
    max_batch_size: int = 200
    hedge_min: float = 0.025
    hedge_initial: float = 0.5
    hedge_factor: float = 2.0
    cooldown: float = 30.0
    latency_window: int = 64


def _never_held_back() -> float:
    return 0.0


class LatencyWindow:
    """Recent successful call durations; the hedge delay derives from their median."""

    def __init__(self, size: int) -> None:
        self._samples: deque[float] = deque(maxlen=size)

    def add(self, seconds: float) -> None:
        self._samples.append(seconds)

    def median(self) -> float | None:
        return statistics.median(self._samples) if len(self._samples) >= 3 else None

    def hedge_delay(self, settings: FanOutSettings) -> float:
        median = self.median()
        if median is None:
            return settings.hedge_initial
        return max(settings.hedge_min, settings.hedge_factor * median)


R = TypeVar("R")


async def observed_call(
    observer: UpstreamObserver,
    endpoint: str,
    call: Awaitable[R],
    tracer: UpstreamTracer | None = None,
) -> R:
    """Await one upstream call outside a fan-out and report its outcome and duration."""
    started = time.monotonic()
    span = tracer.upstream(endpoint, 0) if tracer is not None else None
    outcome = "ERROR"
    try:
        result = await call
        outcome = "OK"
        return result
    except BrokerError as exc:
        outcome = exc.reason
        raise
    except TimeoutError:
        outcome = "UPSTREAM_TIMEOUT"
        raise
    finally:
        observer.upstream_call(endpoint, outcome, time.monotonic() - started)
        if span is not None:
            span.end(outcome)


class FanOut(Generic[T]):
    def __init__(
        self,
        endpoint: str,
        load: Loader[T],
        *,
        settings: FanOutSettings,
        limiter: asyncio.Semaphore,
        concurrency: int,
        observer: UpstreamObserver | None = None,
        sink: Sink[T] | None = None,
        held_back: Callable[[], float] | None = None,
        tracer: UpstreamTracer | None = None,
    ) -> None:
        self.endpoint = endpoint
        # Seconds until the p-ticket(s) upstream has us sitting out end (0: none).
        self.held_back: Callable[[], float] = held_back or _never_held_back
        self._tracer = tracer
        self._load = load
        self._settings = settings
        self._limiter = limiter
        # The limiter's capacity (GATEWAY_FANOUT_CONCURRENCY), passed in by its owner.
        self._slots = max(1, concurrency)
        self._observer = observer or NullObserver()
        self._sink = sink
        self._pending: dict[int, asyncio.Future[Fetched[T]]] = {}
        # When each in-flight fetch gives up (its starter's deadline, monotonic seconds).
        self._pending_until: dict[int, float] = {}
        self._isolated_until: dict[int, float] = {}
        self._tasks = TaskSet("fan-out", logger)
        self._latency = LatencyWindow(settings.latency_window)
        self._closed = False

    # ---------------------------------------------------------------- public API
    @property
    def in_flight(self) -> int:
        """Accounts with a fetch under way now."""
        return len(self._pending)

    def hedge_delay(self) -> float:
        return self._latency.hedge_delay(self._settings)

    def batch_size_for(self, count: int) -> int:
        """``batch_size``, widened so ``count`` accounts fit in one wave of limiter slots.

        Only real batches widen: with ``batch_size`` 1 each account is its own upstream
        request (e.g. cashBalance snapshots), and widening would put several requests
        behind one slot, i.e. past the configured concurrency.
        """
        settings = self._settings
        if settings.batch_size <= 1:
            return 1
        wave = -(-count // self._slots)
        return max(settings.batch_size, min(wave, settings.max_batch_size))

    def isolated(self) -> list[int]:
        """Accounts currently fetched on their own (failed or slow recently)."""
        now = time.monotonic()
        return sorted(a for a, until in self._isolated_until.items() if until > now)

    async def fetch(self, account_ids: Sequence[int], deadline: Deadline) -> dict[int, Outcome[T]]:
        """Data or an error for every account, by the deadline at the latest."""
        outcomes: dict[int, Outcome[T]] = {}
        todo = list(account_ids)
        spent: set[asyncio.Future[Fetched[T]]] = set()  # fetches that timed out for others
        for _ in range(MAX_JOIN_ROUNDS):
            # A joined fetch that gives up this much before this caller's deadline timed out
            # for its starter, not for this caller. The slack keeps near-simultaneous
            # identical requests on one upstream call.
            enough = deadline.at - max(JOIN_SLACK_MIN_S, JOIN_SLACK_FRACTION * deadline.remaining())
            futures, until = self._join_or_start(todo, deadline, spent)
            left = deadline.remaining()
            waiting = [f for f in futures.values() if not f.done()]
            if waiting and left > 0:
                await asyncio.wait(waiting, timeout=left)
            todo = []
            for account_id, fut in futures.items():
                outcome = _outcome(account_id, fut)
                outcomes[account_id] = outcome
                if isinstance(outcome, UpstreamTimeout) and until[account_id] < enough:
                    todo.append(account_id)
                    spent.add(fut)
            if not todo or deadline.remaining() <= 0:
                break
        return {account_id: outcomes[account_id] for account_id in account_ids}

    def _join_or_start(
        self,
        account_ids: Sequence[int],
        deadline: Deadline,
        spent: Collection[asyncio.Future[Fetched[T]]],
    ) -> tuple[dict[int, asyncio.Future[Fetched[T]]], dict[int, float]]:
        """A future per account (joined or new, never a spent one) and when each gives up."""
        futures: dict[int, asyncio.Future[Fetched[T]]] = {}
        until: dict[int, float] = {}
        new: list[int] = []
        for account_id in account_ids:
            joined = self._pending.get(account_id)
            if joined is None or joined in spent:
                new.append(account_id)
            else:
                futures[account_id] = joined
                until[account_id] = self._pending_until.get(account_id, deadline.at)
        if new:
            futures.update(self._start(new, deadline))
            until.update(dict.fromkeys(new, deadline.at))
        return futures, until

    async def aclose(self) -> None:
        self._closed = True
        await self._tasks.aclose()

    # ---------------------------------------------------------------- scheduling
    def _start(
        self, account_ids: list[int], deadline: Deadline
    ) -> dict[int, asyncio.Future[Fetched[T]]]:
        loop = asyncio.get_running_loop()
        futures = {a: loop.create_future() for a in account_ids}
        for account_id, fut in futures.items():
            self._pending[account_id] = fut
            self._pending_until[account_id] = deadline.at
            fut.add_done_callback(functools.partial(self._forget, account_id))
        if self._closed:
            for fut in futures.values():
                fut.set_exception(UpstreamTimeout("the gateway is shutting down"))
            return futures
        now = time.monotonic()
        alone = [a for a in account_ids if self._isolated_until.get(a, 0.0) > now]
        together = [a for a in account_ids if self._isolated_until.get(a, 0.0) <= now]
        size = self.batch_size_for(len(together))
        groups = [together[i : i + size] for i in range(0, len(together), size)]
        groups += [[a] for a in alone]
        for group in groups:
            self._tasks.spawn(
                self._run_group(group, {a: futures[a] for a in group}, deadline),
                name=f"fanout:{self.endpoint}:{group[0]}+{len(group) - 1}",
            )
        return futures

    def _forget(self, account_id: int, fut: asyncio.Future[Fetched[T]]) -> None:
        if self._pending.get(account_id) is fut:
            del self._pending[account_id]
            self._pending_until.pop(account_id, None)
        if not fut.cancelled():
            fut.exception()  # mark retrieved: a request may have stopped waiting

    # ---------------------------------------------------------------- one group
    async def _run_group(
        self,
        ids: list[int],
        futures: dict[int, asyncio.Future[Fetched[T]]],
        deadline: Deadline,
    ) -> None:
        run = GroupFetch(self, ids, futures, deadline)
        try:
            await run.execute()
        finally:
            await run.cleanup()
        # Isolate only account-specific trouble: when nobody in the group got an answer
        # the problem is upstream as a whole, and solo calls would only multiply it.
        if run.fetched or (len(ids) == 1 and self._is_isolated(ids[0])):
            self._isolate(run.troubled)
        if self._sink is not None and run.fetched:
            await self._sink(run.fetched)

    def _is_isolated(self, account_id: int) -> bool:
        return self._isolated_until.get(account_id, 0.0) > time.monotonic()

    def _isolate(self, account_ids: Iterable[int]) -> None:
        cooldown = self._settings.cooldown
        if cooldown <= 0:
            return
        now = time.monotonic()
        for account_id in account_ids:
            if account_id not in self._isolated_until or self._isolated_until[account_id] <= now:
                logger.info(
                    "%s: fetching account %s on its own for %.0f s (failed or slow)",
                    self.endpoint,
                    account_id,
                    cooldown,
                )
            self._isolated_until[account_id] = now + cooldown
        if len(self._isolated_until) > 4096:
            self._isolated_until = {a: u for a, u in self._isolated_until.items() if u > now}

    async def call(
        self,
        ids: Sequence[int],
        deadline: Deadline,
        on_start: Callable[[float], None] | None = None,
    ) -> Mapping[int, T]:
        """One upstream call, bounded by the shared limiter and the deadline.

        ``on_start`` gets the monotonic time the call itself starts (slot taken).
        """
        async with self._limiter:
            left = deadline.remaining()
            if left <= 0:
                raise UpstreamTimeout(f"no time left to call Tradovate ({self.endpoint})")
            started = time.monotonic()
            if on_start is not None:
                on_start(started)
            # A child of the RPC that started this fetch (its context came with the task).
            tracer = self._tracer
            span = tracer.upstream(self.endpoint, len(ids)) if tracer is not None else None
            try:
                async with asyncio.timeout(left):
                    result = await self._load(ids, deadline)
            except TimeoutError:
                self._observe("UPSTREAM_TIMEOUT", started, span)
                raise UpstreamTimeout(
                    f"Tradovate did not answer {self.endpoint} within {left * 1000:.0f} ms"
                ) from None
            except BrokerError as exc:
                self._observe(exc.reason, started, span)
                raise
            except Exception:
                self._observe("ERROR", started, span)
                raise
            except asyncio.CancelledError:  # a hedged batch given up: not an outcome
                if span is not None:
                    span.end("CANCELLED")
                raise
            elapsed = self._observe("OK", started, span)
            self._latency.add(elapsed)
            return result

    def _observe(self, outcome: str, started: float, span: UpstreamSpan | None) -> float:
        elapsed = time.monotonic() - started
        self._observer.upstream_call(self.endpoint, outcome, elapsed)
        if span is not None:
            span.end(outcome)
        return elapsed


def _outcome(account_id: int, fut: asyncio.Future[Fetched[T]]) -> Outcome[T]:
    if not fut.done():
        return UpstreamTimeout(
            f"Tradovate did not answer for account {account_id} before the deadline"
        )
    if fut.cancelled():
        return UpstreamTimeout(f"the fetch for account {account_id} was cancelled")
    exc = fut.exception()
    return exc if exc is not None else fut.result()
