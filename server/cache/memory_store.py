"""In-process TTL cache with an LRU size bound. Always healthy; single event loop, no locks."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence

from trading_gateway.server.cache.base import Cache, CacheCounters, StateCallback

DEFAULT_MAX_ENTRIES = 10_000


class MemoryCache(Cache):
    """A dict of `key -> (expires_at, value)` kept in least-recently-used order.

    Expiry uses a monotonic clock (injectable for tests). An expired entry is dropped when
    it is next read or when it reaches the cold end of the LRU order; when the store is
    full, the least recently used entry goes first (O(1) per write).
    """

    def __init__(
        self,
        *,
        max_entries: int = DEFAULT_MAX_ENTRIES,
        clock: Callable[[], float] = time.monotonic,
        on_state_change: StateCallback | None = None,
    ) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be at least 1")
        self._max_entries = max_entries
        self._clock = clock
        self._entries: OrderedDict[str, tuple[float, bytes]] = OrderedDict()
        self._counters = CacheCounters()
        # Accepted for interface parity with RedisCache; memory never changes health.
        self._on_state_change = on_state_change

    @property
    def backend(self) -> str:
        return "memory"

    @property
    def healthy(self) -> bool:
        return True

    @property
    def counters(self) -> CacheCounters:
        return self._counters

    @property
    def max_entries(self) -> int:
        return self._max_entries

    def __len__(self) -> int:
        """Entries held, including expired ones not yet swept."""
        return len(self._entries)

    async def get(self, key: str) -> bytes | None:
        return self._lookup(key, self._clock())

    async def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        now = self._clock()
        return [self._lookup(key, now) for key in keys]

    async def set(self, key: str, value: bytes, ttl: float) -> None:
        self._store(key, value, ttl, self._clock())

    async def set_many(self, items: Mapping[str, bytes], ttl: float) -> None:
        now = self._clock()
        for key, value in items.items():
            self._store(key, value, ttl, now)

    async def delete(self, key: str) -> None:
        self._entries.pop(key, None)

    async def ping(self, within: float | None = None) -> bool:
        return True

    async def aclose(self) -> None:
        self._entries.clear()

    def _lookup(self, key: str, now: float) -> bytes | None:
        entry = self._entries.get(key)
        if entry is None:
            self._counters.misses += 1
            return None
        expires_at, value = entry
        if expires_at <= now:
            del self._entries[key]
            self._counters.misses += 1
            return None
        self._entries.move_to_end(key)
        self._counters.hits += 1
        return value

    def _store(self, key: str, value: bytes, ttl: float, now: float) -> None:
        if ttl <= 0:
            self._entries.pop(key, None)
            return
        self._entries[key] = (now + ttl, bytes(value))
        self._entries.move_to_end(key)
        if len(self._entries) > self._max_entries:
            self._make_room(now)

    def _make_room(self, now: float) -> None:
        while len(self._entries) > self._max_entries:
            _, (expires_at, _) = self._entries.popitem(last=False)
            if expires_at > now:
                self._counters.evictions += 1
