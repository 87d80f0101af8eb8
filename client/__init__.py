"""Typed async client and CLI for the trading gateway (tradovate_gateway.v1.TradingService).

    from trading_gateway.client import TradingClient, to_decimal

    async with TradingClient("127.0.0.1:50051") as client:
        balances = await client.get_balances(read_policy="cached")
        print(to_decimal(balances.totals.net_liquidation))

The generated modules are re-exported:
`from trading_gateway.client import trading_pb2, trading_pb2_grpc`.
"""

from __future__ import annotations

from tradovate_gateway.v1 import trading_pb2, trading_pb2_grpc

from trading_gateway.client.channel import TlsConfig
from trading_gateway.client.client import DEFAULT_ADDRESS, TradingClient
from trading_gateway.client.errors import (
    AuthenticationError,
    CallCancelledError,
    ClientError,
    DeadlineExceededError,
    FieldViolation,
    InvalidArgumentError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitedError,
    ServerError,
    UnavailableError,
    from_rpc_error,
)
from trading_gateway.client.retry import RetryPolicy
from trading_gateway.client.values import account_entries, to_datetime, to_decimal
from trading_gateway.client.watch import StreamGapError, Watch, WatchStats

__all__ = [
    "DEFAULT_ADDRESS",
    "AuthenticationError",
    "CallCancelledError",
    "ClientError",
    "DeadlineExceededError",
    "FieldViolation",
    "InvalidArgumentError",
    "NotFoundError",
    "PermissionDeniedError",
    "RateLimitedError",
    "RetryPolicy",
    "ServerError",
    "StreamGapError",
    "TlsConfig",
    "TradingClient",
    "UnavailableError",
    "Watch",
    "WatchStats",
    "account_entries",
    "from_rpc_error",
    "to_datetime",
    "to_decimal",
    "trading_pb2",
    "trading_pb2_grpc",
]
