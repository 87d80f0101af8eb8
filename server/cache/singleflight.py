"""Single-flight: concurrent callers asking for the same key share one execution.

Used against cache stampedes: when a cached entry expires under load, one upstream fetch
runs and every concurrent request for that key awaits its result.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Hashable
from types import TracebackType
from typing import Generic, Self, TypeVar

logger = logging.getLogger(__name__)

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class SingleFlight(Generic[K, V]):
    """`await sf.do(key, factory)` runs `factory()` once per key at a time.

    - Callers arriving while a flight for `key` is running await that flight instead of
      starting another; all of them get its result, or its exception.
    - The flight runs in its own task: cancelling one waiter (a caller's deadline) never
      cancels the shared work, which finishes for the others (and, e.g., fills the cache).
    - The key is forgotten as soon as the flight ends, so the next call starts a fresh one.
    - `aclose()` cancels flights still running.
    """

    def __init__(self, name: str = "singleflight") -> None:
        self._name = name
        self._flights: dict[K, asyncio.Task[V]] = {}

    def __len__(self) -> int:
        """Flights running now."""
        return len(self._flights)

    def in_flight(self, key: K) -> bool:
        return key in self._flights

    async def do(self, key: K, factory: Callable[[], Awaitable[V]]) -> V:
        task = self._flights.get(key)
        if task is None:
            task = asyncio.get_running_loop().create_task(
                _run(factory), name=f"{self._name}:{key!r}"
            )
            self._flights[key] = task
            task.add_done_callback(lambda done: self._finish(key, done))
        # shield: a waiter's cancellation stops its wait, not the shared task.
        return await asyncio.shield(task)

    def _finish(self, key: K, task: asyncio.Task[V]) -> None:
        if self._flights.get(key) is task:
            del self._flights[key]
        if not task.cancelled():
            # Mark the exception retrieved even if every waiter was cancelled.
            exc = task.exception()
            if exc is not None:
                logger.debug("%s flight %r failed: %r", self._name, key, exc)

    async def aclose(self) -> None:
        tasks = list(self._flights.values())
        self._flights.clear()
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()


async def _run(factory: Callable[[], Awaitable[V]]) -> V:
    return await factory()
