"""bounded_redis: a redis.asyncio client whose every call ends within a bound.

Socket connect and read timeouts are set and redis-py's own retries are off, so a dead or
stopped Redis shows up as an error after ``timeout`` seconds instead of a hang, and the
caller (not a retry loop) decides what happens next. The caller owns the client and closes
it (``await client.aclose()``).
"""

from __future__ import annotations

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff


def bounded_redis(url: str, *, timeout: float, name: str = "trading-gateway-replica") -> Redis:
    """A client for ``url`` whose connects and commands time out after ``timeout`` seconds."""
    if timeout <= 0:
        raise ValueError("timeout must be positive")
    return Redis.from_url(
        url,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        retry=Retry(NoBackoff(), 0),
        client_name=name,
    )
