"""The one exception → gRPC status table.

Every error that reaches the API layer goes through ``classify``: a whole call aborts
with ``abort_for`` (a google.rpc.Status carrying ErrorInfo, plus RetryInfo for rate
limits and penalties, plus BadRequest for bad fields), and a single account inside a
multi-account answer or a stream's subscription status gets ``account_status``. Anything
the table does not know is a bug: it is logged with its traceback and answered INTERNAL.
"""

from __future__ import annotations

import asyncio
import logging
import math
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, Final, Never

import grpc
from google.protobuf import any_pb2, duration_pb2
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status
from tradovate_gateway.v1 import trading_pb2 as pb

from trading_gateway.server.auth.errors import (
    AccountNotInScope,
    AuthenticationFailed,
    TooManyAuthFailures,
)
from trading_gateway.server.broker import errors as broker
from trading_gateway.server.errors import (
    AccountsNotFound,
    DeadlineExpired,
    GatewayError,
    InvalidRequest,
    LoginFailed,
    LoginsNotFound,
    LoginUnavailable,
    NotReady,
    ShuttingDown,
)
from trading_gateway.server.live.errors import (
    AccountNotInLiveSync,
    LiveSyncDisconnected,
    LoginRemoved,
    SlowConsumer,
    StreamLimitReached,
)
from trading_gateway.server.observability.logging import request_id_var

logger = logging.getLogger(__name__)

DOMAIN: Final = "tradovate-gateway"
Code = grpc.StatusCode


@dataclass(frozen=True, slots=True)
class Rule:
    code: grpc.StatusCode
    reason: str
    # Prefix that says whose problem this is; the exception's own message follows.
    prefix: str = ""


# Looked up along the exception's MRO, so the most specific class wins.
TABLE: Final[dict[type[BaseException], Rule]] = {
    InvalidRequest: Rule(Code.INVALID_ARGUMENT, "INVALID_ARGUMENT"),
    AccountsNotFound: Rule(Code.NOT_FOUND, "ACCOUNT_NOT_FOUND"),
    DeadlineExpired: Rule(Code.DEADLINE_EXCEEDED, "DEADLINE_EXCEEDED"),
    NotReady: Rule(Code.UNAVAILABLE, "GATEWAY_NOT_READY"),
    ShuttingDown: Rule(Code.UNAVAILABLE, "GATEWAY_SHUTTING_DOWN"),
    # Many logins (server/logins): an unknown login, one that cannot answer, one refused.
    LoginsNotFound: Rule(Code.NOT_FOUND, "LOGIN_NOT_FOUND"),
    LoginUnavailable: Rule(Code.UNAVAILABLE, "LOGIN_UNAVAILABLE"),
    LoginFailed: Rule(Code.UNAUTHENTICATED, "LOGIN_FAILED"),
    # Streams (server/live/errors.py); drain and upstream loss fall to UNAVAILABLE below.
    StreamLimitReached: Rule(Code.RESOURCE_EXHAUSTED, "STREAM_LIMIT_REACHED"),
    SlowConsumer: Rule(Code.RESOURCE_EXHAUSTED, "SLOW_CONSUMER"),
    LoginRemoved: Rule(Code.UNAVAILABLE, "LOGIN_REMOVED"),
    # One account in a stream's subscription status (server/live/streams.py).
    AccountNotInLiveSync: Rule(Code.NOT_FOUND, "ACCOUNT_NOT_IN_LIVE_SYNC"),
    LiveSyncDisconnected: Rule(Code.UNAVAILABLE, "UPSTREAM_SYNC_DISCONNECTED"),
    # Callers (server/auth): keys and scopes. The reason says which (API_KEY_MISSING, ...).
    AuthenticationFailed: Rule(Code.UNAUTHENTICATED, "API_KEY_UNKNOWN"),
    TooManyAuthFailures: Rule(Code.RESOURCE_EXHAUSTED, "TOO_MANY_AUTH_FAILURES"),
    AccountNotInScope: Rule(Code.PERMISSION_DENIED, "ACCOUNT_NOT_IN_SCOPE"),
    GatewayError: Rule(Code.UNAVAILABLE, "GATEWAY_ERROR"),
    broker.AuthError: Rule(
        Code.UNAVAILABLE, "BROKER_AUTH_FAILED", "the gateway's Tradovate login failed: "
    ),
    # Like 429 and 423: every upstream call stops for a time (RetryInfo says how long),
    # and RESOURCE_EXHAUSTED is not a code clients retry on their own.
    broker.CaptchaRequired: Rule(
        Code.RESOURCE_EXHAUSTED, "BROKER_CAPTCHA_REQUIRED", "Tradovate wants a captcha: "
    ),
    broker.PenaltyError: Rule(Code.RESOURCE_EXHAUSTED, "BROKER_PENALTY"),
    broker.RateLimitedError: Rule(Code.RESOURCE_EXHAUSTED, "BROKER_RATE_LIMITED"),
    broker.LockedOutError: Rule(Code.RESOURCE_EXHAUSTED, "BROKER_LOCKED_OUT"),
    broker.NotFoundError: Rule(Code.NOT_FOUND, "BROKER_NOT_FOUND", "Tradovate: "),
    broker.UpstreamTimeout: Rule(Code.DEADLINE_EXCEEDED, "UPSTREAM_TIMEOUT"),
    broker.UpstreamUnavailable: Rule(
        Code.UNAVAILABLE, "UPSTREAM_UNAVAILABLE", "Tradovate unavailable: "
    ),
    broker.ProtocolError: Rule(
        Code.UNAVAILABLE, "BROKER_PROTOCOL_ERROR", "unexpected answer from Tradovate: "
    ),
    broker.BrokerClosed: Rule(Code.UNAVAILABLE, "BROKER_CLOSED", "broker connection closed: "),
    broker.BrokerError: Rule(Code.UNAVAILABLE, "BROKER_ERROR", "Tradovate error: "),
    TimeoutError: Rule(Code.DEADLINE_EXCEEDED, "DEADLINE_EXCEEDED"),
}

