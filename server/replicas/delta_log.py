"""The fenced delta log of one login: a Redis Stream of serialized deltas plus a snapshot.

The lease holder appends every delta it publishes, serialized once, under the gateway's
own sequence; every replica tails the stream (``delta_tail.py``) to mirror live state.

Layout: under the login's prefix from the lease module (``LeaseKeys.prefix``,
``tg:<deployment>:login:{<login>}``), whose hash tag puts every key of one login, the
lease included, in one Cluster slot, so one script may touch them together:

- ``<prefix>:deltas``: a Redis Stream. The entry id of the delta with sequence ``n`` is
  ``n-0``, so a position in the stream *is* a gateway sequence and no mapping between the
  two is kept anywhere. Fields: ``e`` (the writer's fencing epoch), ``p`` (the payload).
  Trimmed with ``MAXLEN ~ capacity`` (the replay capacity) on every append.
- ``<prefix>:snapshot``: a hash: ``state`` (serialized live state), ``sequence`` (the last
  delta the state includes), ``epoch`` (its writer's), ``id`` (random, new on every write:
  a follower tells snapshots apart by it even after Redis lost and restarted everything).

Guarantees:

- An append (one delta, or every delta of one upstream frame) is one Lua script, so one
  round trip, and atomic: the writer's epoch is checked against the lease record first
  (``Fenced`` if it is not the holder's), then the first sequence against the last one in
  the stream (``SequenceMismatch`` unless it is exactly one more). Refused: nothing is
  appended. A stale writer can never interleave with the holder.
- The stream's sequences are gap-free and strictly increasing as long as every write goes
  through ``append``. When the stream does not exist (never written, or lost by Redis),
  any first sequence is accepted and ``Appended.new_log`` says so: the holder must then
  write a snapshot, because followers behind it cannot catch up from the stream.
- A snapshot write is fenced the same way and never replaces a snapshot of a later
  sequence (``StaleSnapshot``).
- Every call returns or raises within ``op_timeout`` seconds: a lost or slow Redis is
  ``LogUnavailable``, never a hang. redis-py's own retries are off: the caller decides.

What breaks it: a write to these keys that bypasses ``append``/``write_snapshot`` (for
example a plain XADD, or a stream trimmed to nothing by hand: the next append is then a
new log); an epoch not taken from the writer's own lease acquire; a holder that appends
with a sequence space of its own instead of continuing ``head()`` after taking over.

The fencing check is the lease module's (``fence.py``): each script starts with
``FENCE_LUA``, which compares the writer's epoch with the lease record's.
"""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Final, TypeVar

from redis.asyncio import Redis
from redis.exceptions import RedisError, ResponseError

from trading_gateway.server.replicas.connection import bounded_redis
from trading_gateway.server.replicas.fence import Fenced as Fenced  # raised by appends
from trading_gateway.server.replicas.fence import call_fenced, fenced_script
from trading_gateway.server.replicas.lease import LeaseKeys

T = TypeVar("T")

DEFAULT_OP_TIMEOUT: Final = 1.0

# KEYS[2] the stream; ARGV[2] the first sequence, ARGV[3] the capacity, ARGV[4..] payloads.
# Returns {1, last} when appended to a stream that was not there (a new log), else {0, last}.
_APPEND_LUA: Final = """
local first = tonumber(ARGV[2])
local top = redis.call('XREVRANGE', KEYS[2], '+', '-', 'COUNT', 1)
local new_log = 1
if #top > 0 then
  new_log = 0
  local last = tonumber(string.match(top[1][1], '^(%d+)'))
  if first ~= last + 1 then
    return redis.error_reply('SEQUENCE expected=' .. string.format('%.0f', last + 1))
  end
elseif redis.call('EXISTS', KEYS[2]) == 1 then
  -- An emptied stream keeps its last id: continue only past it.
  local info = redis.call('XINFO', 'STREAM', KEYS[2])
  for i = 1, #info, 2 do
    if info[i] == 'last-generated-id' then
      local last = tonumber(string.match(info[i + 1], '^(%d+)'))
      if first <= last then
        return redis.error_reply('SEQUENCE expected=' .. string.format('%.0f', last + 1))
      end
    end
  end
end
for i = 4, #ARGV do
  local id = string.format('%.0f-0', first + i - 4)
  redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[3], id, 'e', ARGV[1], 'p', ARGV[i])
end
return {new_log, string.format('%.0f', first + #ARGV - 4)}
"""

