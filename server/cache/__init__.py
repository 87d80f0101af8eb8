"""TTL caches behind one `Cache` protocol: in-process memory, or Redis with a circuit breaker."""

from __future__ import annotations

from trading_gateway.server.cache.base import (
    Cache,
    CacheCounters,
    StateCallback,
    cache_key,
    cache_keys,
)
from trading_gateway.server.cache.memory_store import DEFAULT_MAX_ENTRIES, MemoryCache
from trading_gateway.server.cache.redis_store import (
    DEFAULT_BACKOFF_INITIAL,
    DEFAULT_BACKOFF_MAX,
    DEFAULT_FAILURE_THRESHOLD,
    DEFAULT_MAX_CONNECTIONS,
    DEFAULT_OP_TIMEOUT,
    DEFAULT_PING_TIMEOUT,
    RedisCache,
)
from trading_gateway.server.cache.watch import CacheWatch

__all__ = [
    "Cache",
    "CacheCounters",
    "CacheWatch",
    "MemoryCache",
    "RedisCache",
    "StateCallback",
    "build_cache",
    "cache_key",
    "cache_keys",
]


def build_cache(
    redis_url: str | None,
    *,
    on_state_change: StateCallback | None = None,
    max_entries: int = DEFAULT_MAX_ENTRIES,
    op_timeout: float = DEFAULT_OP_TIMEOUT,
    failure_threshold: int = DEFAULT_FAILURE_THRESHOLD,
    backoff_initial: float = DEFAULT_BACKOFF_INITIAL,
    backoff_max: float = DEFAULT_BACKOFF_MAX,
    max_connections: int = DEFAULT_MAX_CONNECTIONS,
    ping_timeout: float = DEFAULT_PING_TIMEOUT,
) -> Cache:
    """A `RedisCache` when `redis_url` is set (non-empty), else a `MemoryCache`.

    `max_entries` applies to memory; `op_timeout`, `failure_threshold`, `backoff_*`,
    `max_connections` and `ping_timeout` apply to Redis; `on_state_change` is accepted by both.
    Building is lazy: no connection is made until the first call (or `await cache.ping()`).
    """
    if redis_url:
        return RedisCache(
            redis_url,
            op_timeout=op_timeout,
            failure_threshold=failure_threshold,
            backoff_initial=backoff_initial,
            backoff_max=backoff_max,
            max_connections=max_connections,
            ping_timeout=ping_timeout,
            on_state_change=on_state_change,
        )
    return MemoryCache(max_entries=max_entries, on_state_change=on_state_change)
