"""What the cache is, said once at start-up: memory, or Redis that answers or does not."""

from __future__ import annotations

import logging

from trading_gateway.server.cache.base import Cache
from trading_gateway.server.cache.redis_store import RedisCache

# One of the start-up lines of the composition root (server/main.py), logged as its own.
logger = logging.getLogger("trading_gateway.server.main")


async def announce_cache(
    cache: Cache, *, ping_timeout: float, ping_interval: float, health_service: str
) -> None:
    """Log what the cache is; a Redis that does not answer is degraded, not fatal."""
    if not isinstance(cache, RedisCache):
        logger.info("cache: in process memory (REDIS_URL is not set)")
        return
    failure = await cache.check(ping_timeout, announce=False)
    if failure is None:
        logger.info("cache: Redis at %s (REDIS_URL) answers PING", cache.where)
        return
    logger.warning(
        "cache: Redis at %s (REDIS_URL) does not answer (%s); starting without it: "
        "reads go upstream and health %s is NOT_SERVING until Redis answers "
        "(PINGed every %g s). Check REDIS_URL and that Redis is running.",
        cache.where,
        failure,
        health_service,
        ping_interval,
    )
