"""gRPC failures as a small exception hierarchy, with the server's rich error details.

`ClientError` is the root. Each subclass stands for one kind of problem a caller handles
differently (fix the request, fix the credentials, wait and retry, ...). Every error
carries the status code, the server's message, and what the gateway put in the
`google.rpc.Status` details: the ErrorInfo reason/domain/metadata, the RetryInfo delay and
any BadRequest field violations.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

import grpc
from google.rpc import error_details_pb2
from grpc_status import rpc_status

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class FieldViolation:
    """One bad request field (google.rpc.BadRequest.FieldViolation)."""

    field: str
    description: str


class ClientError(Exception):
    """A call that ended with a non-OK status."""

    def __init__(
        self,
        code: grpc.StatusCode,
        message: str,
        *,
        reason: str = "",
        domain: str = "",
        metadata: Mapping[str, str] | None = None,
        retry_after: float | None = None,
        field_violations: Sequence[FieldViolation] = (),
        attempts: int = 1,
        request_id: str = "",
    ) -> None:
        super().__init__(f"{code.name}: {message}" if message else code.name)
        self.code = code
        self.message = message
        # ErrorInfo: a machine-readable UPPER_SNAKE reason, e.g. "ACCOUNT_NOT_FOUND".
        self.reason = reason
        self.domain = domain
        self.metadata: dict[str, str] = dict(metadata or {})
        # RetryInfo: seconds after which a retry makes sense (rate limits, penalties).
        self.retry_after = retry_after
        self.field_violations: tuple[FieldViolation, ...] = tuple(field_violations)
        # How many times the call was tried (more than 1 after retries on UNAVAILABLE).
        self.attempts = attempts
        # The gateway's x-request-id for the call (its access log line has the same id);
        # empty when the call never reached the gateway.
        self.request_id = request_id

    @property
    def code_name(self) -> str:
        return self.code.name


class InvalidArgumentError(ClientError):
    """The request was malformed (INVALID_ARGUMENT, OUT_OF_RANGE, FAILED_PRECONDITION)."""


class NotFoundError(ClientError):
    """An account (or another named thing) does not exist (NOT_FOUND)."""


class AuthenticationError(ClientError):
    """Missing or wrong credentials (UNAUTHENTICATED)."""


class PermissionDeniedError(ClientError):
    """Credentials are valid but not allowed to do this (PERMISSION_DENIED)."""


class RateLimitedError(ClientError):
    """Too many requests, here or upstream (RESOURCE_EXHAUSTED); see `retry_after`."""


class UnavailableError(ClientError):
    """The gateway (or what it needs) cannot be reached right now (UNAVAILABLE)."""


class DeadlineExceededError(ClientError):
    """No answer within the deadline (DEADLINE_EXCEEDED)."""


class CallCancelledError(ClientError):
    """The call was cancelled (CANCELLED)."""


class ServerError(ClientError):
    """The gateway failed or does not implement the call (INTERNAL, UNKNOWN, UNIMPLEMENTED...)."""


_BY_CODE: Final[dict[grpc.StatusCode, type[ClientError]]] = {
    grpc.StatusCode.INVALID_ARGUMENT: InvalidArgumentError,
    grpc.StatusCode.OUT_OF_RANGE: InvalidArgumentError,
    grpc.StatusCode.FAILED_PRECONDITION: InvalidArgumentError,
    grpc.StatusCode.NOT_FOUND: NotFoundError,
    grpc.StatusCode.UNAUTHENTICATED: AuthenticationError,
    grpc.StatusCode.PERMISSION_DENIED: PermissionDeniedError,
    grpc.StatusCode.RESOURCE_EXHAUSTED: RateLimitedError,
    grpc.StatusCode.UNAVAILABLE: UnavailableError,
    grpc.StatusCode.DEADLINE_EXCEEDED: DeadlineExceededError,
    grpc.StatusCode.CANCELLED: CallCancelledError,
    grpc.StatusCode.INTERNAL: ServerError,
    grpc.StatusCode.UNKNOWN: ServerError,
    grpc.StatusCode.DATA_LOSS: ServerError,
    grpc.StatusCode.UNIMPLEMENTED: ServerError,
}


def error_class_for(code: grpc.StatusCode) -> type[ClientError]:
    return _BY_CODE.get(code, ClientError)


def from_rpc_error(error: grpc.RpcError, *, attempts: int = 1) -> ClientError:
    """The `ClientError` for a failed call (`grpc.aio.AioRpcError` or a sync `grpc.Call`)."""
    code: grpc.StatusCode = getattr(error, "code", lambda: grpc.StatusCode.UNKNOWN)()
    message: str = getattr(error, "details", lambda: "")() or ""
    details = _rich_details(error)
    return error_class_for(code)(
        code,
        message,
        reason=details.reason,
        domain=details.domain,
        metadata=details.metadata,
        retry_after=details.retry_after,
        field_violations=details.violations,
        attempts=attempts,
        request_id=_request_id(error),
    )


REQUEST_ID_HEADER: Final = "x-request-id"


def _request_id(error: Any) -> str:
    """The x-request-id the gateway sent: in the trailers, or a stream's initial metadata."""
    for getter in ("trailing_metadata", "initial_metadata"):
        try:
            metadata = getattr(error, getter)()
        except Exception:  # a call object without it (or a grpc.Call that cannot say)
            continue
        for item in metadata or ():
            key, value = item[0], item[1]
            if key == REQUEST_ID_HEADER and isinstance(value, str):
                return value
    return ""


@dataclass
class _Details:
    reason: str = ""
    domain: str = ""
    metadata: dict[str, str] | None = None
    retry_after: float | None = None
    violations: tuple[FieldViolation, ...] = ()


def _rich_details(error: Any) -> _Details:
    found = _Details()
    try:
        status = rpc_status.from_call(error)
    except (ValueError, AttributeError, TypeError) as exc:
        # Code/message in the status proto disagree with the call's, or no trailers.
        logger.debug("ignoring unreadable rich status: %s", exc)
        return found
    if status is None:
        return found
    for detail in status.details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            found.reason, found.domain = info.reason, info.domain
            found.metadata = dict(info.metadata)
        elif detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
            retry = error_details_pb2.RetryInfo()
            detail.Unpack(retry)
            found.retry_after = retry.retry_delay.ToTimedelta().total_seconds()
        elif detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            detail.Unpack(bad)
            found.violations = tuple(
                FieldViolation(v.field, v.description) for v in bad.field_violations
            )
    return found
