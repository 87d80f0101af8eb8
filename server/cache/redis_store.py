"""Redis-backed `Cache` (redis.asyncio + hiredis) with a circuit breaker.

Redis trouble never becomes a failed request: a failed or slow read answers as a miss, a
failed write is dropped. After `failure_threshold` consecutive failures the circuit opens:
`healthy` turns False, the outage is logged once, `on_state_change(False)` fires, and every
call skips Redis (no request pays a timeout) while a background probe PINGs Redis at a
growing interval (`backoff_initial` doubling up to `backoff_max`). The first successful
probe closes the circuit, logs the recovery and fires `on_state_change(True)`.
PINGs (`ping`, `check`, the probe) run on a connection of their own bounded by
`ping_timeout`, not by `op_timeout`: they are on no request's path.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Final, TypeVar
from urllib.parse import urlsplit

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from trading_gateway.server.cache.base import Cache, CacheCounters, StateCallback

logger = logging.getLogger(__name__)

T = TypeVar("T")

DEFAULT_OP_TIMEOUT: Final = 0.2
DEFAULT_FAILURE_THRESHOLD: Final = 2
DEFAULT_BACKOFF_INITIAL: Final = 0.5
DEFAULT_BACKOFF_MAX: Final = 5.0
DEFAULT_MAX_CONNECTIONS: Final = 64
# How long a health PING may take. PINGs are on no request's path, so they wait longer
# than a read: a Redis (or an event loop) briefly slower than op_timeout is not "down".
DEFAULT_PING_TIMEOUT: Final = 1.0
# The part of op_timeout spent waiting for Redis; the rest is headroom for the caller.
WAIT_SHARE: Final = 0.8


class _Failed:
    """Marker for an operation that did not reach Redis or did not succeed."""


_FAILED: Final = _Failed()


def redact_url(url: str) -> str:
    """`scheme://host:port/db` with any username and password left out (safe to log)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}{parts.path}"


