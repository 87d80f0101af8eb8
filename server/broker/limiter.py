"""Rate-limit discipline: a client-side token bucket and the 429/423 circuit.

Both are shared by every REST call and socket request of one client, because
Tradovate counts requests per user (429) and per IP (p-tickets), not per socket.
"""

from __future__ import annotations

import asyncio
import logging
import time

from server.broker.deadline import Deadline
from server.broker.errors import LockedOutError, RateLimitedError, UpstreamTimeout

logger = logging.getLogger(__name__)


class TokenBucket:
    """``rate`` tokens per second, at most ``burst`` saved up; FIFO through reservations.

    Each caller reserves a token at once (the balance may go negative) and sleeps until
    its token has accrued, so waiters are served in arrival order without a lock. A
    caller whose wait would outlast its deadline gets its reservation back and fails
    fast with UpstreamTimeout. ``rate <= 0`` disables the bucket.
    """

    def __init__(self, rate: float, burst: int) -> None:
        self.rate = rate
        self.burst = float(max(1, burst))
        self._tokens = self.burst
        self._stamp = time.monotonic()

    def _refill(self) -> None:
        now = time.monotonic()
        self._tokens = min(self.burst, self._tokens + (now - self._stamp) * self.rate)
        self._stamp = now

    def reserve(self) -> float:
        """Take one token; return how many seconds until it is really ours."""
        if self.rate <= 0:
            return 0.0
        self._refill()
        self._tokens -= 1.0
        return 0.0 if self._tokens >= 0 else -self._tokens / self.rate

    def available(self) -> float:
        """Tokens saved up now (negative while callers wait for reserved ones)."""
        self._refill()
        return self._tokens

    def refund(self) -> None:
        if self.rate > 0:
            self._tokens = min(self.burst, self._tokens + 1.0)

    async def acquire(self, deadline: Deadline) -> None:
        wait = self.reserve()
        if wait <= 0:
            return
        if wait > deadline.remaining():
            self.refund()
            raise UpstreamTimeout(
                f"client-side rate limit: the next request slot is {wait:.2f} s away, "
                "past the deadline"
            )
        try:
            await asyncio.sleep(wait)
        except asyncio.CancelledError:
            # A caller that gives up while queued (its deadline, a hedge, shutdown) must
            # not keep its slot: otherwise every cancelled waiter pushes the next free
            # slot further out, and under load every later call fails "past the deadline".
            self.refund()
            raise


class RateGate:
    """The circuit opened by 429 (RateLimitedError) or 423 (LockedOutError).

    While open, ``check()`` fails fast with the same typed error and the seconds left.
    Each 429 while the strikes have not been reset doubles the back-off.
    """

    def __init__(self, backoff: float, backoff_max: float, locked_backoff: float) -> None:
        self.backoff = backoff
        self.backoff_max = backoff_max
        self.locked_backoff = locked_backoff
        self._open_until = 0.0
        self._locked = False
        self._strikes = 0

    @property
    def is_open(self) -> bool:
        return time.monotonic() < self._open_until

    def retry_after(self) -> float:
        return max(0.0, self._open_until - time.monotonic())

    def check(self) -> None:
        left = self.retry_after()
        if left <= 0:
            self._locked = False
            return
        if self._locked:
            raise LockedOutError(
                f"Tradovate locked us out (423): all calls stopped for {left:.0f} s more",
                retry_after=left,
            )
        raise RateLimitedError(left)

    def trip_rate_limited(self, where: str) -> RateLimitedError:
        if not self.is_open:
            self._locked = False
        delay = min(self.backoff_max, self.backoff * (2**self._strikes))
        self._strikes += 1
        self._open_until = max(self._open_until, time.monotonic() + delay)
        logger.error("Tradovate 429 on %s: circuit open for %.0f s", where, delay)
        return RateLimitedError(self.retry_after())

    def trip_locked_out(self, where: str) -> LockedOutError:
        self._locked = True
        self._open_until = max(self._open_until, time.monotonic() + self.locked_backoff)
        logger.error(
            "Tradovate 423 on %s: all calls stopped for %.0f s", where, self.locked_backoff
        )
        return LockedOutError(retry_after=self.retry_after())

    def record_success(self) -> None:
        if self._strikes and not self.is_open:
            self._strikes = 0
            self._locked = False
