"""A purpose-built TradingService peer on a real grpc.aio server (127.0.0.1, port 0).

The peer answers with the canned messages in samples.py, records every call (request,
metadata, arrival time, time left before the deadline), and can be scripted to fail the
next N calls with a given status, including rich google.rpc.Status details.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import grpc
import pytest
from google.protobuf import any_pb2, duration_pb2
from google.protobuf.message import Message
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status
from tradovate_gateway.v1 import trading_pb2 as pb
from tradovate_gateway.v1 import trading_pb2_grpc

from tests.client import samples


@dataclass
class Seen:
    method: str
    request: Message
    metadata: dict[str, str]
    at: float
    time_left: float | None


def rich_status(
    code: grpc.StatusCode,
    message: str,
    *,
    reason: str = "",
    metadata: dict[str, str] | None = None,
    retry_after: float | None = None,
    violations: list[tuple[str, str]] | None = None,
) -> status_pb2.Status:
    details = []
    if reason:
        info = error_details_pb2.ErrorInfo(
            reason=reason, domain="tradovate-gateway", metadata=metadata or {}
        )
        details.append(_pack(info))
    if retry_after is not None:
        delay = duration_pb2.Duration()
        delay.FromNanoseconds(int(retry_after * 1e9))
        details.append(_pack(error_details_pb2.RetryInfo(retry_delay=delay)))
    if violations:
        bad = error_details_pb2.BadRequest(
            field_violations=[
                error_details_pb2.BadRequest.FieldViolation(field=f, description=d)
                for f, d in violations
            ]
        )
        details.append(_pack(bad))
    return status_pb2.Status(code=code.value[0], message=message, details=details)


def _pack(message: Message) -> any_pb2.Any:
    packed = any_pb2.Any()
    packed.Pack(message)
    return packed


class ScriptedPeer(trading_pb2_grpc.TradingServiceServicer):
    def __init__(self) -> None:
        self.seen: list[Seen] = []
        self._failures: list[status_pb2.Status | tuple[grpc.StatusCode, str]] = []

    def fail_next(self, count: int, code: grpc.StatusCode, message: str = "scripted") -> None:
        self._failures.extend([(code, message)] * count)

    def fail_next_with(self, status: status_pb2.Status, count: int = 1) -> None:
        self._failures.extend([status] * count)

    def calls(self, method: str | None = None) -> list[Seen]:
        return [s for s in self.seen if method is None or s.method == method]

    async def _answer(self, method: str, request: Message, context: Any, reply: Message) -> Any:
        metadata = {k: v for k, v in (context.invocation_metadata() or ()) if isinstance(v, str)}
        self.seen.append(
            Seen(method, request, metadata, time.monotonic(), context.time_remaining())
        )
        if self._failures:
            failure = self._failures.pop(0)
            if isinstance(failure, tuple):
                await context.abort(failure[0], failure[1])
            status = rpc_status.to_status(failure)
            await context.abort(status.code, status.details, status.trailing_metadata)
        return reply

    async def ListAccounts(self, request: Any, context: Any) -> Any:
        return await self._answer("ListAccounts", request, context, samples.LIST_ACCOUNTS)

    async def GetPositions(self, request: Any, context: Any) -> Any:
        return await self._answer("GetPositions", request, context, samples.POSITIONS)

    async def GetOrders(self, request: Any, context: Any) -> Any:
        return await self._answer("GetOrders", request, context, samples.ORDERS)

    async def ListPendingOrderIds(self, request: Any, context: Any) -> Any:
        return await self._answer("ListPendingOrderIds", request, context, samples.PENDING)

    async def GetBalances(self, request: Any, context: Any) -> Any:
        return await self._answer("GetBalances", request, context, samples.BALANCES)

    async def GetSnapshot(self, request: Any, context: Any) -> Any:
        return await self._answer("GetSnapshot", request, context, samples.SNAPSHOT)

    async def StreamUpdates(self, request: Any, context: Any) -> AsyncIterator[pb.StreamUpdate]:
        await context.abort(grpc.StatusCode.UNIMPLEMENTED, "not part of this peer")
        yield pb.StreamUpdate()  # never reached; makes this a streaming handler


@pytest.fixture
def peer() -> ScriptedPeer:
    return ScriptedPeer()


@pytest.fixture
async def address(peer: ScriptedPeer) -> AsyncIterator[str]:
    server = grpc.aio.server()
    trading_pb2_grpc.add_TradingServiceServicer_to_server(peer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        yield f"127.0.0.1:{port}"
    finally:
        await server.stop(None)


__all__ = ["ScriptedPeer", "Seen", "pb", "rich_status"]
