"""`trading-gateway replicas holders`: which replica holds each login's Tradovate session.

    trading-gateway replicas holders                  # a table: login, holder, epoch, left
    trading-gateway replicas holders --pid default    # just the holder's pid
    kill -9 $(trading-gateway replicas holders --pid default)   # try a failover

Redis and the deployment come from REDIS_URL and GATEWAY_DEPLOYMENT (or the flags), as
for `serve`. The table fits 80 columns. Exit 0; 1 when Redis cannot be read or, with
``--pid``, nobody holds the login; 2 for a bad setting.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from typing import Final, TextIO

from pydantic import ValidationError
from redis.exceptions import RedisError

from trading_gateway.server.config import load_settings
from trading_gateway.server.replicas.connection import bounded_redis
from trading_gateway.server.replicas.holders import Holder, read_holders
from trading_gateway.server.setting_error import masked_url

PROG: Final = "trading-gateway replicas"
TIMEOUT_S: Final = 3.0
LOGIN_WIDTH: Final = 20
HOLDER_WIDTH: Final = 34
HEADER: Final = ("LOGIN", "HOLDER (host:pid:random)", "EPOCH", "LEFT")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG, description="The replicas of a deployment (GATEWAY_REPLICAS=redis)."
    )
    sub = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    holders = sub.add_parser("holders", help="which replica holds each login's session")
    holders.add_argument("--redis-url", help="the replicas' Redis (default: $REDIS_URL)")
    holders.add_argument(
        "--deployment", help="the deployment's name in the keys (default: $GATEWAY_DEPLOYMENT)"
    )
    holders.add_argument(
        "--pid", metavar="LOGIN", help="print only the pid of LOGIN's holder (for kill)"
    )
    return parser


def _cut(text: str, width: int, keep_end: bool = False) -> str:
    if len(text) <= width:
        return text
    return "…" + text[-(width - 1) :] if keep_end else text[: width - 1] + "…"


def table(holders: Sequence[Holder]) -> list[str]:
    """The lines `holders` prints: a header and one row per login, within 80 columns."""
    rows = [HEADER] + [(h.login, h.replica, str(h.epoch), f"{h.left_s:.1f} s") for h in holders]
    return [
        f"{_cut(login, LOGIN_WIDTH):<{LOGIN_WIDTH}} "
        f"{_cut(replica, HOLDER_WIDTH, keep_end=True):<{HOLDER_WIDTH}} "
        f"{epoch:>14} {left:>8}"
        for login, replica, epoch, left in rows
    ]


def main(argv: Sequence[str], out: TextIO | None = None, err: TextIO | None = None) -> int:
    out = out or sys.stdout
    err = err or sys.stderr
    args = build_parser().parse_args(argv)
    try:
        settings = load_settings(redis_url=args.redis_url, deployment=args.deployment)
    except ValidationError as exc:
        from trading_gateway.server.cli import describe_invalid

        print(f"{PROG}: {describe_invalid(exc)}", file=err)
        return 2
    if not settings.redis_url:
        print(f"{PROG}: REDIS_URL (--redis-url) is unset: name the replicas' Redis", file=err)
        return 2
    where = f"deployment {settings.deployment!r} on {masked_url(settings.redis_url)}"
    try:
        holders = asyncio.run(_read(settings.redis_url, settings.deployment))
    except (RedisError, OSError, TimeoutError) as exc:
        print(f"{PROG}: cannot read {where}: {type(exc).__name__}: {exc}", file=err)
        return 1
    if args.pid is not None:
        held = next((h for h in holders if h.login == args.pid), None)
        if held is None or held.pid is None:
            print(f"{PROG}: nobody holds login {args.pid!r} in {where}", file=err)
            return 1
        print(held.pid, file=out)
        return 0
    if not holders:
        print(f"no login is held in {where}", file=out)
        return 0
    print("\n".join(table(holders)), file=out)
    return 0


async def _read(url: str, deployment: str) -> list[Holder]:
    redis = bounded_redis(url, timeout=TIMEOUT_S, name="trading-gateway-holders")
    try:
        async with asyncio.timeout(TIMEOUT_S * 3):
            return await read_holders(redis, deployment)
    finally:
        await redis.aclose()
