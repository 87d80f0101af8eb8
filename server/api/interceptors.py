"""The server interceptor: request id, access log and latency metrics for every call.

One wrapper per call does all three (one extra await, not three): it takes the caller's
``x-request-id`` (or makes one), puts it in the logging ContextVar and the response's
trailing metadata, times the call, and records method, status code and duration.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Final, cast

import grpc

from server.api.wrapping import MethodWrappingInterceptor
from server.auth.principal import current_principal
from server.observability.logging import json_logging, request_id_var
from server.observability.metrics import Metrics

logger = logging.getLogger(__name__)
access_logger = logging.getLogger("server.api.access")

REQUEST_ID_HEADER: Final = "x-request-id"
MAX_REQUEST_ID_LENGTH: Final = 128
# Infrastructure services whose calls are logged at DEBUG only.
QUIET_PREFIXES: Final = ("/grpc.health.", "/grpc.reflection.")
# Methods whose wrapped handler is kept (the services' methods; unknown names are not kept).

Context = grpc.aio.ServicerContext[Any, Any]
UnaryBehavior = Callable[[Any, Context], Awaitable[Any]]
StreamBehavior = Callable[[Any, Context], Any]


def request_id_from(metadata: Any) -> str:
    """The caller's x-request-id when it is sane, else a fresh one."""
    for item in metadata or ():
        key, value = item[0], item[1]
        if (
            key == REQUEST_ID_HEADER
            and isinstance(value, str)
            and 0 < len(value) <= MAX_REQUEST_ID_LENGTH
            and value.isprintable()
        ):
            return value
    return uuid.uuid4().hex


def _code_name(context: Context, error: BaseException | None) -> str:
    if isinstance(error, asyncio.CancelledError | GeneratorExit):
        return "CANCELLED"  # a stream closed because its caller went away
    # The stubs say StatusCode; at run time it is None until a code is set.
    code = cast("grpc.StatusCode | None", context.code())
    if code is not None:
        return code.name
    return "OK" if error is None else "UNKNOWN"


class ObservingInterceptor(MethodWrappingInterceptor):
    def __init__(self, metrics: Metrics, *, access_log: bool = True) -> None:
        super().__init__()
        self._metrics = metrics
        self._access_log = access_log

    def _wrap_handler(
        self, method: str, handler: grpc.RpcMethodHandler[Any, Any]
    ) -> grpc.RpcMethodHandler[Any, Any]:
        if handler.unary_unary is not None:
            return grpc.unary_unary_rpc_method_handler(
                self._wrap_unary(method, cast(UnaryBehavior, handler.unary_unary)),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        if handler.unary_stream is not None:
            return grpc.unary_stream_rpc_method_handler(
                self._wrap_stream(method, cast(StreamBehavior, handler.unary_stream)),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        return handler

    def _wrap_unary(self, method: str, behavior: UnaryBehavior) -> UnaryBehavior:
        async def observed(request: Any, context: Context) -> Any:
            call = _Call(self, method, context.invocation_metadata())
            call.begin(context)
            error: BaseException | None = None
            try:
                return await behavior(request, context)
            except BaseException as exc:
                error = exc
                raise
            finally:
                call.end(context, error)

        return observed

    def _wrap_stream(self, method: str, behavior: StreamBehavior) -> StreamBehavior:
        if inspect.isasyncgenfunction(behavior):

            async def observed_gen(request: Any, context: Context) -> AsyncIterator[Any]:
                call = _Call(self, method, context.invocation_metadata())
                call.begin(context)
                error: BaseException | None = None
                try:
                    async for item in behavior(request, context):
                        yield item
                except BaseException as exc:
                    error = exc
                    raise
                finally:
                    call.end(context, error)

            return observed_gen
        # A stream handler that writes through context.write() is awaited like a unary one.
        return cast(StreamBehavior, self._wrap_unary(method, cast(UnaryBehavior, behavior)))


class _Call:
    """Book-keeping for one call between begin() and end()."""

    __slots__ = ("interceptor", "method", "peer", "quiet", "request_id", "started", "token")

    def __init__(self, interceptor: ObservingInterceptor, method: str, metadata: Any) -> None:
        self.interceptor = interceptor
        self.method = method
        self.quiet = method.startswith(QUIET_PREFIXES)
        self.request_id = request_id_from(metadata)
        self.started = time.perf_counter()
        self.token = request_id_var.set(self.request_id)
        self.peer = ""

    def begin(self, context: Context) -> None:
        self.interceptor._metrics.rpc_in_flight.inc()
        if self.interceptor._access_log:
            # Read it now: once a stream has ended, asking grpc for the peer of the
            # finished call crashes the process (the core call is already gone).
            self.peer = context.peer()
        if not self.quiet:
            # Trailers cost nothing extra (they go out with the status); sending initial
            # metadata would be a separate write. abort_for() keeps the id in its trailers.
            context.set_trailing_metadata(((REQUEST_ID_HEADER, self.request_id),))

    def end(self, context: Context, error: BaseException | None) -> None:
        elapsed = time.perf_counter() - self.started
        code = _code_name(context, error)
        metrics = self.interceptor._metrics
        metrics.rpc_in_flight.dec()
        short = self.method.rsplit("/", 1)[-1]
        metrics.rpc_done(short, code, elapsed)
        if error is not None and not isinstance(
            error, asyncio.CancelledError | grpc.aio.AbortError | GeneratorExit
        ):
            logger.error("%s raised %s", short, type(error).__name__, exc_info=error)
        if self.interceptor._access_log:
            level = logging.DEBUG if self.quiet else logging.INFO
            if access_logger.isEnabledFor(level):
                # The API key's name (set by server/api/auth.py), never the key itself.
                principal = current_principal()
                key_name = principal.name if principal is not None else "-"
                # One line, formatted once; the structured fields only for JSON output.
                # The record is made here and handed to the logger's handlers: the same
                # filters and formatters, without logging's search for the caller's frame.
                line = (
                    f"{self.method} {code} {elapsed * 1000:.2f} ms peer={self.peer} key={key_name}"
                )
                extra = None
                if json_logging():
                    extra = {
                        "rpc": short,
                        "code": code,
                        "duration_ms": round(elapsed * 1000, 3),
                        "key_name": key_name,
                    }
                record = access_logger.makeRecord(
                    access_logger.name, level, __file__, 0, line, (), None, "end", extra
                )
                access_logger.handle(record)
        try:
            request_id_var.reset(self.token)
        except ValueError:  # ended in another context (a stream closed elsewhere)
            request_id_var.set(None)
