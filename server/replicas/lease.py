"""LoginLease: which replica holds one login's Tradovate session, with a fencing epoch.

Keys (one login; ``LeaseKeys.for_login(deployment, login)``, or any prefix you pass):

- ``tg:<deployment>:login:{<login>}`` is the login's prefix. ``{<login>}`` is a Redis Cluster
  hash tag, so every key of one login lands in one slot and one Lua script may touch them
  all. Other per-login keys (the delta stream, the snapshot, the shared token) belong under
  the same prefix, e.g. ``<prefix>:deltas``. (h-deltalog's ``DeltaLogKeys.for_login(login,
  prefix=f"tg:{deployment}:login")`` yields exactly these names, its lease key included.)
- ``<prefix>:lease``: a HASH ``{holder, epoch, ttl_ms}`` with a PEXPIRE of ``ttl_ms``.
  ``holder`` is the replica's id, ``epoch`` the fencing epoch of this term, ``ttl_ms`` the
  duration the holder last set: the lease's own recorded duration.
- ``<prefix>:epoch``: the epoch counter, a STRING integer that never expires and only
  grows. Each acquire takes ``max(INCR, Redis's clock in ms)``, so an epoch handed out
  after Redis lost its data, or restored an older copy of the counter, is still above
  every epoch handed out before.

Guarantees:

- ``try_acquire`` is one Lua script: if the lease is free (or already this holder's) it
  takes a new epoch and writes the record with its TTL, otherwise it changes nothing. At
  most one holder id is in the record at any moment.
- Restart quarantine: a Redis that restarted has forgotten the record while the old
  holder may still trust its term for up to one TTL. So the script grants nothing while
  Redis's ``uptime_in_seconds`` (INFO, read inside the script; whole seconds) is under the
  TTL rounded up plus one second. A new deployment waits that long for its first holder
  only if Redis itself just started. (The Redis user needs INFO permission.)
- ``renew`` is a Lua compare-and-pexpire: it extends the record only while holder *and*
  epoch are still ours. The holder counts its lease valid until ``sent + ttl - drift``,
  where ``sent`` is the local monotonic time just before the renewal was sent (Redis set the
  expiry later than that, so the local view ends first) and ``ttl`` is the duration the
  script reports from the record, never a local guess. A renewal that fails, times out,
  finds the record gone or someone else's, or is attempted after that deadline (the process
  was paused) ends the term at once: ``LeaseTerm.held`` turns False, ``LeaseTerm.lost`` is
  set and ``on_lost`` is called, so the owner stops acting.
- ``release`` is a Lua compare-and-delete: it removes the record only if it is still this
  term's. The term ends locally first, so a release that is cancelled or cannot reach Redis
  still leaves nobody acting; the record then lapses within its TTL.
- Every Redis call is bounded by ``op_timeout`` (and a renewal also by what is left of
  the term): a lost or slow Redis is `LeaseUnavailable` or a lost term, never a hang.
- Writes only the holder may make go through a fenced script (``fence.py``): a holder that
  wakes up after its lease lapsed is refused even before its own renewal notices. Actions
  outside Redis that only the holder may take (Tradovate cannot check our epoch) call
  ``confirm()`` first: one fenced round trip that returns the term or raises ``Fenced``.

What breaks it: two replicas sharing one holder id (ids must be unique per process);
replicas configured with different TTLs (the quarantine uses the acquirer's own); a host
clock that stops during a machine suspend (CLOCK_MONOTONIC does not advance then); a Redis
whose clock jumps backwards across a data loss (the epoch); a failover to a Redis replica
that missed the latest writes (its uptime is long, so there is no quarantine: use one
primary, or WAIT); writes to holder-only keys that skip the fence. Failover timing lives
in ``lease_keeper.py``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

from redis.asyncio import Redis
from redis.exceptions import RedisError

from trading_gateway.server.logins.spec import NAME_PATTERN
from trading_gateway.server.replicas.fence import (
    FENCE_LUA,
    Fenced,
    call_fenced,
    fenced_script,
)

__all__ = [
    "FENCE_LUA",
    "Fenced",
    "LeaseKeys",
    "LeaseRecord",
    "LeaseTerm",
    "LeaseUnavailable",
    "LoginLease",
    "NotHeld",
    "call_fenced",
    "fenced_script",
]

logger = logging.getLogger(__name__)

# Clock drift allowance between this host and Redis (as in Redlock): 1% of the TTL + 2 ms.
DRIFT_FACTOR: Final = 0.01
DRIFT_FLOOR_S: Final = 0.002
DEFAULT_OP_TIMEOUT: Final = 0.5

# KEYS[1] lease, KEYS[2] epoch counter; ARGV[1] holder, ARGV[2] ttl_ms.
# Returns {1, epoch, ttl_ms} when taken, {0, holder, epoch, pttl_ms, ttl_ms} when held by
# another, and {0, '', 0, wait_ms, 0} while Redis has been up for less than one TTL.
_ACQUIRE_LUA: Final = """
local cur = redis.call('HMGET', KEYS[1], 'holder', 'epoch', 'ttl_ms')
if cur[1] and cur[1] ~= ARGV[1] then
  return {0, cur[1], tonumber(cur[2]) or 0, redis.call('PTTL', KEYS[1]), tonumber(cur[3]) or 0}
