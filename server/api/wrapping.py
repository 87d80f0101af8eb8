"""Every method handler wrapped once, when its service registers, instead of per call.

grpc.aio server interceptors run for every call: a chain of coroutines that looks the
handler up again, then the wrapper it returns. Measured on a cached read that costs more
than the read itself. The gateway's cross-cutting work (request id, API keys, timing,
metrics, access log: server/api/calls.py) needs no per-call lookup, so it is applied to
each handler as the services register with the server, through ``WrappingRegistrar``.
Services that register generic handlers (health, reflection) get theirs wrapped per
method on first use.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any, Final, TypeAlias, cast

import grpc

# Generic only in the type stubs, so the alias is a string at run time.
Handler: TypeAlias = "grpc.RpcMethodHandler[Any, Any]"
# (full method name "/package.Service/Method", handler) -> the handler to serve it.
Wrap: TypeAlias = Callable[[str, Handler], Handler]
Behavior: TypeAlias = Callable[..., Any]

# Generic-handler methods whose wrappers are kept; past this (a peer probing names) the
# wrapper is made per call.
MAX_WRAPPED_METHODS: Final = 256

_KINDS: Final = (
    ("unary_unary", grpc.unary_unary_rpc_method_handler),
    ("unary_stream", grpc.unary_stream_rpc_method_handler),
    ("stream_unary", grpc.stream_unary_rpc_method_handler),
    ("stream_stream", grpc.stream_stream_rpc_method_handler),
)


def with_behavior(
    handler: Handler, wrap: Callable[[Behavior], Behavior], *, raw_requests: bool = False
) -> Handler:
    """The same handler (kind, serializers) with its behavior wrapped.

    With ``raw_requests`` it has no request deserializer: the wrapped behavior receives
    the request bytes (or a stream of them) and parses them itself.
    """
    deserializer = None if raw_requests else handler.request_deserializer
    return _rebuilt(handler, wrap, deserializer, handler.response_serializer)


def without_response_serializer(handler: Handler) -> Handler:
    """The same handler, sending the bytes its behavior returns (or writes) as they are.

    This is the one place the gateway registers methods without a response serializer,
    and why: their responses are serialized before grpc sees them, once for many calls.
    A read's response is assembled from per-account parts kept serialized
    (server/api/encoded.py); a stream's delta is serialized once by the live hub for
    every subscriber and written as is (server/api/stream_across.py). Which methods do
    this is read from the servicer's annotations (server/api/server.py
    ``serialized_by_servicer``): a unary method that returns ``bytes``, a streaming one
    that returns ``None`` because it writes with ``context.write``.
    """
    return _rebuilt(handler, _same, handler.request_deserializer, None)


def _same(behavior: Behavior) -> Behavior:
    return behavior


def _rebuilt(
    handler: Handler,
    wrap: Callable[[Behavior], Behavior],
    request_deserializer: Callable[[bytes], Any] | None,
    response_serializer: Callable[[Any], bytes] | None,
) -> Handler:
    for attribute, make in _KINDS:
        behavior = getattr(handler, attribute)
        if behavior is not None:
            make_handler = cast("Callable[..., Handler]", make)
            return make_handler(
                wrap(behavior),
                request_deserializer=request_deserializer,
                response_serializer=response_serializer,
            )
    return handler


class WrappingRegistrar:
    """Stands in for the server while services register; wraps every handler they add."""

    def __init__(self, server: grpc.aio.Server, wrap: Wrap) -> None:
        self._server = server
        self._wrap = wrap

    def add_registered_method_handlers(self, service: str, handlers: Mapping[str, Handler]) -> None:
        wrapped = {name: self._wrap(f"/{service}/{name}", h) for name, h in handlers.items()}
        self._server.add_registered_method_handlers(service, wrapped)

    def add_generic_rpc_handlers(self, handlers: Iterable[grpc.GenericRpcHandler]) -> None:
        self._server.add_generic_rpc_handlers(
            tuple(_WrappedGenericHandler(h, self._wrap) for h in handlers)
        )


class _WrappedGenericHandler(grpc.GenericRpcHandler):
    def __init__(self, inner: grpc.GenericRpcHandler, wrap: Wrap) -> None:
        self._inner = inner
        self._wrap = wrap
        self._wrapped: dict[str, tuple[Handler, Handler]] = {}

    def service(self, handler_call_details: grpc.HandlerCallDetails) -> Handler | None:
        handler = self._inner.service(handler_call_details)
        if handler is None:
            return None
        method: str = handler_call_details.method
        known = self._wrapped.get(method)
        if known is not None and known[0] is handler:
            return known[1]
        wrapped = self._wrap(method, handler)
        if len(self._wrapped) < MAX_WRAPPED_METHODS:
            self._wrapped[method] = (handler, wrapped)
        return wrapped
