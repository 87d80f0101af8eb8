"""A point-in-time picture of the broker's connection to Tradovate, for metrics.

Plain values read on demand (a metrics scrape), never kept up to date on the hot path:
the sockets' connect count and times, the access token's expiry, the 429/423 circuit,
the client-side rate limiter's budget and the sessions the login opened; and the budget of
the per-IP bucket every login shares (pacing.IpPacer).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class SocketStats:
    name: str  # "user" (user sync) or "md" (market data)
    connected: bool
    connects: int  # successful connections so far; reconnects are connects - 1
    uptime: float  # seconds the current connection has been ready; 0 while down
    since_last_frame: float | None  # seconds since the last data frame; None: none yet


@dataclass(frozen=True, slots=True)
class UpstreamStats:
    token_expires_in: float | None  # seconds; None before login
    circuit_open: bool  # 429/423 circuit: calls are refused without being sent
    circuit_retry_after: float  # seconds until it closes; 0 when closed
    rate_tokens: float | None  # client-side limiter budget now; None when disabled
    rate_burst: float | None  # the budget's ceiling; None when disabled
    sockets: tuple[SocketStats, ...]
    logged_in: bool = False  # holds an access token that has not expired
    sessions_opened: int = 0  # successful logins (auth/accesstokenrequest) since start
    token_renewals: int = 0  # successful renewals (auth/renewaccesstoken) since start


@dataclass(frozen=True, slots=True)
class BudgetStats:
    """A token bucket's budget now, and how many callers it held back since start."""

    tokens: float  # calls it allows at once now (negative: callers wait for reserved ones)
    burst: float  # its ceiling
    rate: float  # tokens per second
    delayed: int  # callers that waited for a token
    refused: int  # callers refused one because the wait would pass their deadline
