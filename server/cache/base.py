"""The cache seam: the `Cache` protocol every backend implements, and the key builder.

A cache holds opaque bytes (serialized protobuf) under string keys with a TTL in seconds.
It is an optimisation, never a source of failure: backends do not raise on backend
trouble, they report a miss (reads) or drop the write, and say so through `healthy`.
No I/O happens in this module.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Protocol, Self

KEY_PREFIX = "tg"

# Key parts are identifiers: letters, digits and a few separators, never ':' (the key's
# own separator) and never anything that could smuggle a token or a password into a key.
_KEY_PART = re.compile(r"[A-Za-z0-9_.\-]{1,64}")

StateCallback = Callable[[bool], None]
"""Called with the new `healthy` value each time a backend's health changes."""


@dataclass
class CacheCounters:
    """Monotonic counters a backend keeps for metrics. Read them, never reset them."""

    hits: int = 0
    misses: int = 0
    errors: int = 0
    # Calls answered without touching the backend because its circuit was open.
    skipped: int = 0
    # Entries dropped to respect the size bound (memory backend).
    evictions: int = 0


class Cache(Protocol):
    """A TTL key/value store of bytes. Backend trouble reads as a miss, never as an error."""

    @property
    def backend(self) -> str:
        """The backend's name: "memory" or "redis"."""
        ...

    @property
    def healthy(self) -> bool:
        """False while the backend is unreachable (reads miss, writes are dropped)."""
        ...

    @property
    def counters(self) -> CacheCounters:
        """Hits, misses, errors, skipped calls and evictions since start."""
        ...

    async def get(self, key: str) -> bytes | None:
        """The value under `key`, or None when absent, expired or unreadable."""
        ...

    async def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        """One value (or None) per key, in the order of `keys`."""
        ...

    async def set(self, key: str, value: bytes, ttl: float) -> None:
        """Store `value` for `ttl` seconds. A ttl <= 0 stores nothing (and drops any old value)."""
        ...

    async def set_many(self, items: Mapping[str, bytes], ttl: float) -> None:
        """Store every item with the same TTL, in one round trip where the backend allows."""
        ...

    async def delete(self, key: str) -> None:
        """Remove `key` if present."""
        ...

    async def ping(self, within: float | None = None) -> bool:
        """Probe the backend now and return (and record) whether it is healthy.

        `within` bounds the probe, in seconds (None: the backend's own per-call budget).
        """
        ...

    async def aclose(self) -> None:
        """Release connections and background tasks. Safe to call twice."""
        ...

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()


def cache_key(env: str, user_id: int, kind: str, account_id: int | str) -> str:
    """`tg:{env}:{user_id}:{kind}:{account_id}`, e.g. `tg:demo:42:positions:1234567`.

    `env` is the Tradovate environment ("demo"/"live"), `kind` the cached entity
    ("accounts", "positions", "orders", "balances", ...), `account_id` a numeric id or a
    fixed word such as "all". Parts are validated so a key can never carry a secret or
    collide with another key through an embedded ':'.
    """
    if isinstance(user_id, bool) or not isinstance(user_id, int) or user_id < 0:
        raise ValueError(f"user_id must be a non-negative int, got {user_id!r}")
    if isinstance(account_id, bool):
        raise ValueError("account_id must be an int or an identifier string, got a bool")
    parts = {"env": env, "kind": kind, "account_id": str(account_id)}
    for name, part in parts.items():
        if not _KEY_PART.fullmatch(part):
            raise ValueError(f"cache key part {name} must match [A-Za-z0-9_.-]{{1,64}}")
    return f"{KEY_PREFIX}:{env}:{user_id}:{kind}:{account_id}"


def cache_keys(env: str, user_id: int, kind: str, account_ids: Sequence[int | str]) -> list[str]:
    """`cache_key` for each account, in order (the input for `Cache.get_many`)."""
    return [cache_key(env, user_id, kind, account_id) for account_id in account_ids]
