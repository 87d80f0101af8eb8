"""Pacing REST calls under Tradovate's two tiers of limits: per user and per IP.

Each login (each ``TradovateClient``) keeps its own ``TokenBucket`` for its user's limit.
``IpPacer`` is one more bucket, made once per process and handed to every client, for the
IP's limit over all logins together. ``RequestPacer`` is what one client's REST calls wait
on: a token from the login's own bucket first, then one from the shared bucket, so a login
that is over its own budget never holds a shared token while it waits. A login whose
429/423/captcha circuit is open fails before it asks either bucket (answers.py), so a
locked-out login never slows the others. Both waits count against the caller's deadline.
"""

from __future__ import annotations

from typing import Protocol

from trading_gateway.server.broker.limiter import TokenBucket
from trading_gateway.server.broker.stats import BudgetStats
from trading_gateway.server.deadline import Deadline


class Pacer(Protocol):
    """Waits until a REST call may be sent, or raises UpstreamTimeout past the deadline."""

    async def acquire(self, deadline: Deadline) -> None: ...


class IpPacer(TokenBucket):
    """The token bucket shared by every login of the process: Tradovate's per-IP tier.

    ``rate <= 0`` disables it (calls are paced by their logins' own buckets only).
    """

    def __init__(self, rate: float, burst: int) -> None:
        super().__init__(rate, burst, name="shared per-IP rate limit (every login)")

    def stats(self) -> BudgetStats | None:
        """Its budget now, for metrics; None when disabled."""
        if self.rate <= 0:
            return None
        return BudgetStats(
            tokens=self.available(),
            burst=self.burst,
            rate=self.rate,
            delayed=self.delayed,
            refused=self.refused,
        )


class RequestPacer:
    """One login's REST pacing: its own bucket, then the process's shared ``IpPacer``."""

    def __init__(self, own: TokenBucket, shared: IpPacer | None = None) -> None:
        self.own = own
        self.shared = shared

    async def acquire(self, deadline: Deadline) -> None:
        await self.own.acquire(deadline)
        if self.shared is None:
            return
        try:
            await self.shared.acquire(deadline)
        except BaseException:
            # Not sent after all (deadline, cancellation): the login's token goes back.
            self.own.refund()
            raise
