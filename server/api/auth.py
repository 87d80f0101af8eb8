"""API keys on every call, a per-peer lockout, the caller's scope.

Each call (except health and reflection, unless configured otherwise) must carry
``authorization: Bearer <key>``. The key is hashed and looked up in the KeyRing; the
matching key's principal (name and scope) goes into ``trading_gateway.server.auth.principal`` for
account selection and the access log. Failures go through the status table:
UNAUTHENTICATED (API_KEY_MISSING, API_KEY_MALFORMED, API_KEY_UNKNOWN), and, for a peer
that failed too often, RESOURCE_EXHAUSTED with RetryInfo before any key is checked.
Neither the key nor the header is ever logged or echoed.

The call wrapper (server/api/calls.py) checks the key inside its timing, so rejected calls
are still timed, counted and access-logged, and the access log can name the key.
"""

from __future__ import annotations

import logging
from typing import Any, Final

from trading_gateway.server.auth.errors import AuthenticationFailed, TooManyAuthFailures
from trading_gateway.server.auth.keys import KeyRing
from trading_gateway.server.auth.limiter import FailureLimiter, peer_host
from trading_gateway.server.auth.principal import Principal

logger = logging.getLogger(__name__)

AUTHORIZATION: Final = "authorization"
EXEMPT_PREFIXES: Final = (
    "/grpc.health.v1.Health/",
    "/grpc.reflection.v1.ServerReflection/",
    "/grpc.reflection.v1alpha.ServerReflection/",
)


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


class ApiKeyAuth:
    """Checks one call's API key; the call wrapper (server/api/calls.py) asks it."""

    def __init__(
        self,
        keys: KeyRing,
        limiter: FailureLimiter,
        *,
        exempt_prefixes: tuple[str, ...] = EXEMPT_PREFIXES,
    ) -> None:
        self._keys = keys
        self._limiter = limiter
        self._exempt = exempt_prefixes

    def exempt(self, method: str) -> bool:
        """Methods served without a key (health and reflection, unless configured)."""
        return bool(self._exempt) and method.startswith(self._exempt)

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


def build_auth(
    keys: KeyRing,
    *,
    exempt_health_reflection: bool,
    max_failures: int,
    window: float,
    lockout: float,
    max_lockout: float,
    max_peers: int,
) -> ApiKeyAuth:
    limiter = FailureLimiter(
        max_failures=max_failures,
        window=window,
        lockout=lockout,
        max_lockout=max_lockout,
        max_peers=max_peers,
    )
    exempt = EXEMPT_PREFIXES if exempt_health_reflection else ()
    return ApiKeyAuth(keys, limiter, exempt_prefixes=exempt)
