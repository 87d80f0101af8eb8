"""The gateway's logins. For now only the one login the ``TRADOVATE_*`` variables
describe; the logins file loader replaces this function's body (same signature)."""

from __future__ import annotations

from trading_gateway.server.config import GatewaySettings
from trading_gateway.server.logins.spec import LoginSpec, shorthand_spec


def load_logins(settings: GatewaySettings) -> list[LoginSpec]:
    """Every login the gateway runs, in order (the first one's live state streams)."""
    return [shorthand_spec(settings)]
