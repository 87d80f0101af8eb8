"""What the composition root (server/main.py) needs from server/live, as a protocol.

server/live/components.py implements it over one broker client (``build_live`` is the
``LiveFactory``); ``Gateway`` takes any factory, so the gateway runs without live state
when ``GATEWAY_LIVE_ENABLED`` is off.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from trading_gateway.server.api.stream_handler import AccountResolver
from trading_gateway.server.broker import TradovateClient
from trading_gateway.server.config import GatewaySettings
from trading_gateway.server.deadline import Deadline
from trading_gateway.server.live.across import LoginSessions
from trading_gateway.server.observability.metrics import Metrics
from trading_gateway.server.reads.service import LiveReads


class LiveSubsystem(Protocol):
    """The seam for server/live: live state for reads and the StreamUpdates handler."""

    @property
    def reads(self) -> LiveReads | None: ...

    @property
    def streams(self) -> LoginSessions: ...

    @property
    def resolver(self) -> AccountResolver: ...

    @property
    def healthy(self) -> bool:
        """True while the user-sync socket is connected and its state is applied."""
        ...

    async def start(self) -> None:
        """Called once the broker is logged in."""
        ...

    async def wait_synced(self, deadline: Deadline) -> bool:
        """Until live state has its first snapshot (True), or ``deadline`` passes."""
        ...

    async def drain(self) -> None:
        """End open streams with a resumable status (before the server stops)."""
        ...

    async def aclose(self) -> None: ...


LiveFactory = Callable[[TradovateClient, GatewaySettings, Metrics, str], LiveSubsystem]
"""``factory(broker, settings, metrics, login)``: the live subsystem of the login named
``login`` (its streams' ``StreamUpdate.login`` and sequence space)."""