end
-- uptime_in_seconds is a difference of whole wall-clock seconds: one more makes sure.
local need = math.ceil(tonumber(ARGV[2]) / 1000) + 1
local uptime = tonumber(string.match(redis.call('INFO', 'server'), 'uptime_in_seconds:(%d+)'))
if uptime and uptime < need then
  return {0, '', 0, (need - uptime) * 1000, 0}
end
local now = redis.call('TIME')
local now_ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
local epoch = redis.call('INCR', KEYS[2])
if epoch <= now_ms then
  epoch = now_ms
  redis.call('SET', KEYS[2], string.format('%.0f', epoch))
end
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'holder', ARGV[1], 'epoch', string.format('%.0f', epoch),
  'ttl_ms', ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return {1, epoch, tonumber(ARGV[2])}
"""

# KEYS[1] lease; ARGV[1] holder, ARGV[2] epoch, ARGV[3] ttl_ms. Returns the recorded ttl_ms, or 0.
_RENEW_LUA: Final = """
local cur = redis.call('HMGET', KEYS[1], 'holder', 'epoch')
if cur[1] ~= ARGV[1] or cur[2] ~= ARGV[2] then
  return 0
end
redis.call('HSET', KEYS[1], 'ttl_ms', ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return tonumber(redis.call('HGET', KEYS[1], 'ttl_ms'))
"""

# KEYS[1] lease; ARGV[1] holder, ARGV[2] epoch. Returns 1 if deleted, 0 if not ours.
_RELEASE_LUA: Final = """
local cur = redis.call('HMGET', KEYS[1], 'holder', 'epoch')
if cur[1] == ARGV[1] and cur[2] == ARGV[2] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


@dataclass(frozen=True)
class LeaseKeys:
    """The Redis keys of one login's lease (see the module docstring)."""

    prefix: str

    @classmethod
    def for_login(cls, deployment: str, login: str) -> LeaseKeys:
        """``tg:<deployment>:login:{<login>}``; ValueError for a name that would break it."""
        if not NAME_PATTERN.fullmatch(login):
            raise ValueError(f"login name {login!r} does not match {NAME_PATTERN.pattern}")
        if not deployment or any(c in deployment for c in "{} \t\r\n"):
            # A brace would move the Cluster hash tag off the login.
            raise ValueError(
                f"deployment {deployment!r} must be non-empty, without braces or spaces"
            )
        return cls(f"tg:{deployment}:login:{{{login}}}")

    @staticmethod
    def lease_pattern(deployment: str) -> str:
        """A SCAN pattern for every login's lease key in ``deployment``."""
        return f"tg:{deployment}:login:{{*}}:lease"

    @staticmethod
    def login_of(lease_key: str, deployment: str) -> str | None:
        """The login a lease key of ``deployment`` belongs to (None: not such a key)."""
        head, tail = f"tg:{deployment}:login:{{", "}:lease"
        if not (lease_key.startswith(head) and lease_key.endswith(tail)):
            return None
        login = lease_key[len(head) : -len(tail)]
        return login if NAME_PATTERN.fullmatch(login) else None

    @property
    def lease(self) -> str:
        return f"{self.prefix}:lease"

    @property
    def epoch(self) -> str:
        return f"{self.prefix}:epoch"


@dataclass(frozen=True)
class LeaseRecord:
    """The lease as Redis holds it: who, which epoch, the recorded TTL and what is left.

    ``restarting``: no record, but Redis has been up for less than one TTL, so nobody may
    acquire for ``remaining_ms`` yet (``holder`` is empty).
    """

    holder: str
    epoch: int
    ttl_ms: int
    remaining_ms: int
    restarting: bool = False


class LeaseUnavailable(Exception):
    """Redis could not be reached, answered an error, or was slower than the bound."""

    def __init__(self, what: str, cause: BaseException) -> None:
        self.cause = cause
        detail = str(cause) or type(cause).__name__
        super().__init__(f"lease {what}: Redis unavailable ({type(cause).__name__}: {detail})")


class NotHeld(Exception):
    """This replica holds no live term of the lease (never acquired, lost or released)."""

    def __init__(self, lease_key: str, reason: str | None) -> None:
        self.reason = reason
        why = f": {reason}" if reason else ""
        super().__init__(f"lease {lease_key} is not held by this replica{why}")


LostCallback = Callable[["LeaseTerm"], None]


@dataclass
class LeaseTerm:
    """One holding of the lease: from a successful acquire until lost or released.

    ``epoch`` is the fencing epoch every holder-only write must carry. ``held`` is true only
    while the term has not ended and the local deadline has not passed.
    """

    holder: str
    epoch: int
    ttl_ms: int
    valid_until: float  # time.monotonic() after which the term is no longer trusted
    lost: asyncio.Event = field(default_factory=asyncio.Event)
    ended: asyncio.Event = field(default_factory=asyncio.Event)
    reason: str | None = None

    @property
    def held(self) -> bool:
        return not self.ended.is_set() and time.monotonic() < self.valid_until

    def remaining(self) -> float:
        """Seconds the term is still trusted locally (0 once ended or past its deadline)."""
        if self.ended.is_set():
            return 0.0
        return max(0.0, self.valid_until - time.monotonic())


def _validity(ttl_ms: int) -> float:
    ttl = ttl_ms / 1000.0
    return ttl - (ttl * DRIFT_FACTOR + DRIFT_FLOOR_S)


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class LoginLease:
    """The lease of one login for one replica (``holder``). It does not renew by itself:
    `LeaseKeeper` runs the loop. The Redis client is the caller's (and closed by it); give it
    socket timeouts and no retries (``connection.bounded_redis``).

    ``on_lost(term)`` runs synchronously in the task that noticed the loss, once per term:
    keep it short (set an event, cancel the holder's work), never await Redis from it.
    """

    def __init__(
        self,
        redis: Redis,
        keys: LeaseKeys,
        holder: str,
        *,
        ttl: float,
        op_timeout: float = DEFAULT_OP_TIMEOUT,
        on_lost: LostCallback | None = None,
    ) -> None:
        if not holder:
            raise ValueError("holder id must not be empty")
        if ttl <= 0 or op_timeout <= 0:
            raise ValueError("ttl and op_timeout must be positive")
        if op_timeout >= ttl / 3:
            raise ValueError(
                f"op_timeout ({op_timeout}s) must be under a third of the ttl ({ttl}s), "
                "or a renewal cannot finish well inside the lease"
            )
        self._redis = redis
        self.keys = keys
        self.holder = holder
        self.ttl_ms = round(ttl * 1000)
        self.op_timeout = op_timeout
        self._on_lost = on_lost
        self._acquire = redis.register_script(_ACQUIRE_LUA)
        self._renew = redis.register_script(_RENEW_LUA)
        self._release = redis.register_script(_RELEASE_LUA)
        self._confirm = fenced_script(redis, "return 1")
        self.term: LeaseTerm | None = None
        self.last_seen: LeaseRecord | None = None

    @property
    def held(self) -> bool:
        return self.term is not None and self.term.held

    async def try_acquire(self) -> LeaseTerm | None:
        """Take the lease if it is free: the new term, or None (see ``last_seen``).

        Raises `LeaseUnavailable` if Redis fails or is slower than ``op_timeout``.
        """
        sent = time.monotonic()
        try:
            async with asyncio.timeout(self.op_timeout):
                reply = await self._acquire(
                    keys=[self.keys.lease, self.keys.epoch], args=[self.holder, self.ttl_ms]
                )
        except (RedisError, OSError, TimeoutError) as error:
            raise LeaseUnavailable("acquire", error) from error
        if int(reply[0]) == 1:
            epoch, ttl_ms = int(reply[1]), int(reply[2])
            self._end("superseded by a new term of this holder", lost=False)
            self.term = LeaseTerm(self.holder, epoch, ttl_ms, sent + _validity(ttl_ms))
            self.last_seen = LeaseRecord(self.holder, epoch, ttl_ms, ttl_ms)
            logger.info("lease %s acquired by %s (epoch %d)", self.keys.lease, self.holder, epoch)
            return self.term
        holder = _text(reply[1])
        self.last_seen = LeaseRecord(
            holder, int(reply[2]), int(reply[4]), max(0, int(reply[3])), restarting=not holder
        )
        return None

    async def renew(self) -> bool:
        """Extend the current term. False (and the term lost) if that was not possible."""
        term = self.term
        if term is None or term.ended.is_set():
            return False
        sent = time.monotonic()
        left = term.valid_until - sent
        if left <= 0:
            self._lose(term, f"renewal came {-left * 1000:.0f} ms after the lease ran out")
            return False
        try:
            async with asyncio.timeout(min(self.op_timeout, left)):
                reply = await self._renew(
                    keys=[self.keys.lease], args=[self.holder, term.epoch, self.ttl_ms]
                )
        except (RedisError, OSError, TimeoutError) as error:
            self._lose(term, f"renewal failed: {type(error).__name__}: {error}")
            return False
        ttl_ms = int(reply)
        if ttl_ms <= 0:
            self._lose(term, "the lease record is gone or belongs to another term")
            return False
        if term.ended.is_set():  # released while the renewal was in flight
            return False
        term.ttl_ms = ttl_ms
        term.valid_until = sent + _validity(ttl_ms)
        return True

    async def release(self) -> None:
        """End the term and delete the record if it is still ours (never someone else's).

        The term ends before Redis is asked, so a cancelled or failed release never leaves
        a holder acting; the record then lapses by its TTL. Redis errors are logged, not
        raised: shutdown goes on.
        """
        term = self.term
        if term is None:
            return
        # Even a term already lost may still own the record (a late renewal): deleting it
        # lets a waiter take over now rather than after the TTL.
        self._end("released", lost=False)
        try:
            async with asyncio.timeout(self.op_timeout):
                await self._release(keys=[self.keys.lease], args=[self.holder, term.epoch])
        except (RedisError, OSError, TimeoutError) as error:
            logger.warning(
                "lease %s: release failed (%s); it lapses within %d ms",
                self.keys.lease,
                type(error).__name__,
                term.ttl_ms,
            )

    async def confirm(self) -> LeaseTerm:
        """The current term, once Redis has confirmed its epoch is still the holder's.

        For actions outside Redis that only the holder may take (an order sent to
        Tradovate, which cannot check our epoch): call it just before acting. Raises
        `NotHeld` without a round trip if the term already ended locally, `Fenced` (and the
        term is lost) if Redis holds another epoch, `LeaseUnavailable` if Redis fails.
        """
        term = self.term
        if term is None or not term.held:
            raise NotHeld(self.keys.lease, None if term is None else term.reason or "expired")
        try:
            async with asyncio.timeout(min(self.op_timeout, term.remaining())):
                await call_fenced(self._confirm, self.keys.lease, term.epoch)
        except Fenced:
            self._lose(term, "another epoch holds the lease")
            raise
        except (RedisError, OSError, TimeoutError) as error:
            raise LeaseUnavailable("confirm", error) from error
        return term

    async def current(self) -> LeaseRecord | None:
        """The record in Redis now, or None if nobody holds the lease."""
        try:
            async with asyncio.timeout(self.op_timeout):
                async with self._redis.pipeline(transaction=True) as pipe:
                    pipe.hmget(self.keys.lease, ["holder", "epoch", "ttl_ms"])
                    pipe.pttl(self.keys.lease)
                    fields, pttl = await pipe.execute()
        except (RedisError, OSError, TimeoutError) as error:
            raise LeaseUnavailable("read", error) from error
        holder, epoch, ttl_ms = fields
        if holder is None:
            return None
        return LeaseRecord(_text(holder), int(epoch), int(ttl_ms), max(0, int(pttl)))

    def drop(self, reason: str) -> None:
        """End the current term as lost without asking Redis (the owner cannot go on).

        ``on_lost`` runs as for any loss; the record lapses by its TTL unless released.
        """
        if self.term is not None:
            self._lose(self.term, reason)

    def _lose(self, term: LeaseTerm, reason: str) -> None:
        if term.ended.is_set():
            return
        logger.warning(
            "lease %s lost by %s (epoch %d): %s", self.keys.lease, self.holder, term.epoch, reason
        )
        term.reason = reason
        term.lost.set()
        term.ended.set()
        if self._on_lost is not None:
            try:
                self._on_lost(term)
            except Exception:
                logger.exception("lease %s: on_lost callback failed", self.keys.lease)

    def _end(self, reason: str, *, lost: bool) -> None:
        term = self.term
        if term is None or term.ended.is_set():
            return
        if lost:
            self._lose(term, reason)
            return
        term.reason = reason
        term.ended.set()
