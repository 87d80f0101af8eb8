"""LeaseKeeper: one replica's acquire → renew → release loop for one login's lease.

The keeper owns one task. As a candidate it tries to acquire the lease; when another
replica holds it, it sleeps until the record says the lease runs out (its remaining PTTL
from Redis, the lease's own duration) or ``poll_interval``, whichever is sooner, then tries
again. No keyspace notifications are needed. As the holder it renews every third of the
recorded TTL; a failed or late renewal loses the term at once (``LoginLease``) and the
keeper goes back to being a candidate. ``aclose()`` cancels the task and releases the lease
(compare-and-delete), so a waiting replica takes over at its next poll rather than after
the TTL.

Failover bound: when a holder dies without releasing, its record lapses at most ``ttl``
after its last renewal, and a candidate notices within ``poll_interval`` of that:
``failover_bound = ttl + poll_interval`` (plus one Redis round trip). A clean shutdown hands
over within ``poll_interval``. A candidate never takes over before the record lapses:
expiry is Redis's decision, not a local timer.

Redis outages: a holder that cannot renew loses its term within the TTL (each renewal is
bounded by what is left of it), so it has stopped acting before any other replica can
acquire. Candidates keep polling at ``poll_interval`` and log the outage once; when Redis
comes back, the acquire script lets exactly one of them in, once Redis has been up for
the TTL rounded up plus a second (the restart quarantine, ``lease.py``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Final

from trading_gateway.server.replicas.lease import LeaseTerm, LeaseUnavailable, LoginLease
from trading_gateway.server.tasks import TaskSet

logger = logging.getLogger(__name__)

# Suggested settings for the wiring: a failover bound of 3.5 s, renewals every second, and a
# Redis call bound (the lease's op_timeout, 0.5 s by default) well inside one renewal period.
DEFAULT_TTL_S: Final = 3.0
DEFAULT_POLL_S: Final = 0.5
RENEWALS_PER_TTL: Final = 3
# A candidate never polls more often than this, whatever the record says is left.
MIN_POLL_S: Final = 0.005

AcquiredCallback = Callable[[LeaseTerm], None]


class LeaseKeeper:
    """Keeps trying to hold ``lease`` until closed; ``on_acquired`` runs at each new term.

    Losing a term is reported by the lease itself (``LoginLease(on_lost=...)`` and
    ``LeaseTerm.lost``). Use as ``async with LeaseKeeper(...) as keeper:`` or call
    ``start()`` and ``aclose()``.
    """

    def __init__(
        self,
        lease: LoginLease,
        *,
        poll_interval: float,
        on_acquired: AcquiredCallback | None = None,
        defer: Callable[[], bool] | None = None,
    ) -> None:
        """``defer``: while it returns True, this candidate waits one more poll interval
        before each try, so a candidate that does not defer wins a free lease first (a
        replica with live state over one without)."""
        if poll_interval <= 0:
            raise ValueError("poll_interval must be positive")
        self.lease = lease
        self.poll_interval = poll_interval
        self._on_acquired = on_acquired
        self._defer = defer
        self._tasks = TaskSet("lease keeper", logger)
        self._held_changed = asyncio.Event()
        self._redis_down = False
        self._started = False
        self._closed = False

    @property
    def failover_bound(self) -> float:
        """Seconds from a holder's death to a candidate holding the lease, at most."""
        return self.lease.ttl_ms / 1000.0 + self.poll_interval

    @property
    def term(self) -> LeaseTerm | None:
        """The current term while it is held, else None."""
        term = self.lease.term
        return term if term is not None and term.held else None

    def start(self) -> None:
        if self._started:
            raise RuntimeError("lease keeper already started")
        self._started = True
        self._tasks.spawn(self._run(), name=f"lease-keeper:{self.lease.keys.lease}")

    async def aclose(self) -> None:
        """Stop the loop, then release the lease if this replica holds it."""
        if self._closed:
            return
        self._closed = True
        await self._tasks.aclose()
        await self.lease.release()

    async def __aenter__(self) -> LeaseKeeper:
        self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def wait_held(self) -> LeaseTerm:
        """Wait until this replica holds the lease; the term."""
        while True:
            term = self.term
            if term is not None:
                return term
            self._held_changed.clear()
            await self._held_changed.wait()

    async def _run(self) -> None:
        while True:
            try:
                await self._cycle()
            except Exception as error:
                # A bug must not leave a term that nobody renews but nobody reported lost,
                # nor a replica that silently stops being a candidate.
                self.lease.drop(f"lease keeper failed: {type(error).__name__}: {error}")
                logger.exception("lease %s: keeper cycle failed", self.lease.keys.lease)
                self._held_changed.set()
                await asyncio.sleep(self.poll_interval)

    async def _cycle(self) -> None:
        """One candidacy: poll until acquired, then hold until the term ends."""
        if self._defer is not None and self._defer():
            await asyncio.sleep(self.poll_interval)
        term = await self._try_acquire()
        if term is None:
            await asyncio.sleep(self._next_poll())
            return
        self._held_changed.set()
        if self._on_acquired is not None:
            try:
                self._on_acquired(term)
            except Exception:
                logger.exception("lease %s: on_acquired callback failed", self.lease.keys.lease)
        await self._hold(term)
        self._held_changed.set()

    async def _try_acquire(self) -> LeaseTerm | None:
        try:
            term = await self.lease.try_acquire()
        except LeaseUnavailable as error:
            if not self._redis_down:
                self._redis_down = True
                logger.warning("%s; retrying every %.3g s", error, self.poll_interval)
            return None
        if self._redis_down:
            self._redis_down = False
            logger.info("lease %s: Redis reachable again", self.lease.keys.lease)
        return term

    def _next_poll(self) -> float:
        seen = self.lease.last_seen
        if self._redis_down or seen is None:
            return self.poll_interval
        return max(MIN_POLL_S, min(self.poll_interval, seen.remaining_ms / 1000.0))

    async def _hold(self, term: LeaseTerm) -> None:
        """Renew every third of the recorded TTL until the term ends."""
        last_sent = time.monotonic()
        while not term.ended.is_set():
            interval = term.ttl_ms / 1000.0 / RENEWALS_PER_TTL
            await asyncio.sleep(max(0.0, last_sent + interval - time.monotonic()))
            last_sent = time.monotonic()
            if not await self.lease.renew():
                return
