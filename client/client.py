"""TradingClient: a typed async client for tradovate_gateway.v1.TradingService.

    async with TradingClient("127.0.0.1:50051", api_key=key) as client:
        positions = await client.get_positions(["DEMO1", 1234567], read_policy="fresh")

Every call has a deadline (the client's `timeout`, or the call's own `timeout=`), covering
all attempts. UNAVAILABLE is retried with exponential backoff and jitter while the
deadline allows; every other status raises at once. Failures raise `ClientError`
subclasses (client/errors.py) carrying the code, message and the server's rich details.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from types import TracebackType
from typing import Self, TypeVar

import grpc
from google.protobuf.message import Message
from tradovate_gateway.v1 import trading_pb2, trading_pb2_grpc

from trading_gateway.client import values
from trading_gateway.client.channel import (
    DEFAULT_STREAM_WINDOW,
    TlsConfig,
    auth_metadata,
    open_channel,
)
from trading_gateway.client.errors import ClientError, from_rpc_error
from trading_gateway.client.retry import RetryPolicy
from trading_gateway.client.watch import Watch, watch_request

logger = logging.getLogger(__name__)

RequestT = TypeVar("RequestT", bound=Message)
ResponseT = TypeVar("ResponseT", bound=Message)

DEFAULT_ADDRESS = "127.0.0.1:50051"


class TradingClient:
    """One channel to the gateway; open with `async with` (or `await connect()`/`aclose()`).

    `timeout` is the default deadline per call in seconds (None: no deadline). `retries`
    is how many times an UNAVAILABLE call is retried; pass `retry_policy` to tune the
    backoff as well. `tls` switches to a TLS channel; `api_key` is sent as
    `authorization: Bearer <key>` on every call. `watch()` streams run on a second
    channel whose HTTP/2 window per stream is fixed at `stream_window` bytes (None:
    grpc's default, which grows to megabytes), so a slow reader learns at once when the
    server ends its stream instead of after everything buffered ahead of it.
    """

    # Streaming: `watch(...)` over StreamUpdates (client/watch.py) uses its own channel
    # (`_stream_stub`, with a fixed `stream_window`), `_metadata` and the error mapping.

    def __init__(
        self,
        address: str = DEFAULT_ADDRESS,
        *,
        api_key: str | None = None,
        tls: TlsConfig | None = None,
        timeout: float | None = 5.0,
        retries: int = 3,
        retry_policy: RetryPolicy | None = None,
        stream_window: int | None = DEFAULT_STREAM_WINDOW,
    ) -> None:
        if timeout is not None and timeout <= 0:
            raise ValueError("timeout must be positive (or None for no deadline)")
        self.address = address
        self.timeout = timeout
        self.retry_policy = retry_policy or RetryPolicy(retries=retries)
        self._tls = tls
        self._metadata = auth_metadata(api_key)
        self._channel: grpc.aio.Channel | None = None
        self._stub: trading_pb2_grpc.TradingServiceAsyncStub | None = None
        self._stream_window = stream_window
        self._stream_channel: grpc.aio.Channel | None = None
        self._stream_stub: trading_pb2_grpc.TradingServiceAsyncStub | None = None
        self._closed = False

    # ------------------------------------------------------------------ lifecycle

    async def connect(self) -> Self:
        """Create the channel (lazily done by the first call too). Does not wait for it."""
        self._ensure_stub()
        return self

    async def aclose(self) -> None:
        self._closed = True
        channel, self._channel, self._stub = self._channel, None, None
        if channel is not None:
            await channel.close()
        streams, self._stream_channel, self._stream_stub = self._stream_channel, None, None
        if streams is not None:
            await streams.close()

    async def __aenter__(self) -> Self:
        return await self.connect()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    def _ensure_stub(self) -> trading_pb2_grpc.TradingServiceAsyncStub:
        if self._closed:
            raise RuntimeError("TradingClient is closed")
        if self._stub is None:
            self._channel = open_channel(self.address, self._tls)
            self._stub = trading_pb2_grpc.TradingServiceStub(self._channel)
        return self._stub

    def _ensure_stream_stub(self) -> trading_pb2_grpc.TradingServiceAsyncStub:
        if self._closed:
            raise RuntimeError("TradingClient is closed")
        if self._stream_stub is None:
            self._stream_channel = open_channel(
                self.address, self._tls, stream_window=self._stream_window
            )
            self._stream_stub = trading_pb2_grpc.TradingServiceStub(self._stream_channel)
        return self._stream_stub

    # ------------------------------------------------------------------ RPCs

    async def list_accounts(
        self,
        accounts: values.AccountsArg = (),
        read_policy: values.ReadPolicyArg = None,
        include_inactive: bool = False,
        *,
        timeout: float | None = None,  # noqa: ASYNC109 - a gRPC deadline the server sees
    ) -> trading_pb2.ListAccountsResponse:
        request = trading_pb2.ListAccountsRequest(
            selector=values.selector(accounts),
            read_policy=values.read_policy(read_policy),
            include_inactive=include_inactive,
        )
        return await self._call(self._ensure_stub().ListAccounts, request, timeout)

    async def get_positions(
        self,
        accounts: values.AccountsArg = (),
        read_policy: values.ReadPolicyArg = None,
        include_flat: bool = False,
        *,
        timeout: float | None = None,  # noqa: ASYNC109 - a gRPC deadline the server sees
    ) -> trading_pb2.GetPositionsResponse:
        request = trading_pb2.GetPositionsRequest(
            selector=values.selector(accounts),
            read_policy=values.read_policy(read_policy),
            include_flat=include_flat,
        )
        return await self._call(self._ensure_stub().GetPositions, request, timeout)

    async def get_orders(
        self,
        accounts: values.AccountsArg = (),
        read_policy: values.ReadPolicyArg = None,
        filter: values.OrderFilterArg = None,
        statuses: Iterable[values.OrderStatusArg] = (),
        *,
        timeout: float | None = None,  # noqa: ASYNC109 - a gRPC deadline the server sees
    ) -> trading_pb2.GetOrdersResponse:
        request = trading_pb2.GetOrdersRequest(
            selector=values.selector(accounts),
            read_policy=values.read_policy(read_policy),
            filter=values.order_filter(filter),
            statuses=values.order_statuses(statuses),
        )
        return await self._call(self._ensure_stub().GetOrders, request, timeout)

    async def list_pending_order_ids(
        self,
        accounts: values.AccountsArg = (),
        read_policy: values.ReadPolicyArg = None,
        *,
        timeout: float | None = None,  # noqa: ASYNC109 - a gRPC deadline the server sees
    ) -> trading_pb2.ListPendingOrderIdsResponse:
        request = trading_pb2.ListPendingOrderIdsRequest(
            selector=values.selector(accounts),
            read_policy=values.read_policy(read_policy),
        )
        return await self._call(self._ensure_stub().ListPendingOrderIds, request, timeout)

    async def get_balances(
        self,
        accounts: values.AccountsArg = (),
        read_policy: values.ReadPolicyArg = None,
        *,
        timeout: float | None = None,  # noqa: ASYNC109 - a gRPC deadline the server sees
    ) -> trading_pb2.GetBalancesResponse:
        request = trading_pb2.GetBalancesRequest(
            selector=values.selector(accounts),
            read_policy=values.read_policy(read_policy),
        )
        return await self._call(self._ensure_stub().GetBalances, request, timeout)

    async def get_snapshot(
        self,
        accounts: values.AccountsArg = (),
        read_policy: values.ReadPolicyArg = None,
        include_flat: bool = False,
        order_filter: values.OrderFilterArg = None,
        *,
        timeout: float | None = None,  # noqa: ASYNC109 - a gRPC deadline the server sees
    ) -> trading_pb2.GetSnapshotResponse:
        request = trading_pb2.GetSnapshotRequest(
            selector=values.selector(accounts),
            read_policy=values.read_policy(read_policy),
            include_flat=include_flat,
            order_filter=values.order_filter(order_filter),
        )
        return await self._call(self._ensure_stub().GetSnapshot, request, timeout)

    def watch(
        self,
        accounts: values.AccountsArg = (),
        kinds: Iterable[trading_pb2.UpdateKind.ValueType | str] = (),
        *,
        with_snapshot: bool = True,
        heartbeat_interval: float | None = None,
        stall_after: float | None = None,
        resume_after_sequence: int = 0,
        resume_epoch: str = "",
        max_reconnects: int | None = None,
        strict: bool = False,
    ) -> Watch:
        """StreamUpdates as an async iterator that resumes by itself (client/watch.py).

        `kinds`: "positions", "orders", "balances", "pnl", "accounts" (default: all).
        A stream silent for `stall_after` seconds (default: 3 heartbeats) is reconnected.
        The watch checks the delta chain and counts what it saw in `stats`; a gap is
        logged and resumed from, or raises `StreamGapError` when `strict`.
        """
        request = watch_request(
            accounts,
            kinds,
            with_snapshot=with_snapshot,
            heartbeat_interval=heartbeat_interval,
            resume_after_sequence=resume_after_sequence,
            resume_epoch=resume_epoch,
        )
        stall = stall_after if stall_after is not None else 3 * (heartbeat_interval or 5.0)
        return Watch(
            self._ensure_stream_stub(),
            self._metadata,
            request,
            stall_after=stall,
            retry_policy=self.retry_policy,
            max_reconnects=max_reconnects,
            strict=strict,
        )

    # ------------------------------------------------------------------ the call loop

    async def _call(
        self,
        method: grpc.aio.UnaryUnaryMultiCallable[RequestT, ResponseT],
        request: RequestT,
        call_timeout: float | None,
    ) -> ResponseT:
        """One unary call within one deadline, retrying UNAVAILABLE as the policy allows."""
        budget = self.timeout if call_timeout is None else call_timeout
        loop = asyncio.get_running_loop()
        deadline = None if budget is None else loop.time() + budget
        attempt = 0
        while True:
            remaining = None if deadline is None else max(deadline - loop.time(), 0.0)
            try:
                return await method(request, timeout=remaining, metadata=self._metadata)
            except grpc.aio.AioRpcError as rpc_error:
                error = from_rpc_error(rpc_error, attempts=attempt + 1)
                wait = self._retry_wait(error, attempt, deadline, loop.time())
                if wait is None:
                    raise error from rpc_error
            logger.debug("%s on attempt %d; retrying in %.3f s", error.code.name, attempt + 1, wait)
            await asyncio.sleep(wait)
            attempt += 1

    def _retry_wait(
        self, error: ClientError, attempt: int, deadline: float | None, now: float
    ) -> float | None:
        """Seconds to wait before the next attempt, or None when the error is final."""
        policy = self.retry_policy
        if attempt >= policy.retries or not policy.retryable(error.code):
            return None
        wait = policy.delay(attempt, error.retry_after)
        if deadline is not None and now + wait >= deadline:
            return None
        return wait


__all__ = ["DEFAULT_ADDRESS", "ClientError", "TradingClient"]
