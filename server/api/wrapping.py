"""The shared shape of the gateway's server interceptors: wrap each method's handler once.

A call reads its own metadata from its context, so a wrapper does not depend on the call
and can be made once per method and reused (building one per call was measurable).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Final, TypeAlias

import grpc

# Generic only in the type stubs, so the alias is a string at run time.
Handler: TypeAlias = "grpc.RpcMethodHandler[Any, Any]"

# Methods whose wrappers are kept; past this (a misbehaving peer probing names) wrap per call.
MAX_WRAPPED_METHODS: Final = 256


class MethodWrappingInterceptor(grpc.aio.ServerInterceptor):
    """Subclasses say how to wrap a handler, and which methods to leave alone."""

    def __init__(self) -> None:
        self._wrapped: dict[str, tuple[Handler, Handler]] = {}

    def _skips(self, method: str) -> bool:
        return False

    def _wrap_handler(self, method: str, handler: Handler) -> Handler:
        raise NotImplementedError

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[Handler | None]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> Handler | None:
        handler = await continuation(handler_call_details)
        if handler is None:
            return None
        method: str = handler_call_details.method
        if self._skips(method):
            return handler
        known = self._wrapped.get(method)
        if known is not None and known[0] is handler:
            return known[1]
        wrapped = self._wrap_handler(method, handler)
        if len(self._wrapped) < MAX_WRAPPED_METHODS:
            self._wrapped[method] = (handler, wrapped)
        return wrapped