# KEYS[2] the snapshot hash; ARGV[2] its sequence, ARGV[3] its id, ARGV[4] the state.
_SNAPSHOT_LUA: Final = """
local current = redis.call('HGET', KEYS[2], 'sequence')
if current and tonumber(current) > tonumber(ARGV[2]) then
  return redis.error_reply('STALE current=' .. current)
end
redis.call('HSET', KEYS[2], 'state', ARGV[4], 'sequence', ARGV[2], 'epoch', ARGV[1],
  'id', ARGV[3])
return 1
"""


class DeltaLogError(Exception):
    """Base of the delta log's own typed errors (a refused epoch is ``fence.Fenced``)."""


class SequenceMismatch(DeltaLogError):
    """The first sequence does not follow the stream's last one: nothing was appended."""

    def __init__(self, given: int, expected: int) -> None:
        self.given = given
        self.expected = expected
        super().__init__(f"append of sequence {given} refused: the log expects {expected}")


class StaleSnapshot(DeltaLogError):
    """A snapshot of a later sequence is already stored: this one was not written."""

    def __init__(self, given: int, current: int) -> None:
        self.given = given
        self.current = current
        super().__init__(f"snapshot at sequence {given} refused: one at {current} is stored")


class LogUnavailable(DeltaLogError):
    """Redis could not be reached or did not answer in time; the outcome is unknown."""


@dataclass(frozen=True, slots=True)
class DeltaLogKeys:
    """The Redis keys of one login's log, under the login's lease prefix."""

    lease: str
    deltas: str
    snapshot: str

    @classmethod
    def of(cls, lease_keys: LeaseKeys) -> DeltaLogKeys:
        return cls(
            lease=lease_keys.lease,
            deltas=f"{lease_keys.prefix}:deltas",
            snapshot=f"{lease_keys.prefix}:snapshot",
        )

    @classmethod
    def for_login(cls, deployment: str, login: str) -> DeltaLogKeys:
        """ValueError for a name that would break the hash tag (``LeaseKeys.for_login``)."""
        return cls.of(LeaseKeys.for_login(deployment, login))


@dataclass(frozen=True, slots=True)
class Appended:
    """What an append did: the last sequence now in the log; whether it started the log."""

    last_sequence: int
    new_log: bool


@dataclass(frozen=True, slots=True)
class Snapshot:
    """A replica's starting point: ``state`` includes every delta up to ``sequence``."""

    state: bytes
    sequence: int
    epoch: int
    snapshot_id: str


def stream_id(sequence: int) -> str:
    """The stream entry id of a sequence."""
    return f"{sequence}-0"


def text_of(value: bytes | str | None) -> str:
    """A Redis reply value as text (this module's values are ASCII)."""
    if value is None:
        raise ValueError("a value is missing")
    return value.decode() if isinstance(value, bytes) else value


def sequence_of(entry_id: bytes | str | None) -> int:
    """The gateway sequence an entry id stands for (its first part)."""
    return int(text_of(entry_id).partition("-")[0])


