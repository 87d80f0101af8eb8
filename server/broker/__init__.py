"""Tradovate broker layer: REST, user-sync WebSocket and market data. Knows nothing of gRPC."""

from trading_gateway.server.broker.client import TradovateClient
from trading_gateway.server.broker.errors import (
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
from trading_gateway.server.broker.events import (
    ChangeType,
    EntityChange,
    SyncEvent,
    SyncSnapshot,
    SyncStatus,
)
from trading_gateway.server.broker.limiter import Circuit
from trading_gateway.server.broker.md import MarketData
from trading_gateway.server.broker.pacing import IpPacer
from trading_gateway.server.broker.schemas import ContractInfo
from trading_gateway.server.broker.settings import BrokerSettings
from trading_gateway.server.broker.sync import UserSync

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
    "IpPacer",
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
