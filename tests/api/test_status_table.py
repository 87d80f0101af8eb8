"""The one exception → status table: every error the layers below can raise is classified."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import grpc
import pytest
from google.rpc import error_details_pb2

from trading_gateway.server.api.status import abort_for, account_status, classify, rich_status
from trading_gateway.server.broker import errors as broker
from trading_gateway.server.errors import (
    AccountsNotFound,
    DeadlineExpired,
    InvalidRequest,
    NotReady,
)
from trading_gateway.server.reads.loaders import BalanceUnavailable

Code = grpc.StatusCode

CASES = [
    (
        broker.AuthError("TRADOVATE_PASSWORD", "bad password"),
        Code.UNAVAILABLE,
        "BROKER_AUTH_FAILED",
    ),
    (broker.CaptchaRequired("captcha"), Code.RESOURCE_EXHAUSTED, "BROKER_CAPTCHA_REQUIRED"),
    (broker.PenaltyError(15.0), Code.RESOURCE_EXHAUSTED, "BROKER_PENALTY"),
    (broker.RateLimitedError(60.0), Code.RESOURCE_EXHAUSTED, "BROKER_RATE_LIMITED"),
    (broker.LockedOutError(retry_after=3600), Code.RESOURCE_EXHAUSTED, "BROKER_LOCKED_OUT"),
    (broker.NotFoundError("no such thing"), Code.NOT_FOUND, "BROKER_NOT_FOUND"),
    (broker.UpstreamUnavailable("503"), Code.UNAVAILABLE, "UPSTREAM_UNAVAILABLE"),
    (broker.UpstreamTimeout("slow"), Code.DEADLINE_EXCEEDED, "UPSTREAM_TIMEOUT"),
    (broker.ProtocolError("garbage"), Code.UNAVAILABLE, "BROKER_PROTOCOL_ERROR"),
    (broker.BrokerClosed("closed"), Code.UNAVAILABLE, "BROKER_CLOSED"),
    (InvalidRequest("bad", field="x"), Code.INVALID_ARGUMENT, "INVALID_ARGUMENT"),
    (AccountsNotFound(["A"]), Code.NOT_FOUND, "ACCOUNT_NOT_FOUND"),
    (DeadlineExpired(), Code.DEADLINE_EXCEEDED, "DEADLINE_EXCEEDED"),
    (NotReady(), Code.UNAVAILABLE, "GATEWAY_NOT_READY"),
    (BalanceUnavailable("Tradovate: no data"), Code.UNAVAILABLE, "BALANCE_UNAVAILABLE"),
    (TimeoutError(), Code.DEADLINE_EXCEEDED, "DEADLINE_EXCEEDED"),
]


@pytest.mark.parametrize(("exc", "code", "reason"), CASES, ids=lambda v: type(v).__name__)
def test_every_known_error_has_a_status(exc: Exception, code: Code, reason: str) -> None:
    found = classify(exc)
    assert (found.code, found.reason) == (code, reason)
    assert found.message
    status = account_status(exc)
    assert status.code == code.value[0]
    assert status.reason == reason


def test_retry_after_travels_as_retry_info() -> None:
    status = rich_status(classify(broker.PenaltyError(2.5)))
    infos = [d for d in status.details if d.Is(error_details_pb2.RetryInfo.DESCRIPTOR)]
    assert len(infos) == 1
    retry = error_details_pb2.RetryInfo()
    infos[0].Unpack(retry)
    assert (retry.retry_delay.seconds, retry.retry_delay.nanos) == (2, 500_000_000)
    assert account_status(broker.RateLimitedError(7)).retry_after.seconds == 7


def test_an_unexpected_error_is_internal_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.ERROR):
        found = classify(ZeroDivisionError("boom"))
    assert found.code == Code.INTERNAL
    assert "boom" not in found.message
    assert any(r.exc_info for r in caplog.records)


async def test_a_status_for_a_caller_who_left_ends_the_call_as_cancelled() -> None:
    """A call can end for a reason of its own (a drain) just after its caller cancelled.
    grpc then cannot send the status: abort_for ends the call as cancelled, quietly,
    instead of letting cygrpc's ExecuteBatchError reach the logs as a failure."""
    handler_started = asyncio.Event()
    handler_done = asyncio.Event()
    outcome: list[str] = []

    async def behavior(request: bytes, context: grpc.aio.ServicerContext[Any, Any]) -> None:
        handler_started.set()
        try:
            await asyncio.sleep(30)  # until the caller cancels
        except asyncio.CancelledError:
            outcome.append("caller left")
        try:
            await abort_for(context, NotReady())
        except asyncio.CancelledError:
            outcome.append("cancelled")
        except grpc.aio.BaseError as exc:
            outcome.append(type(exc).__name__)
        finally:
            handler_done.set()

    server = grpc.aio.server()
    # grpc's stubs take a behaviour of (*args, **kwargs); a Callable-typed name fits it.
    handler: Callable[[bytes, grpc.aio.ServicerContext[Any, Any]], Awaitable[None]] = behavior
    method: grpc.RpcMethodHandler[bytes, bytes] = grpc.unary_stream_rpc_method_handler(handler)
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler("test.Left", {"Stream": method}),)
    )
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            rpc: grpc.aio.UnaryStreamMultiCallable[bytes, bytes]
            rpc = channel.unary_stream("/test.Left/Stream")
            call = rpc(b"")
            reading = asyncio.ensure_future(call.read())
            await asyncio.wait_for(handler_started.wait(), 5)
            call.cancel()
            with pytest.raises(asyncio.CancelledError):
                await reading
            await asyncio.wait_for(handler_done.wait(), 5)
    finally:
        await server.stop(None)
    assert outcome == ["caller left", "cancelled"]
