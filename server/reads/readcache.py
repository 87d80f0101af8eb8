"""The read path's view of the TTL cache: typed, namespaced, and never a failure.

Values are msgspec msgpack of ``Fetched[record]`` (the broker structs plus as_of), under
``tg:{env}:{user_id}:{kind}:{account_id}``. Any cache trouble (a backend error, a slow
answer, an entry that no longer decodes) reads as a miss or drops the write; the
backend's own ``healthy`` flag is what health reporting shows. No call waits longer
than ``timeout`` (GATEWAY_CACHE_TIMEOUT_MS).

The process also keeps the newest value it wrote or read per (kind, account). It
stands in for the backend while the backend is unhealthy (a Redis outage): an entry
still within its TTL is a hit, so an outage does not turn every read into an upstream
call. ``stale`` hands out entries up to ``stale_window`` past their TTL, for the read
policy to use when upstream is slow or rate-limited.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from typing import Any, Final, Protocol, TypeVar

import msgspec

from trading_gateway.server.broker.schemas import Account
from trading_gateway.server.cache import Cache, cache_key
from trading_gateway.server.reads.records import (
    BalanceData,
    Fetched,
    Kind,
    OrdersData,
    PositionsData,
    now_epoch,
)

logger = logging.getLogger(__name__)

T = TypeVar("T")

ALL_ACCOUNTS: Final = "all"
# Decoded values kept for reuse (one per kind and account).
MAX_DECODED: Final = 16384

_ENCODER: Final = msgspec.msgpack.Encoder()
DECODERS: Final[dict[Kind, msgspec.msgpack.Decoder[Any]]] = {
    Kind.ACCOUNTS: msgspec.msgpack.Decoder(Fetched[list[Account]]),
    Kind.POSITIONS: msgspec.msgpack.Decoder(Fetched[PositionsData]),
    Kind.ORDERS: msgspec.msgpack.Decoder(Fetched[OrdersData]),
    Kind.BALANCES: msgspec.msgpack.Decoder(Fetched[BalanceData]),
}


class CacheObserver(Protocol):
    def cache_lookup(self, kind: str, hits: int, misses: int) -> None: ...

    def cache_served(self, kind: str, result: str, count: int) -> None:
        """Values served from the process's own copies: "local" (backend down), "stale"."""
        ...


class _NoObserver:
    def cache_lookup(self, kind: str, hits: int, misses: int) -> None:
        return None

    def cache_served(self, kind: str, result: str, count: int) -> None:
        return None


def encode(value: Fetched[Any]) -> bytes:
    return _ENCODER.encode(value)