INTERNAL_RULE: Final = Rule(Code.INTERNAL, "INTERNAL")


@dataclass(frozen=True, slots=True)
class Classified:
    """What the table says about one exception."""

    code: grpc.StatusCode
    reason: str
    message: str
    retry_after: float | None = None
    metadata: dict[str, str] = field(default_factory=dict)
    field: str | None = None

    @property
    def known(self) -> bool:
        return self.code is not Code.INTERNAL


def rule_for(exc: BaseException) -> Rule:
    for cls in type(exc).__mro__:
        rule = TABLE.get(cls)
        if rule is not None:
            return rule
    return INTERNAL_RULE


def classify(exc: BaseException) -> Classified:
    """The status for ``exc``; unknown exceptions are logged here with their traceback."""
    rule = rule_for(exc)
    if rule is INTERNAL_RULE:
        logger.error("unexpected error %s", type(exc).__name__, exc_info=exc)
        return Classified(Code.INTERNAL, "INTERNAL", "internal error; see the gateway log")
    reason = getattr(exc, "reason", None)
    if not isinstance(reason, str) or not reason:
        reason = rule.reason
    text = str(exc) or rule.reason.replace("_", " ").lower()
    metadata = dict(getattr(exc, "metadata", None) or {})
    retry_after = _retry_after(exc)
    if retry_after is not None:
        metadata["retry_after_s"] = f"{retry_after:.3f}"
    return Classified(
        code=rule.code,
        reason=reason,
        message=rule.prefix + text,
        retry_after=retry_after,
        metadata=metadata,
        field=exc.field if isinstance(exc, InvalidRequest) else None,
    )


def _retry_after(exc: BaseException) -> float | None:
    value = getattr(exc, "retry_after", None)
    if isinstance(value, int | float) and math.isfinite(value) and value >= 0:
        return float(value)
    return None


def _duration(seconds: float) -> duration_pb2.Duration:
    whole = int(seconds)
    return duration_pb2.Duration(seconds=whole, nanos=int((seconds - whole) * 1e9))


def _packed(message: Any) -> any_pb2.Any:
    packed = any_pb2.Any()
    packed.Pack(message)
    return packed


def rich_status(found: Classified) -> status_pb2.Status:
    """google.rpc.Status with exactly one ErrorInfo, and RetryInfo/BadRequest when they apply."""
    details = [
        _packed(
            error_details_pb2.ErrorInfo(reason=found.reason, domain=DOMAIN, metadata=found.metadata)
        )
    ]
    if found.retry_after is not None:
        details.append(
            _packed(error_details_pb2.RetryInfo(retry_delay=_duration(found.retry_after)))
        )
    if found.field is not None:
        violation = error_details_pb2.BadRequest.FieldViolation(
            field=found.field, description=found.message
        )
        details.append(_packed(error_details_pb2.BadRequest(field_violations=[violation])))
    return status_pb2.Status(code=found.code.value[0], message=found.message, details=details)


#: The UPPER_SNAKE reason of the status ``abort_for`` ended the current call with (None:
#: it did not); server/api/calls.py resets it per call and writes it in the access log.
error_reason_var: ContextVar[str | None] = ContextVar("error_reason", default=None)


async def abort_for(context: grpc.aio.ServicerContext[Any, Any], exc: BaseException) -> Never:
    """End the call with the table's status for ``exc`` (rich details in trailers).

    The trailers also carry the call's x-request-id, which abort would otherwise drop.
    """
    found = classify(exc)
    error_reason_var.set(found.reason)  # for the call's access-log line
    status = rpc_status.to_status(rich_status(found))
    trailers = tuple(status.trailing_metadata)
    request_id = request_id_var.get()
    if request_id:
        trailers += (("x-request-id", request_id),)
    try:
        await context.abort(status.code, status.details, trailers)
    except grpc.aio.InternalError as exc:
        # grpc could not send the status (cygrpc's ExecuteBatchError): the caller has gone,
        # cancelled or disconnected, while the call was ending for another reason (a drain,
        # say). Nobody is left to tell; end the way grpc ends a cancelled call.
        raise asyncio.CancelledError(
            f"the caller left before its status ({status.code.name}) could be sent"
        ) from exc


OK_STATUS: Final = pb.AccountStatus(code=0)


def account_status(exc: BaseException | None) -> pb.AccountStatus:
    """The per-account status inside a multi-account response or a stream's subscription.

    This is the ``status_of`` the composition root injects into server/convert/'s
    builders and into server/live/streams.py.
    """
    if exc is None:
        return OK_STATUS
    found = classify(exc)
    status = pb.AccountStatus(code=found.code.value[0], message=found.message, reason=found.reason)
    if found.retry_after is not None:
        status.retry_after.CopyFrom(_duration(found.retry_after))
    return status
