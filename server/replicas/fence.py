"""The fencing check: a Redis write is refused unless its epoch is the lease holder's.

A lease alone cannot stop a holder that was paused past its TTL (GC, SIGSTOP, a slow disk)
from waking up and writing: it still believes it holds the lease. Every holder therefore
carries the fencing epoch it got when it acquired the lease (`lease.py`), and every write
that only the holder may make runs inside a Lua script that first compares that epoch with
the one stored in the lease record. Redis runs a script atomically, so the check and the
write cannot be separated by a takeover.

Contract (what other modules, e.g. ``delta_log.py``, rely on):

- ``FENCE_LUA`` is a Lua prelude to put at the very start of a script. It reads
  ``KEYS[1]`` = the login's lease key (``LeaseKeys.lease``) and ``ARGV[1]`` = the writer's
  epoch as a decimal string. If the lease is gone, or its ``epoch`` field differs, the
  script ends with the error reply ``FENCED <epoch> current=<epoch or none>`` before any
  write. The caller's own keys and arguments therefore start at ``KEYS[2]`` / ``ARGV[2]``.
- ``fenced_script(redis, body)`` registers ``FENCE_LUA + body``; ``call_fenced(script,
  lease_key, epoch, keys, args)`` runs it and turns the refusal into ``Fenced`` (typed), so
  no caller parses error strings.
- A script's other keys must hash to the same Redis Cluster slot as the lease key: keep
  them under the same ``LeaseKeys.prefix`` (whose ``{login}`` part is the hash tag).

What breaks it: a write to holder-only keys that does not go through a fenced script; an
epoch taken from anywhere but the writer's own acquire.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from redis.asyncio import Redis
from redis.commands.core import AsyncScript
from redis.exceptions import ResponseError

FENCE_ERROR_PREFIX: Final = "FENCED"

FENCE_LUA: Final = """
local fence_current = redis.call('HGET', KEYS[1], 'epoch')
if fence_current ~= ARGV[1] then
  return redis.error_reply('FENCED ' .. ARGV[1] .. ' current=' .. (fence_current or 'none'))
end
"""


class Fenced(Exception):
    """A write carried an epoch that is not the current lease holder's: it was refused."""

    def __init__(self, epoch: int, current: int | None) -> None:
        self.epoch = epoch
        self.current = current
        holder = "no holder" if current is None else f"the holder's epoch is {current}"
        super().__init__(f"write with fencing epoch {epoch} refused: {holder}")


def fenced_from_error(error: ResponseError) -> Fenced | None:
    """The `Fenced` a script's refusal stands for, or None for any other Redis error."""
    text = str(error)
    if not text.startswith(FENCE_ERROR_PREFIX + " "):
        return None
    parts = text.split()
    try:
        epoch = int(parts[1])
        current_text = parts[2].removeprefix("current=")
    except (IndexError, ValueError):
        return None
    current = None if current_text == "none" else int(current_text)
    return Fenced(epoch, current)


def fenced_script(redis: Redis, body: str) -> AsyncScript:
    """Register ``FENCE_LUA`` followed by ``body``: the body runs only for the holder."""
    return redis.register_script(FENCE_LUA + body)


async def call_fenced(
    script: AsyncScript,
    lease_key: str,
    epoch: int,
    keys: Sequence[str] = (),
    args: Sequence[str | int | bytes] = (),
) -> object:
    """Run a fenced script for the writer holding ``epoch``; raise `Fenced` if refused.

    ``keys``/``args`` are the body's own, seen by the script from ``KEYS[2]``/``ARGV[2]``.
    Other Redis errors (connection, timeout) propagate unchanged.
    """
    try:
        return await script(keys=[lease_key, *keys], args=[str(epoch), *args])
    except ResponseError as error:
        fenced = fenced_from_error(error)
        if fenced is None:
            raise
        raise fenced from None
