"""The one wrapper around every method: request id, API key, timing, metrics, access log.

Applied once per method when the services register (server/api/wrapping.py), it takes
the caller's ``x-request-id`` (or makes one), puts it in the logging ContextVar and the
response's trailing metadata, checks the API key (server/api/auth.py) unless the method
is exempt, then parses the request bytes (server/api/parsing.py: grpc is given no request
deserializer, so bad bytes meet the key check first and get INVALID_ARGUMENT), times the
call, and records method, status code and duration. The access-log
line is written later, in a batch (server/observability/access_log.py).
"""

from __future__ import annotations

import asyncio
import inspect
import itertools
import logging
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any, Final, cast

import grpc

from trading_gateway.server.api.auth import ApiKeyAuth
from trading_gateway.server.api.parsing import RequestParsing, parsed_stream
from trading_gateway.server.api.status import abort_for, error_reason_var
from trading_gateway.server.api.wrapping import Handler, with_behavior
from trading_gateway.server.auth.errors import AuthenticationFailed, TooManyAuthFailures
from trading_gateway.server.auth.principal import current_principal, principal_var
from trading_gateway.server.errors import MalformedRequest
from trading_gateway.server.observability.access_log import AccessEntry, AccessLog
from trading_gateway.server.observability.logging import request_id_var, trace_id_var
from trading_gateway.server.observability.metrics import Metrics
from trading_gateway.server.observability.tracing import RpcSpan, Tracing

logger = logging.getLogger(__name__)

REQUEST_ID_HEADER: Final = "x-request-id"
MAX_REQUEST_ID_LENGTH: Final = 128
# Infrastructure services whose calls are logged at DEBUG only.
QUIET_PREFIXES: Final = ("/grpc.health.", "/grpc.reflection.")

Context = grpc.aio.ServicerContext[Any, Any]
UnaryBehavior = Callable[[Any, Context], Awaitable[Any]]
StreamBehavior = Callable[[Any, Context], AsyncIterator[Any]]
Parse = Callable[[bytes, Any], Any]

# Request ids made here: random per process, then a counter (unique, and far cheaper
# than a uuid4 per call).
_ID_PREFIX: Final = os.urandom(8).hex()
_ids = itertools.count(1)


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
    return f"{_ID_PREFIX}{next(_ids):016x}"


def _code_name(context: Context, error: BaseException | None) -> str:
    if isinstance(error, asyncio.CancelledError | GeneratorExit):
        return "CANCELLED"  # a stream closed because its caller went away
    # The stubs say StatusCode; at run time it is None until a code is set.
    code = cast("grpc.StatusCode | None", context.code())
    if code is not None:
        return code.name
    return "OK" if error is None else "UNKNOWN"


class CallWrapper:
    """Makes the wrapped handler for each method (``wrap`` is a wrapping.Wrap)."""

    def __init__(
        self,
        metrics: Metrics,
        *,
        access_log: AccessLog | None = None,
        auth: ApiKeyAuth | None = None,
        tracing: Tracing | None = None,
    ) -> None:
        self._metrics = metrics
        self._access_log = access_log
        self._auth = auth
        # None when tracing is off: one ``is None`` test per call, nothing imported.
        self._tracing = tracing
        self._parsing = RequestParsing(metrics)

    def wrap(self, method: str, handler: Handler) -> Handler:
        auth = self._auth if self._auth is not None and not self._auth.exempt(method) else None
        quiet = method.startswith(QUIET_PREFIXES)
        # A stream's caller gets the request id at once, in the initial metadata, not only
        # in the trailers at its end (which may be hours away).
        announce = handler.response_streaming and not quiet
        short = method.rsplit("/", 1)[-1]
        # The request is parsed here, after the key check, not by grpc (server/api/parsing.py).
        deserializer = handler.request_deserializer
        parse = self._parsing.parser(method, deserializer) if deserializer is not None else None
        streaming = handler.request_streaming

        def start(context: Context) -> _Call:
            call = _Call(self, short, method, quiet, context, announce)
            if auth is not None:
                principal_var.set(None)
                try:
                    principal = auth.authenticate(call.metadata, call.peer or context.peer())
                except (AuthenticationFailed, TooManyAuthFailures) as exc:
                    call.rejected = exc
                else:
                    principal_var.set(principal)
            return call

        def wrap_behavior(behavior: Any) -> Any:
            if inspect.isasyncgenfunction(behavior):
                stream = cast(StreamBehavior, behavior)
            elif inspect.isgeneratorfunction(behavior):
                stream = _as_async(behavior)
            else:
                # Unary, and stream handlers that write through context.write(): awaited.
                unary = cast(UnaryBehavior, behavior)
                if streaming and parse is not None:
                    return _observed_unary(start, _parsing_client_stream(unary, parse), None)
                return _observed_unary(start, unary, parse)
            if streaming and parse is not None:
                return _observed_stream(start, _parsing_client_stream_gen(stream, parse), None)
            return _observed_stream(start, stream, parse)

        return with_behavior(handler, wrap_behavior, raw_requests=parse is not None)


def _observed_unary(
    start: Callable[[Context], _Call], behavior: UnaryBehavior, parse: Parse | None
) -> UnaryBehavior:
    async def observed(request: Any, context: Context) -> Any:
        with start(context) as call:
            await call.admit()
            if parse is not None:
                try:
                    request = parse(request, context)
                except MalformedRequest as exc:
                    await abort_for(context, exc)
            return await behavior(request, context)

    return observed


