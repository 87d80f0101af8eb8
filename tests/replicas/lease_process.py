"""A replica process for the lease tests: runs a LeaseKeeper and reports on stdout.

python -m tests.replicas.lease_process --url redis://... --prefix P --holder ID --ttl S
    --poll S [--write-interval S]

One JSON object a line, each with ``event`` and ``t`` (time.time()):
``ready``; ``acquired`` (epoch); ``lost`` (epoch, reason); ``write`` (epoch, ok, held) when
``--write-interval`` is set; ``released`` after SIGTERM, then the process exits 0.

The writer stands for work already under way when the process is paused: every interval it
appends ``{holder, epoch}`` to ``<prefix>:writes`` through the fence with the epoch of the
latest term it acquired, held or not, so a stale writer's refusal is visible.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
import time

from redis.asyncio import Redis

from trading_gateway.server.replicas.connection import bounded_redis
from trading_gateway.server.replicas.fence import Fenced, call_fenced, fenced_script
from trading_gateway.server.replicas.lease import LeaseKeys, LeaseTerm, LoginLease
from trading_gateway.server.replicas.lease_keeper import LeaseKeeper

APPEND_LUA = "return redis.call('XADD', KEYS[2], '*', 'holder', ARGV[2], 'epoch', ARGV[1])"


def report(event: str, **fields: object) -> None:
    sys.stdout.write(json.dumps({"event": event, "t": time.time(), **fields}) + "\n")
    sys.stdout.flush()


async def write_forever(
    redis: Redis, keeper: LeaseKeeper, redis_keys: LeaseKeys, holder: str, interval: float
) -> None:
    append = fenced_script(redis, APPEND_LUA)
    while True:
        await asyncio.sleep(interval)
        term = keeper.lease.term
        if term is None:
            continue
        try:
            await call_fenced(
                append, redis_keys.lease, term.epoch, [f"{redis_keys.prefix}:writes"], [holder]
            )
            report("write", epoch=term.epoch, ok=True, held=term.held)
        except Fenced:
            report("write", epoch=term.epoch, ok=False, held=term.held)
        except Exception as error:  # Redis down: not a refusal
            report("write_error", epoch=term.epoch, error=type(error).__name__)


async def main(args: argparse.Namespace) -> None:
    redis = bounded_redis(args.url, timeout=args.op_timeout)
    keys = LeaseKeys(args.prefix)

    def lost(term: LeaseTerm) -> None:
        report("lost", epoch=term.epoch, reason=term.reason)

    lease = LoginLease(
        redis, keys, args.holder, ttl=args.ttl, op_timeout=args.op_timeout, on_lost=lost
    )
    keeper = LeaseKeeper(
        lease,
        poll_interval=args.poll,
        on_acquired=lambda term: report("acquired", epoch=term.epoch),
    )
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    writer: asyncio.Task[None] | None = None
    try:
        async with keeper:
            if args.write_interval > 0:
                writer = asyncio.create_task(
                    write_forever(redis, keeper, keys, args.holder, args.write_interval)
                )
            report("ready")
            await stop.wait()
            if writer is not None:
                writer.cancel()
                await asyncio.gather(writer, return_exceptions=True)
        report("released")
    finally:
        await redis.aclose()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--prefix", required=True)
    parser.add_argument("--holder", required=True)
    parser.add_argument("--ttl", type=float, required=True)
    parser.add_argument("--poll", type=float, required=True)
    parser.add_argument("--op-timeout", type=float, default=0.2)
    parser.add_argument("--write-interval", type=float, default=0.0)
    asyncio.run(main(parser.parse_args()))
