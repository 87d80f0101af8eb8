"""A thin grpc.aio client for the gateway's unary reads, as the bench uses them."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import grpc
from google.protobuf.message import Message
from tradovate_gateway.v1 import trading_pb2

from bench.stats import now_ns

SERVICE = "tradovate_gateway.v1.TradingService"

POLICY = {
    "upstream": trading_pb2.READ_POLICY_UPSTREAM,
    "cache": trading_pb2.READ_POLICY_CACHED,
    "live": trading_pb2.READ_POLICY_FRESH,
}


@dataclass(frozen=True)
class Rpc:
    name: str
    request: type[Message]
    response: type[Message]

    @property
    def path(self) -> str:
        return f"/{SERVICE}/{self.name}"


RPCS = {
    r.name: r
    for r in (
        Rpc("GetPositions", trading_pb2.GetPositionsRequest, trading_pb2.GetPositionsResponse),
        Rpc("GetOrders", trading_pb2.GetOrdersRequest, trading_pb2.GetOrdersResponse),
        Rpc("GetBalances", trading_pb2.GetBalancesRequest, trading_pb2.GetBalancesResponse),
        Rpc("GetSnapshot", trading_pb2.GetSnapshotRequest, trading_pb2.GetSnapshotResponse),
    )
}


def build_request(rpc: str, accounts: Sequence[str], path: str) -> Message:
    """The request for ``rpc`` over ``accounts`` (empty: all) with ``path``'s read policy."""
    request = RPCS[rpc].request()
    request.selector.accounts.extend(accounts)  # type: ignore[attr-defined]
    request.read_policy = POLICY[path]  # type: ignore[attr-defined]
    if rpc == "GetOrders":
        request.filter = trading_pb2.ORDER_FILTER_ALL  # type: ignore[attr-defined]
    return request


def sources(response: Message) -> dict[str, int]:
    """How many accounts each Source served, and how many were not OK."""
    counts: Counter[str] = Counter()
    for item in response.accounts:  # type: ignore[attr-defined]
        metas = []
        if hasattr(item, "meta"):
            metas.append(item.meta)
        else:  # AccountSnapshot
            metas += [item.positions.meta, item.orders.meta, item.balance.meta]
        for meta in metas:
            counts[trading_pb2.Source.Name(meta.source)] += 1
            if meta.status.code != 0:
                counts["not_ok"] += 1
    return dict(counts)


class GatewayClient:
    """``async with GatewayClient(target, metadata) as c``: timed calls to the gateway."""

    def __init__(self, target: str, metadata: Sequence[tuple[str, str]] = ()) -> None:
        self._target = target
        self._metadata = tuple(metadata) or None
        self._channels: dict[str, grpc.aio.Channel] = {}

    def _channel(self, target: str) -> grpc.aio.Channel:
        if target not in self._channels:
            self._channels[target] = grpc.aio.insecure_channel(
                target, options=[("grpc.max_receive_message_length", 256 * 1024 * 1024)]
            )
        return self._channels[target]

    async def call(
        self, rpc: str, accounts: Sequence[str], path: str, target: str | None = None
    ) -> Message:
        spec = RPCS[rpc]
        method: grpc.aio.UnaryUnaryMultiCallable[Message, Message]
        method = self._channel(target or self._target).unary_unary(
            spec.path,
            request_serializer=lambda m: m.SerializeToString(),
            response_deserializer=spec.response.FromString,
        )
        request = build_request(rpc, accounts, path)
        response: Message = await method(request, metadata=self._metadata, timeout=600)
        return response

    async def timed(
        self, rpc: str, accounts: Sequence[str], path: str, target: str | None = None
    ) -> tuple[int, Message]:
        start = now_ns()
        response = await self.call(rpc, accounts, path, target)
        return now_ns() - start, response

    async def prime(
        self, rpc: str, accounts: Sequence[str], path: str, target: str | None = None
    ) -> tuple[Message, dict[str, int]]:
        """Call twice (the first fills the cache) and return the second response."""
        await self.call(rpc, accounts, path, target)
        response = await self.call(rpc, accounts, path, target)
        return response, sources(response)

    async def __aenter__(self) -> GatewayClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        for channel in self._channels.values():
            await channel.close()
        self._channels.clear()

    @staticmethod
    def describe(response: Any) -> int:
        return int(response.ByteSize())