class RedisCache(Cache):
    """A `Cache` on Redis: GET/MGET reads, SET PX writes (pipelined for `set_many`).

    Every call returns within `op_timeout` seconds: the wait for Redis (connection from
    the pool, connect, command) gets `WAIT_SHARE` of it, so a caller that guards the call
    with its own timeout of `op_timeout` still gets a miss rather than a cancellation.
    redis-py's own retries are off: the circuit breaker decides what happens after a
    failure, not a retry loop inside a request.

    Do not guard calls with a timeout shorter than `op_timeout`: a cancelled call is the
    caller's decision, not a Redis failure, so the breaker would never see a slow Redis
    and every request would keep paying the caller's timeout.
    """

    def __init__(
        self,
        url: str,
        *,
        op_timeout: float = DEFAULT_OP_TIMEOUT,
        failure_threshold: int = DEFAULT_FAILURE_THRESHOLD,
        backoff_initial: float = DEFAULT_BACKOFF_INITIAL,
        backoff_max: float = DEFAULT_BACKOFF_MAX,
        max_connections: int = DEFAULT_MAX_CONNECTIONS,
        ping_timeout: float = DEFAULT_PING_TIMEOUT,
        on_state_change: StateCallback | None = None,
    ) -> None:
        if op_timeout <= 0 or ping_timeout <= 0:
            raise ValueError("op_timeout and ping_timeout must be positive")
        if failure_threshold < 1:
            raise ValueError("failure_threshold must be at least 1")
        if not 0 < backoff_initial <= backoff_max:
            raise ValueError("need 0 < backoff_initial <= backoff_max")
        self._where = redact_url(url)
        self._op_timeout = op_timeout
        self._wait = op_timeout * WAIT_SHARE
        self._failure_threshold = failure_threshold
        self._backoff_initial = backoff_initial
        self._backoff_max = backoff_max
        self._on_state_change = on_state_change
        pool = BlockingConnectionPool.from_url(
            url,
            max_connections=max_connections,
            timeout=self._wait,
            socket_timeout=self._wait,
            socket_connect_timeout=self._wait,
            retry=Retry(NoBackoff(), 0),
            client_name="trading-gateway",
        )
        self._redis: Redis = Redis.from_pool(pool)
        # PINGs (health, recovery probes) use a connection of their own, with their own
        # socket timeouts, so they neither wait for a pool slot nor time out at 80% of
        # op_timeout.
        self._ping_timeout = ping_timeout
        self._pinger: Redis = Redis.from_url(
            url,
            max_connections=2,
            socket_timeout=ping_timeout,
            socket_connect_timeout=ping_timeout,
            retry=Retry(NoBackoff(), 0),
            client_name="trading-gateway-ping",
        )
        self._counters = CacheCounters()
        self._healthy = True
        self._closed = False
        self._consecutive_failures = 0
        self._outage_started = 0.0
        self._probe_task: asyncio.Task[None] | None = None

    # ------------------------------------------------------------------ properties

    @property
    def backend(self) -> str:
        return "redis"

    @property
    def healthy(self) -> bool:
        return self._healthy and not self._closed

    @property
    def counters(self) -> CacheCounters:
        return self._counters

    @property
    def op_timeout(self) -> float:
        """The longest a call takes, in seconds."""
        return self._op_timeout

    @property
    def where(self) -> str:
        """The Redis address without credentials."""
        return self._where

    # ------------------------------------------------------------------ operations

    async def get(self, key: str) -> bytes | None:
        result = await self._run(lambda: self._redis.get(key))
        if isinstance(result, _Failed) or result is None:
            self._counters.misses += 1
            return None
        self._counters.hits += 1
        return _as_bytes(result)

    async def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        if not keys:
            return []
        result = await self._run(lambda: self._redis.mget(list(keys)))
        if isinstance(result, _Failed):
            self._counters.misses += len(keys)
            return [None] * len(keys)
        values: list[bytes | None] = [None if v is None else _as_bytes(v) for v in result]
        found = sum(v is not None for v in values)
        self._counters.hits += found
        self._counters.misses += len(values) - found
        return values

    async def set(self, key: str, value: bytes, ttl: float) -> None:
        if ttl <= 0:
            await self.delete(key)
            return
        await self._run(lambda: self._redis.set(key, value, px=_ttl_ms(ttl)))

    async def set_many(self, items: Mapping[str, bytes], ttl: float) -> None:
        if not items:
            return
        if ttl <= 0:
            await self._run(lambda: self._redis.delete(*items.keys()))
            return
        px = _ttl_ms(ttl)

        async def write() -> None:
            async with self._redis.pipeline(transaction=False) as pipe:
                for key, value in items.items():
                    pipe.set(key, value, px=px)
                await pipe.execute()

        await self._run(write)

    async def delete(self, key: str) -> None:
        await self._run(lambda: self._redis.delete(key))

    async def ping(self, within: float | None = None) -> bool:
        """PING now. Opens the circuit at once on failure; closes it on success."""
        return await self.check(within) is None

    async def check(self, within: float | None = None, *, announce: bool = True) -> str | None:
        """PING now (within `within` seconds, default `ping_timeout`); None, or why it failed.

        Success closes an open circuit; failure opens it at once, logging the outage
        unless `announce` is False (a caller that reports the result itself).
        """
        if self._closed:
            return "the cache is closed"
        failure = await self._probe_once(within)
        if failure is None:
            if not self._healthy:
                self._close_circuit()
            self._consecutive_failures = 0
            return None
        self._counters.errors += 1
        if self._healthy:
            self._open_circuit(f"PING failed: {failure}", announce=announce)
        return failure

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        task, self._probe_task = self._probe_task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        await self._redis.aclose()
        await self._pinger.aclose()

    # ------------------------------------------------------------------ circuit breaker

    async def _run(self, op: Callable[[], Awaitable[T]]) -> T | _Failed:
        """Run one Redis operation within the time budget; never raises except on cancel."""
        if self._closed or not self._healthy:
            self._counters.skipped += 1
            return _FAILED
        try:
            async with asyncio.timeout(self._wait):
                result = await op()
        except Exception as exc:  # any failure is a miss or a dropped write, never an error
            self._record_failure(exc)
            return _FAILED
        self._consecutive_failures = 0
        return result

    def _record_failure(self, exc: Exception) -> None:
        self._counters.errors += 1
        self._consecutive_failures += 1
        reason = _describe(exc)
        logger.debug("redis cache operation failed: %s", reason)
        if self._healthy and self._consecutive_failures >= self._failure_threshold:
            self._open_circuit(reason)

    def _open_circuit(self, reason: str, *, announce: bool = True) -> None:
        self._healthy = False
        self._outage_started = time.monotonic()
        if announce:
            logger.warning(
                "Redis cache at %s unavailable (%s): serving misses and dropping writes; "
                "probing every %.1f-%.1f s",
                self._where,
                reason,
                self._backoff_initial,
                self._backoff_max,
            )
        self._notify(False)
        if (self._probe_task is None or self._probe_task.done()) and not self._closed:
            self._probe_task = asyncio.get_running_loop().create_task(
                self._probe_until_healthy(), name="redis-cache-probe"
            )

    def _close_circuit(self) -> None:
        self._healthy = True
        self._consecutive_failures = 0
        logger.info(
            "Redis cache at %s recovered after %.1f s (%d errors, %d calls skipped so far)",
            self._where,
            time.monotonic() - self._outage_started,
            self._counters.errors,
            self._counters.skipped,
        )
        self._notify(True)

    async def _probe_until_healthy(self) -> None:
        delay = self._backoff_initial
        try:
            # Connections from before the outage are dead or suspect: start afresh.
            await self._redis.connection_pool.disconnect()
        except Exception as exc:  # best effort; the probes below decide
            logger.debug("redis pool disconnect failed: %s", _describe(exc))
        try:
            while not self._closed and not self._healthy:  # ping() may have closed it
                await asyncio.sleep(delay)
                if await self._probe_once() is None:
                    if not self._closed and not self._healthy:
                        self._close_circuit()
                    return
                delay = min(delay * 2, self._backoff_max)
        finally:
            if self._probe_task is asyncio.current_task():
                self._probe_task = None

    async def _probe_once(self, within: float | None = None) -> str | None:
        """PING within `within` seconds (default `ping_timeout`): None, or why it failed."""
        try:
            async with asyncio.timeout(self._ping_timeout if within is None else within):
                await self._pinger.ping()
        except Exception as exc:  # a failed probe is the expected outcome during an outage
            reason = _describe(exc)
            logger.debug("redis cache probe failed: %s", reason)
            return reason
        return None

    def _notify(self, healthy: bool) -> None:
        if self._on_state_change is None:
            return
        try:
            self._on_state_change(healthy)
        except Exception:
            logger.exception("cache state-change callback failed")


def _as_bytes(value: bytes | str) -> bytes:
    # The client never decodes responses, so values are bytes; the union is redis-py's typing.
    return value.encode() if isinstance(value, str) else value


def _ttl_ms(ttl: float) -> int:
    return max(1, round(ttl * 1000))


def _describe(exc: BaseException) -> str:
    text = str(exc)
    name = type(exc).__name__
    return f"{name}: {text}" if text else name
