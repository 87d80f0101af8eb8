"""The shared Tradovate token in Redis: written by a login's holder, read by every replica.

One hash per login at ``{prefix}login:{<name>}:token`` (the prefix is ``tg:<deployment>:``;
the braces are a Redis Cluster hash tag, so the key sits in the same slot as the login's
lease and delta stream, lease.py) with two fields: ``sealed`` (the token, its login and the
writer's fencing epoch, sealed by token_seal.py) and ``epoch`` (the same epoch in the
clear, for the write check below).

Guarantees:
- ``write`` is one Lua script: it refuses a writer whose epoch is lower than the stored one
  (``StaleHolder``: a newer holder took the login over), else stores the value and sets the
  key to expire when the token does. A dead token is never served from Redis: an expired
  token is not written, and the key vanishes with the token it holds.
- With ``fenced=True`` the write script starts with the lease's fence (fence.py): a writer
  whose epoch is not the one in the login's lease record is refused (``StaleHolder``)
  before anything is written, even before a newer holder has written a token.
- ``read`` returns ``Published`` (token + epoch) only for a value that authenticates for
  that login (token_seal.py) and whose clear epoch matches the sealed one; otherwise
  ``TokenUnreadable``. No key: None.
- Every Redis call is bounded by ``timeout`` (and the caller's deadline): a lost, failing or
  slow Redis raises ``TokenStoreUnavailable``, never hangs, never returns a guess.

What breaks it: clocks. The key's TTL is the token's expiry minus the writer's clock; a
writer whose clock runs behind leaves the key up to that skew after expiry (a reader still
checks ``expires_at`` itself). A holder reusing an epoch that is not its own (the lease's
job, lease.py) defeats the stale-writer check. The store does not own the Redis client:
whoever made it closes it.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any, Final, TypeVar

from redis.asyncio import Redis
from redis.exceptions import RedisError

from trading_gateway.server.broker.token_source import SharedToken
from trading_gateway.server.deadline import Deadline
from trading_gateway.server.replicas.fence import Fenced, call_fenced, fenced_script
from trading_gateway.server.replicas.lease import LeaseKeys
from trading_gateway.server.replicas.token_errors import (
    StaleHolder,
    TokenStoreUnavailable,
    TokenUnreadable,
)
from trading_gateway.server.replicas.token_seal import Published, TokenSealer

if TYPE_CHECKING:
    from trading_gateway.server.config import GatewaySettings

T = TypeVar("T")

DEFAULT_PREFIX: Final = "tg:"
DEFAULT_TIMEOUT: Final = 0.25

# KEYS[#KEYS] the login's token key (the last key: fenced, KEYS[1] is the lease key that
# FENCE_LUA, prepended by fence.fenced_script, checks ARGV[1] against); ARGV: epoch,
# sealed value, time to live (ms). Returns {1} when written, {0, stored epoch} when a
# newer holder wrote already.
_WRITE: Final = """
local token = KEYS[#KEYS]
local stored = redis.call('HGET', token, 'epoch')
if stored and tonumber(stored) > tonumber(ARGV[1]) then
  return {0, tonumber(stored)}
end
redis.call('HSET', token, 'epoch', ARGV[1], 'sealed', ARGV[2])
redis.call('PEXPIRE', token, ARGV[3])
return {1}
"""

# KEYS[1] the login's token key; ARGV[1] the epoch that wrote it. Deletes only its own.
_CLEAR: Final = """
if redis.call('HGET', KEYS[1], 'epoch') == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


class TokenStore:
    """Per-login shared tokens in one Redis (the caller owns and closes ``redis``)."""

    def __init__(
        self,
        redis: Redis,
        sealer: TokenSealer,
        *,
        prefix: str = DEFAULT_PREFIX,
        timeout: float = DEFAULT_TIMEOUT,
        fenced: bool = False,
    ) -> None:
        """``fenced``: a write is refused (``StaleHolder``) unless the writer's epoch is the
        one in the login's lease record (``lease_key``, fence.py), not only at least the
        stored token's: a holder whose lease lapsed cannot publish even before a newer
        holder has. Use it wherever the lease runs (the replicas wiring does)."""
        self._redis = redis
        self._sealer = sealer
        self._prefix = prefix
        self._timeout = timeout
        self._write = redis.register_script(_WRITE)
        self._fenced_write = fenced_script(redis, _WRITE) if fenced else None
        self._clear = redis.register_script(_CLEAR)

    @classmethod
    def from_settings(
        cls, redis: Redis, settings: GatewaySettings, deployment: str, *, fenced: bool = False
    ) -> TokenStore:
        """The store the settings describe (``TokenKeyMissing`` without a key or plaintext)."""
        return cls(
            redis,
            TokenSealer.from_settings(settings),
            prefix=f"tg:{deployment}:",
            timeout=settings.token_store_timeout_ms / 1000,
            fenced=fenced,
        )

    def _keys(self, login: str) -> LeaseKeys:
        return LeaseKeys(f"{self._prefix}login:{{{login}}}")

    def key(self, login: str) -> str:
        return f"{self._keys(login).prefix}:token"

    def lease_key(self, login: str) -> str:
        """The login's lease record (lease.py ``LeaseKeys.lease`` for the same prefix)."""
        return self._keys(login).lease

    async def write(self, login: str, token: SharedToken, epoch: int) -> bool:
        """Publish ``token`` for ``login`` as the holder with ``epoch``.

        True when written; False when the token has already expired (nothing written);
        ``StaleHolder`` when a holder with a higher epoch wrote this login's token.
        """
        ttl_ms = math.floor(token.left() * 1000)
        if ttl_ms <= 0:
            return False
        sealed = self._sealer.seal(login, token, epoch)
        what = f"writing the shared token of login {login!r}"
        if self._fenced_write is not None:
            try:
                result: Any = await self._bounded(
                    call_fenced(
                        self._fenced_write,
                        self.lease_key(login),
                        epoch,
                        keys=[self.key(login)],
                        args=[sealed, ttl_ms],
                    ),
                    what,
                    None,
                )
            except Fenced as fenced:
                raise StaleHolder(
                    f"login {login!r}'s lease is no longer held with epoch {epoch} "
                    f"({fenced}): this replica must not publish its token",
                    epoch=epoch,
                    stored_epoch=fenced.current or 0,
                ) from None
        else:
            result = await self._bounded(
                self._write(keys=[self.key(login)], args=[epoch, sealed, ttl_ms]), what, None
            )
        if int(result[0]) == 1:
            return True
        stored = int(result[1])
        raise StaleHolder(
            f"login {login!r}'s token was written by a newer holder (epoch {stored}, this "
            f"one has {epoch}): this replica no longer holds the login and must not publish",
            epoch=epoch,
            stored_epoch=stored,
        )

    async def read(self, login: str, deadline: Deadline | None = None) -> Published | None:
        """The token published for ``login``, None if none is; see the module's guarantees."""
        fields: dict[bytes, bytes] = await self._bounded(
            self._redis.hgetall(self.key(login)),  # type: ignore[arg-type]
            f"reading the shared token of login {login!r}",
            deadline,
        )
        if not fields:
            return None
        sealed, epoch_text = fields.get(b"sealed"), fields.get(b"epoch")
        if sealed is None or epoch_text is None:
            raise TokenUnreadable(f"the shared token of login {login!r} is incomplete in Redis")
        published = self._sealer.open(login, sealed)
        if epoch_text != str(published.epoch).encode():
            raise TokenUnreadable(
                f"the shared token of login {login!r} has an epoch in the clear that differs "
                "from the sealed one: it was altered; it is not used"
            )
        return published

    async def clear(self, login: str, epoch: int) -> bool:
        """Remove ``login``'s token if the holder with ``epoch`` wrote it (e.g. it died)."""
        removed = await self._bounded(
            self._clear(keys=[self.key(login)], args=[epoch]),
            f"clearing the shared token of login {login!r}",
            None,
        )
        return int(removed) == 1

    async def ttl(self, login: str) -> float | None:
        """Seconds until ``login``'s key expires; None when there is no key."""
        ms = await self._bounded(
            self._redis.pttl(self.key(login)), f"reading the TTL of login {login!r}", None
        )
        return None if int(ms) < 0 else int(ms) / 1000

    async def _bounded(self, call: Awaitable[T], what: str, deadline: Deadline | None) -> T:
        limit = self._timeout
        if deadline is not None:
            limit = max(0.0, min(limit, deadline.remaining()))
        try:
            async with asyncio.timeout(limit):
                return await call
        except TimeoutError:
            raise TokenStoreUnavailable(
                f"Redis did not answer within {limit * 1000:.0f} ms {what}"
            ) from None
        except (RedisError, OSError) as exc:
            raise TokenStoreUnavailable(
                f"Redis failed {what}: {type(exc).__name__}: {exc}"
            ) from None
