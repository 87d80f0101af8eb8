"""CacheWatch: PING the cache on a timer, so its health is current even when no read uses it.

With live state on, reads rarely reach the cache, and a backend's `healthy` flag only
changes when a call fails; a dead Redis would look healthy for as long as nobody asked.
The watch PINGs every `interval` seconds in a task it owns: a failed PING opens the
backend's circuit (health turns NOT_SERVING and the backend fires its state callback),
a successful one closes it, so recovery is seen within one interval too.
"""

from __future__ import annotations

import asyncio
import logging

from trading_gateway.server.cache.base import Cache

logger = logging.getLogger(__name__)


class CacheWatch:
    """Owns one task that PINGs `cache` every `interval` seconds until `aclose()`."""

    def __init__(self, cache: Cache, *, interval: float, timeout: float) -> None:
        if interval <= 0 or timeout <= 0:
            raise ValueError("interval and timeout must be positive")
        self._cache = cache
        self._interval = interval
        # A PING is not on any request's path: it may wait longer than a read would, so
        # a briefly slow Redis is not reported as dead (reads judge slowness themselves;
        # RedisCache PINGs on a connection of its own, with this kind of timeout).
        self._timeout = min(timeout, interval)
        self._task: asyncio.Task[None] | None = None

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="cache-watch")

    async def aclose(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            try:
                await self._cache.ping(self._timeout)
            except Exception:  # a bug in a backend must not end the watch
                logger.exception("cache PING failed unexpectedly")
