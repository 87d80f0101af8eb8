"""The auth interceptor: API keys on every call, a per-peer lockout, the caller's scope.

Each call (except health and reflection, unless configured otherwise) must carry
``authorization: Bearer <key>``. The key is hashed and looked up in the KeyRing; the
matching key's principal (name and scope) goes into ``server.auth.principal`` for
account selection and the access log. Failures go through the status table:
UNAUTHENTICATED (API_KEY_MISSING, API_KEY_MALFORMED, API_KEY_UNKNOWN), and, for a peer
that failed too often, RESOURCE_EXHAUSTED with RetryInfo before any key is checked.
Neither the key nor the header is ever logged or echoed.

Install it after the ObservingInterceptor (inner), so rejected calls are still timed,
counted and access-logged, and the access log can name the key.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any, Final, cast

import grpc

from server.api.status import abort_for
from server.api.wrapping import Handler, MethodWrappingInterceptor
from server.auth.errors import AuthenticationFailed, TooManyAuthFailures
from server.auth.keys import KeyRing
from server.auth.limiter import FailureLimiter, peer_host
from server.auth.principal import Principal, principal_var

logger = logging.getLogger(__name__)

AUTHORIZATION: Final = "authorization"
# Methods whose wrapped handler is kept (the services' methods; unknown names are not kept).
EXEMPT_PREFIXES: Final = ("/grpc.health.v1.Health/", "/grpc.reflection.v1alpha.ServerReflection/")

Context = grpc.aio.ServicerContext[Any, Any]
Behavior = Callable[[Any, Context], Any]


def bearer_key(metadata: Any) -> str:
    """The key from ``authorization: Bearer <key>``; AuthenticationFailed otherwise."""
    values = [item[1] for item in metadata or () if item[0] == AUTHORIZATION]
    if not values:
        raise AuthenticationFailed(
            "this gateway requires an API key: send 'authorization: Bearer <key>' metadata",
            reason="API_KEY_MISSING",
        )
    value = values[0]
    if len(values) > 1 or not isinstance(value, str):
        raise AuthenticationFailed(
            "send exactly one 'authorization: Bearer <key>' metadata entry",
            reason="API_KEY_MALFORMED",
        )
    scheme, _, key = value.strip().partition(" ")
    key = key.strip()
    if scheme.lower() != "bearer" or not key:
        raise AuthenticationFailed(
            "the authorization metadata must be 'Bearer <key>'", reason="API_KEY_MALFORMED"
        )
    return key


class AuthInterceptor(MethodWrappingInterceptor):
    def __init__(
        self,
        keys: KeyRing,
        limiter: FailureLimiter,
        *,
        exempt_prefixes: tuple[str, ...] = EXEMPT_PREFIXES,
    ) -> None:
        super().__init__()
        self._keys = keys
        self._limiter = limiter
        self._exempt = exempt_prefixes

    def _skips(self, method: str) -> bool:
        return bool(self._exempt) and method.startswith(self._exempt)

    def _wrap_handler(self, method: str, handler: Handler) -> Handler:
        kinds = (
            ("unary_unary", grpc.unary_unary_rpc_method_handler),
            ("unary_stream", grpc.unary_stream_rpc_method_handler),
            ("stream_unary", grpc.stream_unary_rpc_method_handler),
            ("stream_stream", grpc.stream_stream_rpc_method_handler),
        )
        for attribute, make in kinds:
            behavior = getattr(handler, attribute)
            if behavior is not None:
                make_handler = cast("Callable[..., grpc.RpcMethodHandler[Any, Any]]", make)
                return make_handler(
                    self._wrap(cast(Behavior, behavior)),
                    request_deserializer=handler.request_deserializer,
                    response_serializer=handler.response_serializer,
                )
        return handler

    def authenticate(self, metadata: Any, peer: str) -> Principal:
        """The caller's principal; raises TooManyAuthFailures or AuthenticationFailed."""
        host = peer_host(peer)
        wait = self._limiter.retry_after(host)
        if wait is not None:
            raise TooManyAuthFailures(wait)
        try:
            principal = self._keys.authenticate(bearer_key(metadata))
            if principal is None:
                raise AuthenticationFailed("the API key is not valid", reason="API_KEY_UNKNOWN")
        except AuthenticationFailed as exc:
            logger.warning("authentication failed from %s: %s", host, exc.reason)
            locked = self._limiter.failed(host)
            if locked is not None:
                logger.warning(
                    "%s locked out for %.0f s after repeated authentication failures",
                    host,
                    locked,
                )
            raise
        return principal

    def _wrap(self, behavior: Behavior) -> Behavior:
        # The principal stays set for the rest of the call (each RPC runs in its own
        # task), so the ObservingInterceptor around this one can log the key's name.
        if inspect.isasyncgenfunction(behavior):

            async def checked_gen(request: Any, context: Context) -> AsyncIterator[Any]:
                principal_var.set(None)
                try:
                    principal = self.authenticate(context.invocation_metadata(), context.peer())
                except (AuthenticationFailed, TooManyAuthFailures) as exc:
                    await abort_for(context, exc)
                principal_var.set(principal)
                async for item in behavior(request, context):
                    yield item

            return checked_gen

        async def checked(request: Any, context: Context) -> Any:
            principal_var.set(None)
            try:
                principal = self.authenticate(context.invocation_metadata(), context.peer())
            except (AuthenticationFailed, TooManyAuthFailures) as exc:
                await abort_for(context, exc)
            principal_var.set(principal)
            return await behavior(request, context)

        return checked


def build_auth_interceptor(
    keys: KeyRing,
    *,
    exempt_health_reflection: bool,
    max_failures: int,
    window: float,
    lockout: float,
    max_lockout: float,
    max_peers: int,
) -> AuthInterceptor:
    limiter = FailureLimiter(
        max_failures=max_failures,
        window=window,
        lockout=lockout,
        max_lockout=max_lockout,
        max_peers=max_peers,
    )
    exempt = EXEMPT_PREFIXES if exempt_health_reflection else ()
    return AuthInterceptor(keys, limiter, exempt_prefixes=exempt)
