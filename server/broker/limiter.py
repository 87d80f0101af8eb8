"""Rate-limit discipline: a client-side token bucket, the 429/423/captcha circuit, and
the endpoints sitting out a p-ticket.

The circuit and the p-tickets are shared by every REST call and socket request of one
client (one login), because Tradovate counts requests per user (429) and per IP
(p-tickets), not per socket; the token bucket paces REST calls (socket requests are few:
sync, subscriptions). The one bucket shared by every login of the process, for Tradovate's
per-IP limit, is pacing.IpPacer.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Final

from trading_gateway.server.broker.errors import (
    CaptchaRequired,
    LockedOutError,
    PenaltyError,
    RateLimitedError,
    UpstreamTimeout,
)
from trading_gateway.server.deadline import Deadline

logger = logging.getLogger(__name__)


class TokenBucket:
    """``rate`` tokens per second, at most ``burst`` saved up; FIFO through reservations.

    Each caller reserves a token at once (the balance may go negative) and sleeps until
    its token has accrued, so waiters are served in arrival order without a lock. A
    caller whose wait would outlast its deadline gets its reservation back and fails
    fast with UpstreamTimeout. ``rate <= 0`` disables the bucket. ``name`` says which
    limit in that error's message; ``delayed`` and ``refused`` count callers that waited
    for a token and callers refused one (deadline) since start.
    """

    def __init__(self, rate: float, burst: int, *, name: str = "client-side rate limit") -> None:
        self.rate = rate
        self.burst = float(max(1, burst))
        self.name = name
        self.delayed = 0
        self.refused = 0
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
            self.refused += 1
            raise UpstreamTimeout(
                f"{self.name}: the next request slot is {wait:.2f} s away, past the deadline"
            )
        self.delayed += 1
        try:
            await asyncio.sleep(wait)
        except asyncio.CancelledError:
            # A caller that gives up while queued (its deadline, a hedge, shutdown) must
            # not keep its slot: otherwise every cancelled waiter pushes the next free
            # slot further out, and under load every later call fails "past the deadline".
            self.refund()
            raise


@dataclass(frozen=True, slots=True)
class Circuit:
    """An open circuit: why every call is stopped (an error reason) and for how long."""

    reason: str
    retry_after: float


RATE_LIMITED: Final = "BROKER_RATE_LIMITED"
LOCKED_OUT: Final = "BROKER_LOCKED_OUT"
CAPTCHA: Final = "BROKER_CAPTCHA_REQUIRED"


class RateGate:
    """The circuit opened by 429 (RateLimitedError), 423 (LockedOutError) or a captcha
    penalty (CaptchaRequired), and the p-tickets being sat out (``penalties``).

    While open, ``check()`` fails fast with the same typed error and the seconds left.
    Each 429 while the strikes have not been reset doubles the back-off. A captcha
    stops every call, even those ``check()`` does not gate (``check_captcha()``).
    """

    def __init__(
        self,
        backoff: float,
        backoff_max: float,
        locked_backoff: float,
        captcha_backoff: float = 3600.0,
    ) -> None:
        self.backoff = backoff
        self.backoff_max = backoff_max
        self.locked_backoff = locked_backoff
        self.captcha_backoff = captcha_backoff
        self.penalties = PenaltyBox()
        self._open_until = 0.0
        self._kind = RATE_LIMITED
        self._strikes = 0

    @property
    def is_open(self) -> bool:
        return time.monotonic() < self._open_until

    def retry_after(self) -> float:
        return max(0.0, self._open_until - time.monotonic())

    def circuit(self) -> Circuit | None:
        """The open circuit (its reason and seconds left), or None when calls may go."""
        left = self.retry_after()
        return Circuit(self._kind, left) if left > 0 else None

    def check(self) -> None:
        left = self.retry_after()
        if left <= 0:
            self._kind = RATE_LIMITED
            return
        if self._kind == CAPTCHA:
            raise self._captcha_error(left)
        if self._kind == LOCKED_OUT:
            raise LockedOutError(
                f"Tradovate locked us out (423): all calls stopped for {left:.0f} s more",
                retry_after=left,
            )
        raise RateLimitedError(left)

    def check_captcha(self) -> None:
        """For calls the 429/423 circuit lets through (token renewal): not past a captcha."""
        left = self.retry_after()
        if left > 0 and self._kind == CAPTCHA:
            raise self._captcha_error(left)

    def trip_rate_limited(self, where: str) -> RateLimitedError:
        if not self.is_open:
            self._kind = RATE_LIMITED
        delay = min(self.backoff_max, self.backoff * (2**self._strikes))
        self._strikes += 1
        self._open_until = max(self._open_until, time.monotonic() + delay)
        logger.error("Tradovate 429 on %s: circuit open for %.0f s", where, delay)
        return RateLimitedError(self.retry_after())

    def trip_locked_out(self, where: str) -> LockedOutError:
        if self._kind != CAPTCHA or not self.is_open:
            self._kind = LOCKED_OUT
        self._open_until = max(self._open_until, time.monotonic() + self.locked_backoff)
        logger.error(
            "Tradovate 423 on %s: all calls stopped for %.0f s", where, self.locked_backoff
        )
        return LockedOutError(retry_after=self.retry_after())

    def trip_captcha(self, where: str) -> CaptchaRequired:
        """A p-captcha on ``where``: every call stops for ``captcha_backoff`` (about an hour)."""
        self._kind = CAPTCHA
        self._open_until = max(self._open_until, time.monotonic() + self.captcha_backoff)
        left = self.retry_after()
        logger.error(
            "Tradovate demands a captcha on %s (p-captcha): all calls stopped for %.0f s",
            where,
            left,
        )
        return CaptchaRequired(
            f"Tradovate demands a captcha on {where} (p-captcha): a program cannot solve it; "
            f"all calls stopped for {left:.0f} s",
            retry_after=left,
        )

    def record_success(self) -> None:
        if self._strikes and not self.is_open:
            self._strikes = 0
            self._kind = RATE_LIMITED

    @staticmethod
    def _captcha_error(left: float) -> CaptchaRequired:
        return CaptchaRequired(
            f"Tradovate demanded a captcha (p-captcha): all calls stopped for {left:.0f} s more",
            retry_after=left,
        )


class Serving:
    """One p-ticket being sat out on an endpoint: until when, and when it is over."""

    def __init__(self, until: float) -> None:
        self.until = until
        self.over = asyncio.Event()


class PenaltyBox:
    """Endpoints sitting out a p-ticket, so nothing else is sent to them meanwhile.

    The call that got the ticket holds the endpoint (``hold``) until its re-send with the
    ticket is answered (``release``). Any other call to that endpoint waits for that
    (``wait_turn``) when it can within its deadline, and otherwise fails at once with
    PenaltyError and the seconds left, instead of drawing a second penalty.
    """

    def __init__(self) -> None:
        self._held: dict[str, Serving] = {}

    def left(self, endpoint: str | None = None) -> float:
        """Seconds until the p-ticket on ``endpoint`` (or, if None, the last one) ends."""
        now = time.monotonic()
        if endpoint is not None:
            serving = self._held.get(endpoint)
            return max(0.0, serving.until - now) if serving is not None else 0.0
        return max((s.until - now for s in self._held.values()), default=0.0)

    def hold(self, endpoint: str, wait: float, held: Serving | None) -> Serving:
        """Mark ``endpoint`` as sitting out a ticket for ``wait`` more seconds."""
        until = time.monotonic() + wait
        if held is None:
            held = Serving(until)
            self._held[endpoint] = held
        held.until = until
        return held

    def mark(self, endpoint: str, wait: float) -> None:
        """A ticket nobody sits out (the call gave up): keep others away for ``wait``."""
        current = self._held.get(endpoint)
        until = time.monotonic() + wait
        if wait <= 0 or (current is not None and current.until >= until):
            return
        serving = Serving(until)
        self._held[endpoint] = serving
        asyncio.get_running_loop().call_later(wait, self.release, endpoint, serving)

    def release(self, endpoint: str, held: Serving) -> None:
        if self._held.get(endpoint) is held:
            del self._held[endpoint]
        held.over.set()

    async def wait_turn(self, endpoint: str, deadline: Deadline) -> None:
        """Return once no p-ticket is being sat out on ``endpoint``; PenaltyError if that
        would be past the deadline."""
        while (serving := self._held.get(endpoint)) is not None:
            left = max(0.0, serving.until - time.monotonic())
            remaining = deadline.remaining()
            if left >= remaining:
                raise PenaltyError(
                    left,
                    f"Tradovate time penalty on {endpoint}: another call is sitting it out; "
                    f"retry after {left:.1f} s",
                )
            try:
                async with asyncio.timeout(remaining):
                    await serving.over.wait()
            except TimeoutError:
                raise PenaltyError(
                    self.left(endpoint),
                    f"Tradovate time penalty on {endpoint}: still being sat out at the deadline",
                ) from None
