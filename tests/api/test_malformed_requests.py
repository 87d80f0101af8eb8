"""Request bytes that do not parse, sent through a real channel to every method.

grpc is given no request deserializer (server/api/parsing.py), so bad bytes get
INVALID_ARGUMENT (reason MALFORMED_REQUEST) after the API key check, are counted in
``tg_malformed_requests_total`` and logged once per interval per peer, never with a
traceback. Before, grpc answered UNKNOWN and logged a traceback per call, before any key
was checked.
"""

from __future__ import annotations

import logging
import random
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest
from google.protobuf.message import DecodeError
from grpc_health.v1 import health_pb2
from grpc_reflection.v1alpha import reflection_pb2
from prometheus_client import generate_latest
from tradovate_gateway.v1 import trading_pb2 as pb

from tests.auth.conftest import error_info
from tests.support.raw_calls import (
    CRAFTED,
    TRADING,
    assert_no_traceback,
    malformed_count,
    send_raw,
    trading_methods,
)
from tests.support.stack import Stack
from trading_gateway.server.api.parsing import PeerLogGate

HEALTH = "/grpc.health.v1.Health/"
REFLECTION = "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo"


def every_method() -> list[tuple[str, type[Any], bool]]:
    return [
        *trading_methods(),
        (HEALTH + "Check", health_pb2.HealthCheckRequest, False),
        (HEALTH + "Watch", health_pb2.HealthCheckRequest, True),
    ]


def assert_malformed(request_type: type[Any], payload: bytes) -> None:
    """The precondition: protobuf itself refuses these bytes for this type."""
    with pytest.raises(DecodeError):
        request_type.FromString(payload)


async def send_reflection(channel: grpc.aio.Channel, payload: bytes) -> grpc.aio.AioRpcError:
    """A client-streaming method: one good message, then ``payload``."""
    good = reflection_pb2.ServerReflectionRequest(list_services="").SerializeToString()

    async def requests() -> AsyncIterator[bytes]:
        yield good
        yield payload

    rpc: grpc.aio.StreamStreamMultiCallable[bytes, bytes]
    rpc = channel.stream_stream(REFLECTION, request_serializer=None)
    call = rpc(requests(), timeout=5)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        async for _ in call:
            pass
    return caught.value


async def test_every_method_answers_invalid_argument(
    api_stack: Stack, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    stack = api_stack
    for method, request_type, streaming in every_method():
        short = method.rsplit("/", 1)[-1]
        for case, payload in CRAFTED.items():
            assert_malformed(request_type, payload)
            error = await send_raw(stack.channel, method, payload, streaming)
            assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, (method, case, error)
            assert f"does not parse as {request_type.DESCRIPTOR.full_name}" in (
                error.details() or ""
            )
            assert f"({len(payload)} bytes)" in (error.details() or "")
            assert error_info(error).reason == "MALFORMED_REQUEST"
        assert malformed_count(stack, short) == len(CRAFTED), method
    for payload in CRAFTED.values():
        error = await send_reflection(stack.channel, payload)
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert malformed_count(stack, "ServerReflectionInfo") == len(CRAFTED)
    # The metrics page shows them.
    assert b'tg_malformed_requests_total{method="GetPositions"} 7.0' in generate_latest(
        stack.gateway.metrics.registry
    )
    assert_no_traceback(caplog.records)
    # One peer host, one log line in the interval, however many bad requests it sent.
    lines = [r for r in caplog.records if r.name == "trading_gateway.server.api.parsing"]
    assert len(lines) == 1, [r.getMessage() for r in lines]
    assert lines[0].levelno == logging.WARNING
    assert "127.0.0.1" in lines[0].getMessage()
    # The same channel still serves good requests.
    reply = await stack.stub.ListAccounts(pb.ListAccountsRequest(), timeout=5)
    assert len(reply.accounts) == 4


async def test_fuzzed_bytes_never_get_unknown(
    api_stack: Stack, caplog: pytest.LogCaptureFixture
) -> None:
    """Random bytes: each that protobuf refuses gets INVALID_ARGUMENT; none gets UNKNOWN."""
    caplog.set_level(logging.DEBUG)
    rng = random.Random(16)
    method = f"/{TRADING.full_name}/GetBalances"
    refused = 0
    for _ in range(120):
        payload = rng.randbytes(rng.randint(1, 40))
        try:
            pb.GetBalancesRequest.FromString(payload)
        except DecodeError:
            refused += 1
            error = await send_raw(api_stack.channel, method, payload, streaming=False)
            assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert refused >= 60  # most random bytes do not parse
    assert malformed_count(api_stack, "GetBalances") == refused
    assert_no_traceback(caplog.records)


def test_peer_log_gate_allows_one_line_per_interval_per_peer() -> None:
    now = [0.0]
    gate = PeerLogGate(60.0, max_peers=2, clock=lambda: now[0])
    assert gate.allow("10.0.0.1")
    assert not gate.allow("10.0.0.1")
    assert gate.allow("10.0.0.2")
    now[0] = 59.0
    assert not gate.allow("10.0.0.1")
    now[0] = 60.0
    assert gate.allow("10.0.0.1")
    # Bounded: a third peer evicts the longest-tracked one, which may then log again.
    assert gate.allow("10.0.0.3")
    assert gate.allow("10.0.0.2")