def _observed_stream(
    start: Callable[[Context], _Call], behavior: StreamBehavior, parse: Parse | None
) -> StreamBehavior:
    async def observed(request: Any, context: Context) -> AsyncIterator[Any]:
        with start(context) as call:
            await call.admit()
            if parse is not None:
                try:
                    request = parse(request, context)
                except MalformedRequest as exc:
                    await abort_for(context, exc)
            async for item in behavior(request, context):
                yield item

    return observed


def _parsing_client_stream(behavior: UnaryBehavior, parse: Parse) -> UnaryBehavior:
    """A handler of a client stream, fed parsed messages; a bad one ends the call."""

    async def parsing(requests: Any, context: Context) -> Any:
        try:
            return await behavior(parsed_stream(requests, parse, context), context)
        except MalformedRequest as exc:
            await abort_for(context, exc)

    return parsing


def _parsing_client_stream_gen(behavior: StreamBehavior, parse: Parse) -> StreamBehavior:
    """The same for a generator handler of a client stream (e.g. reflection)."""

    async def parsing(requests: Any, context: Context) -> AsyncIterator[Any]:
        try:
            async for item in behavior(parsed_stream(requests, parse, context), context):
                yield item
        except MalformedRequest as exc:
            await abort_for(context, exc)

    return parsing


def _as_async(behavior: Callable[[Any, Context], Iterator[Any]]) -> StreamBehavior:
    """A plain generator handler as an async one (grpc.aio serves both)."""

    async def iterate(request: Any, context: Context) -> AsyncIterator[Any]:
        for item in behavior(request, context):
            yield item

    return iterate


class _Call:
    """Book-keeping for one call, as a context manager around its behavior."""

    __slots__ = (
        "announce",
        "context",
        "metadata",
        "method",
        "owner",
        "peer",
        "quiet",
        "rejected",
        "request_id",
        "short",
        "span",
        "started",
        "token",
    )

    def __init__(
        self,
        owner: CallWrapper,
        short: str,
        method: str,
        quiet: bool,
        context: Context,
        announce: bool = False,
    ) -> None:
        self.owner = owner
        self.announce = announce
        self.context = context
        self.short = short
        self.method = method
        self.quiet = quiet
        self.metadata = context.invocation_metadata()
        self.request_id = request_id_from(self.metadata)
        self.started = time.perf_counter()
        self.token = request_id_var.set(self.request_id)
        self.rejected: AuthenticationFailed | TooManyAuthFailures | None = None
        tracing = owner._tracing
        # Current in this context, so upstream calls made for this RPC become its children.
        self.span: RpcSpan | None = (
            tracing.rpc(method, self.metadata, self.request_id) if tracing is not None else None
        )
        owner._metrics.rpc_in_flight.inc()
        # Read it now: once a stream has ended, asking grpc for the peer of the finished
        # call crashes the process (the core call is already gone).
        self.peer = context.peer() if owner._access_log is not None else ""
        if not quiet:
            # Trailers cost nothing extra (they go out with the status); sending initial
            # metadata would be a separate write. abort_for() keeps the id in its trailers.
            context.set_trailing_metadata(((REQUEST_ID_HEADER, self.request_id),))

    def __enter__(self) -> _Call:
        return self

    def __exit__(self, kind: object, error: BaseException | None, tb: object) -> None:
        self.end(self.context, error)

    async def admit(self) -> None:
        """Abort the call (through the status table) when its API key was refused; a
        stream that may go on sends its request id in the initial metadata."""
        if self.rejected is not None:
            await abort_for(self.context, self.rejected)
        if self.announce:
            await self.context.send_initial_metadata(((REQUEST_ID_HEADER, self.request_id),))

    def end(self, context: Context, error: BaseException | None) -> None:
        elapsed = time.perf_counter() - self.started
        code = _code_name(context, error)
        metrics = self.owner._metrics
        metrics.rpc_in_flight.dec()
        metrics.rpc_done(self.short, code, elapsed)
        if error is not None and not isinstance(
            error, asyncio.CancelledError | grpc.aio.AbortError | GeneratorExit
        ):
            logger.error("%s raised %s", self.short, type(error).__name__, exc_info=error)
        access = self.owner._access_log
        if access is not None:
            level = logging.DEBUG if self.quiet else logging.INFO
            if access.enabled_for(level):
                # The API key's name (the principal set at start), never the key itself.
                principal = current_principal()
                access.add(
                    AccessEntry(
                        level,
                        self.method,
                        code,
                        elapsed,
                        self.peer,
                        principal.name if principal is not None else "-",
                        self.request_id,
                        time.time(),
                        # Set by abort_for in this call's own context (grpc.aio runs each
                        # call in a task of its own, so no other call's reason is seen).
                        error_reason_var.get() or "",
                        trace_id_var.get() if self.span is not None else None,
                    )
                )
        if self.span is not None:  # last: the lines above still carry its trace id
            self.span.end(code, error)
        try:
            request_id_var.reset(self.token)
        except ValueError:  # ended in another context (a stream closed elsewhere)
            request_id_var.set(None)
