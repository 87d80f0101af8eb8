"""Tradovate broker layer: REST, user-sync WebSocket and market data. Knows nothing of gRPC."""

from server.broker.client import TradovateClient
from server.broker.errors import (
    AuthError,
    BrokerClosed,
    BrokerError,
    CaptchaRequired,
    LockedOutError,
    NotFoundError,
    PenaltyError,
    ProtocolError,
    RateLimitedError,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from server.broker.events import (
    ChangeType,
    EntityChange,
    SyncEvent,
    SyncSnapshot,
    SyncStatus,
)
from server.broker.limiter import Circuit
from server.broker.md import MarketData
from server.broker.schemas import ContractInfo
from server.broker.settings import BrokerSettings
from server.broker.sync import UserSync

__all__ = [
    "AuthError",
    "BrokerClosed",
    "BrokerError",
    "BrokerSettings",
    "CaptchaRequired",
    "ChangeType",
    "Circuit",
    "ContractInfo",
    "EntityChange",
    "LockedOutError",
    "MarketData",
    "NotFoundError",
    "PenaltyError",
    "ProtocolError",
    "RateLimitedError",
    "SyncEvent",
    "SyncSnapshot",
    "SyncStatus",
    "TradovateClient",
    "UpstreamTimeout",
    "UpstreamUnavailable",
    "UserSync",
]
