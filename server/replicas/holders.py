"""Who holds each login's lease now, read from Redis (`trading-gateway replicas holders`).

Reads the lease records `lease.py` writes (``LeaseKeys``): for every login of a
deployment, the holder's replica id (``host:pid:random``), the term's fencing epoch and
how long the record has left. Reading changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

from redis.asyncio import Redis

from trading_gateway.server.replicas.lease import LeaseKeys

SCAN_COUNT = 200


@dataclass(frozen=True, slots=True)
class Holder:
    """One login's lease as Redis holds it right now."""

    login: str
    replica: str  # host:pid:random
    epoch: int
    left_s: float

    @property
    def pid(self) -> int | None:
        """The holder's process id (on its host), from its replica id."""
        parts = self.replica.split(":")
        return int(parts[-2]) if len(parts) >= 3 and parts[-2].isdigit() else None


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


async def read_holders(redis: Redis, deployment: str) -> list[Holder]:
    """Every held lease of ``deployment``, by login name."""
    logins: dict[str, str] = {}
    async for key in redis.scan_iter(match=LeaseKeys.lease_pattern(deployment), count=SCAN_COUNT):
        lease_key = _text(key)
        login = LeaseKeys.login_of(lease_key, deployment)
        if login is not None:
            logins[login] = lease_key
    holders = []
    for login in sorted(logins):
        async with redis.pipeline(transaction=True) as pipe:
            pipe.hgetall(logins[login])
            pipe.pttl(logins[login])
            record, pttl = await pipe.execute()
        fields = {_text(k): _text(v) for k, v in record.items()}
        if not fields.get("holder") or int(pttl) < 0:  # lapsed between SCAN and read
            continue
        holders.append(
            Holder(login, fields["holder"], int(fields.get("epoch", "0")), int(pttl) / 1000)
        )
    return holders