class ReadCache:
    """Typed get/put over a ``Cache`` for one Tradovate environment and user."""

    def __init__(
        self,
        cache: Cache,
        *,
        env: str,
        ttls: Mapping[Kind, float],
        timeout: float,
        observer: CacheObserver | None = None,
        stale_window: float = 0.0,
    ) -> None:
        if stale_window < 0:
            raise ValueError("stale_window must not be negative")
        self.cache = cache
        self._env = env
        self._ttls = dict(ttls)
        self._timeout = timeout
        self._stale_window = stale_window
        # The newest value known per (kind, account), whatever the backend holds: the
        # stand-in during a backend outage and the source of stale answers.
        self._recent: dict[tuple[Kind, int], Fetched[Any]] = {}
        self._observer = observer or _NoObserver()
        self._user_id: int | None = None
        # The last value read per (kind, account), decoded: an unchanged entry (same
        # bytes) gives back the same object, so nothing downstream is rebuilt for it.
        self._decoded: dict[tuple[Kind, int], tuple[bytes, Fetched[Any]]] = {}
        # Keys made so far, per (kind, account): formatting them is most of a hit's cost.
        self._key_memo: dict[tuple[Kind, int | str], str] = {}

    def set_user(self, user_id: int) -> None:
        """Keys are namespaced by user; nothing is read or written before this is known."""
        if user_id != self._user_id:
            self._key_memo.clear()
            self._recent.clear()
        self._user_id = user_id

    @property
    def healthy(self) -> bool:
        return self.cache.healthy

    def _keys(self, kind: Kind, ids: Sequence[int | str]) -> list[str]:
        user_id = self._user_id
        assert user_id is not None
        memo = self._key_memo
        keys: list[str] = []
        for i in ids:
            key = memo.get((kind, i))
            if key is None:
                key = cache_key(self._env, user_id, kind.value, i)
                if len(memo) < MAX_DECODED:
                    memo[(kind, i)] = key
            keys.append(key)
        return keys

    @property
    def stale_window(self) -> float:
        return self._stale_window

    def _remember(self, kind: Kind, account_id: int, value: Fetched[Any]) -> None:
        recent = self._recent
        key = (kind, account_id)
        known = recent.get(key)
        if known is not None and known.as_of > value.as_of:
            return
        if known is None and len(recent) >= MAX_DECODED:
            recent.pop(next(iter(recent)))
        recent[key] = value

    def _local(
        self, kind: Kind, account_ids: Sequence[int], max_age: float
    ) -> dict[int, Fetched[Any]]:
        """This process's newest values no older than `max_age` seconds (by their as_of)."""
        oldest = now_epoch() - max_age
        found: dict[int, Fetched[Any]] = {}
        for account_id in account_ids:
            value = self._recent.get((kind, account_id))
            if value is not None and value.as_of >= oldest:
                found[account_id] = value
        return found

    def stale(self, kind: Kind, account_ids: Sequence[int]) -> dict[int, Fetched[Any]]:
        """Values at most the TTL plus the stale window old, to be served (and counted)
        as stale answers; empty when the window is 0."""
        if self._stale_window <= 0 or not account_ids:
            return {}
        found = self._local(kind, account_ids, self._ttls[kind] + self._stale_window)
        if found:
            self._observer.cache_served(kind.value, "stale", len(found))
        return found

    async def get_many(self, kind: Kind, account_ids: Sequence[int]) -> dict[int, Fetched[Any]]:
        """Hits only; every problem is a miss (or, while the backend is down, a local hit)."""
        if self._user_id is None or not account_ids:
            return {}
        try:
            async with asyncio.timeout(self._timeout):
                values = await self.cache.get_many(self._keys(kind, account_ids))
        except Exception as exc:  # the cache must never fail a read
            logger.debug("cache read of %s failed: %r", kind, exc)
            values = [None] * len(account_ids)
        hits = self._decode_hits(kind, account_ids, values)
        local: dict[int, Fetched[Any]] = {}
        if len(hits) < len(account_ids) and not self.cache.healthy:
            missing = [a for a in account_ids if a not in hits]
            local = self._local(kind, missing, self._ttls[kind])
        misses = len(account_ids) - len(hits) - len(local)
        self._observer.cache_lookup(kind.value, len(hits), misses)
        if local:
            self._observer.cache_served(kind.value, "local", len(local))
            hits.update(local)
        return hits

    def _decode_hits(
        self, kind: Kind, account_ids: Sequence[int], values: Sequence[bytes | None]
    ) -> dict[int, Fetched[Any]]:
        hits: dict[int, Fetched[Any]] = {}
        decoder = DECODERS[kind]
        decoded = self._decoded
        for account_id, raw in zip(account_ids, values, strict=True):
            if raw is None:
                continue
            last = decoded.get((kind, account_id))
            if last is not None and last[0] == raw:
                hits[account_id] = last[1]
                continue
            try:
                value = decoder.decode(raw)
            except (msgspec.DecodeError, msgspec.ValidationError) as exc:
                logger.warning("dropping undecodable %s cache entry: %s", kind, exc)
                continue
            hits[account_id] = value
            decoded[(kind, account_id)] = (raw, value)
            if len(decoded) > MAX_DECODED:
                decoded.pop(next(iter(decoded)))
            self._remember(kind, account_id, value)
        return hits

    async def put_many(self, kind: Kind, entries: Mapping[int, Fetched[Any]]) -> None:
        if self._user_id is None or not entries:
            return
        for account_id, value in entries.items():
            self._remember(kind, account_id, value)
        items = dict(
            zip(self._keys(kind, list(entries)), map(encode, entries.values()), strict=True)
        )
        await self._write(kind, items)

    async def get_accounts(self) -> Fetched[list[Account]] | None:
        if self._user_id is None:
            return None
        key = cache_key(self._env, self._user_id, Kind.ACCOUNTS.value, ALL_ACCOUNTS)
        try:
            async with asyncio.timeout(self._timeout):
                raw = await self.cache.get(key)
        except Exception as exc:
            logger.debug("cache read of the account list failed: %r", exc)
            raw = None
        self._observer.cache_lookup(Kind.ACCOUNTS.value, int(raw is not None), int(raw is None))
        if raw is None:
            return None
        try:
            value: Fetched[list[Account]] = DECODERS[Kind.ACCOUNTS].decode(raw)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            logger.warning("dropping undecodable account-list cache entry: %s", exc)
            return None
        return value

    async def put_accounts(self, value: Fetched[list[Account]]) -> None:
        if self._user_id is None:
            return
        key = cache_key(self._env, self._user_id, Kind.ACCOUNTS.value, ALL_ACCOUNTS)
        await self._write(Kind.ACCOUNTS, {key: encode(value)})

    async def _write(self, kind: Kind, items: dict[str, bytes]) -> None:
        try:
            async with asyncio.timeout(self._timeout):
                await self.cache.set_many(items, self._ttls[kind])
        except Exception as exc:  # a failed write only costs a future miss
            logger.debug("cache write of %s failed: %r", kind, exc)
