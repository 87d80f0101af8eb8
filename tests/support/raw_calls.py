"""Raw request bytes through a real channel: crafted malformed payloads and helpers."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, Final

import grpc
import pytest
from tradovate_gateway.v1 import trading_pb2 as pb

from tests.support.stack import Stack

TRADING = pb.DESCRIPTOR.services_by_name["TradingService"]

# Bytes no request message accepts: each fails for every request type below.
CRAFTED: Final = {
    # field 1, 6 bytes claimed, invalid UTF-8 in them (a string, or a nested message)
    "invalid-utf8": b"\x0a\x06\xff\xfe\xc3\x28\xa0\xa1",
    # field 1, a length of about 4 GiB
    "length-4gib": b"\x0a\xff\xff\xff\xff\x0f\x00\x00",
    # a start-group tag that never ends, and an end-group tag with no start
    "open-group": b"\x0b\x08\x01",
    "stray-end-group": b"\x0c",
    # field 1 varint cut off mid-way
    "truncated-varint": b"\x08\xff\xff\xff",
    # field number 0, and the reserved wire type 7
    "field-zero": b"\x00\x01",
    "wire-type-7": b"\x0f\x01",
}


def trading_methods() -> list[tuple[str, type[Any], bool]]:
    """(full method name, request class, server-streaming) for every TradingService RPC."""
    return [
        (
            f"/{TRADING.full_name}/{m.name}",
            getattr(pb, m.input_type.name),
            m.server_streaming,
        )
        for m in TRADING.methods
    ]


async def send_raw(
    channel: grpc.aio.Channel,
    method: str,
    payload: bytes,
    streaming: bool,
    metadata: Sequence[tuple[str, str]] = (),
) -> grpc.aio.AioRpcError:
    """Send ``payload`` as the request bytes; the call's error (fails when it succeeds)."""
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        if streaming:
            stream: grpc.aio.UnaryStreamMultiCallable[bytes, bytes]
            stream = channel.unary_stream(method, request_serializer=None)
            call = stream(payload, metadata=metadata, timeout=5)
            async for _ in call:
                pass
        else:
            unary: grpc.aio.UnaryUnaryMultiCallable[bytes, bytes]
            unary = channel.unary_unary(method, request_serializer=None)
            await unary(payload, metadata=metadata, timeout=5)
    return caught.value


def malformed_count(stack: Stack, method: str) -> float:
    value = stack.gateway.metrics.registry.get_sample_value(
        "tg_malformed_requests_total", {"method": method}
    )
    return value or 0.0


def assert_no_traceback(records: Sequence[logging.LogRecord]) -> None:
    for record in records:
        assert record.exc_info is None, f"traceback logged: {record.getMessage()}"
        assert "Traceback" not in record.getMessage()