class DeltaLog:
    """One login's delta log: fenced appends and snapshot writes, head and snapshot reads.

    Use as ``async with DeltaLog(...) as log``; ``aclose`` closes its connections.
    """

    def __init__(
        self,
        url: str,
        keys: DeltaLogKeys,
        *,
        capacity: int,
        op_timeout: float = DEFAULT_OP_TIMEOUT,
    ) -> None:
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self.url = url
        self.keys = keys
        self.capacity = capacity
        self.op_timeout = op_timeout
        self._redis: Redis = bounded_redis(url, timeout=op_timeout, name="trading-gateway-deltalog")
        self._append = fenced_script(self._redis, _APPEND_LUA)
        self._snapshot = fenced_script(self._redis, _SNAPSHOT_LUA)

    async def __aenter__(self) -> DeltaLog:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._redis.aclose()

    # ------------------------------------------------------------------ holder side
    async def append(self, epoch: int, sequence: int, payload: bytes) -> Appended:
        """Append one delta; see ``append_batch``."""
        return await self.append_batch(epoch, sequence, (payload,))

    async def append_batch(
        self, epoch: int, first_sequence: int, payloads: Sequence[bytes]
    ) -> Appended:
        """Append ``payloads`` as sequences ``first_sequence``, ``first_sequence + 1``, ...
        in one round trip, all or none. Raises ``Fenced``, ``SequenceMismatch`` or
        ``LogUnavailable`` (then the caller cannot know whether they were appended:
        ``head()`` tells)."""
        if first_sequence < 1:
            raise ValueError("sequences start at 1")
        if not payloads:
            raise ValueError("nothing to append")
        reply = await self._call(
            lambda: call_fenced(
                self._append,
                self.keys.lease,
                epoch,
                [self.keys.deltas],
                [str(first_sequence), str(self.capacity), *payloads],
            ),
            first_sequence,
        )
        match reply:
            case [new_log, bytes() | str() as last]:
                return Appended(last_sequence=int(text_of(last)), new_log=bool(new_log))
        raise DeltaLogError(f"unexpected reply from the append script: {reply!r}")

    async def write_snapshot(self, epoch: int, sequence: int, state: bytes) -> str:
        """Store ``state`` as the state after ``sequence``; returns the snapshot's id.
        Raises ``Fenced``, ``StaleSnapshot`` or ``LogUnavailable``.

        Write one whenever an append reports ``new_log``, and often enough that the log
        (``capacity`` deltas) still holds the delta after the last snapshot: a follower
        can start only from a snapshot that the log continues."""
        if sequence < 0:
            raise ValueError("a snapshot's sequence is 0 or more")
        snapshot_id = secrets.token_hex(8)
        await self._call(
            lambda: call_fenced(
                self._snapshot,
                self.keys.lease,
                epoch,
                [self.keys.snapshot],
                [str(sequence), snapshot_id, state],
            ),
            sequence,
        )
        return snapshot_id

    # ------------------------------------------------------------------ anyone
    async def head(self) -> int | None:
        """The last sequence in the log, or None when the stream does not exist."""
        entries = await self._guard(
            lambda: self._redis.xrevrange(self.keys.deltas, "+", "-", count=1)
        )
        return sequence_of(entries[0][0]) if entries else None

    async def read_snapshot(self) -> Snapshot | None:
        """The stored snapshot, or None when there is none."""
        fields = await self._guard(lambda: self._redis.hgetall(self.keys.snapshot))
        return snapshot_from(fields)

    # ------------------------------------------------------------------ plumbing
    async def _call(self, run: Callable[[], Awaitable[T]], given: int) -> T:
        try:
            return await self._guard(run)
        except ResponseError as error:
            raise refusal(str(error), given) from None

    async def _guard(self, run: Callable[[], Awaitable[T]]) -> T:
        try:
            return await run()
        except ResponseError:
            raise
        except (RedisError, OSError, TimeoutError) as error:
            raise LogUnavailable(f"redis did not answer: {error}") from error


def refusal(text: str, given: int) -> DeltaLogError | ResponseError:
    """The typed error a script's error reply stands for (any other reply: unchanged)."""
    kind, _, rest = text.partition(" ")
    try:
        if kind == "SEQUENCE":
            return SequenceMismatch(given, int(rest.partition("expected=")[2]))
        if kind == "STALE":
            return StaleSnapshot(given, int(rest.partition("current=")[2]))
    except ValueError:
        pass
    return ResponseError(text)


def snapshot_from(fields: Mapping[bytes | str, bytes | str]) -> Snapshot | None:
    """A stored snapshot hash as a ``Snapshot`` (None if it is missing or incomplete)."""
    try:
        state = fields[b"state"]
        return Snapshot(
            state=state if isinstance(state, bytes) else state.encode(),
            sequence=int(text_of(fields[b"sequence"])),
            epoch=int(text_of(fields[b"epoch"])),
            snapshot_id=text_of(fields[b"id"]),
        )
    except (KeyError, ValueError):
        return None
