"""The seam for a token this client did not obtain: a follower's view of a shared token.

Another process (the holder of the login's session) logs in and renews; it publishes each
token somewhere every replica can read. A ``TokenManager`` given a ``TokenSource`` reads
the token from there instead of logging in, and never logs in or renews itself, so its
REST calls open no Tradovate session. The broker knows only this protocol; the store
behind it (Redis, server/replicas) is the replicas layer's.

Contract of ``TokenSource.read``: the newest token published for this client's login, or
None when none is; a store that cannot answer within the deadline, or whose value cannot
be trusted, raises ``SharedTokenUnavailable`` (never any other exception, never a value
it could not authenticate).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Protocol

from trading_gateway.server.broker.errors import SharedTokenUnavailable
from trading_gateway.server.deadline import Deadline

#: SharedTokenUnavailable lives with the other broker errors (errors.py); re-exported here.
__all__ = ["SharedToken", "SharedTokenUnavailable", "TokenSource"]


@dataclass(frozen=True)
class SharedToken:
    """What a follower needs of the holder's token (secrets kept out of the repr)."""

    access_token: str = field(repr=False)
    md_access_token: str | None = field(repr=False)
    user_id: int
    #: When Tradovate said the token expires (UTC, aware).
    expires_at: dt.datetime

    def left(self, now: dt.datetime | None = None) -> float:
        """Seconds until it expires (negative once it has)."""
        return (self.expires_at - (now or dt.datetime.now(dt.UTC))).total_seconds()


class TokenSource(Protocol):
    """Where a follower reads the token its login's holder published."""

    async def read(self, deadline: Deadline) -> SharedToken | None:
        """The newest published token, or None; ``SharedTokenUnavailable`` on failure."""
        ...
