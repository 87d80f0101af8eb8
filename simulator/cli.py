"""`tradovate-sim`: run the simulator as a process until SIGINT or SIGTERM.

On start it prints one JSON line to stdout with the URLs, so scripts can read the ports.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import signal
import sys
from collections.abc import Sequence

from trading_gateway.simulator.app import Simulator
from trading_gateway.simulator.config import (
    DEFAULT_USER_LIMITS,
    PROPS_ARRAY_MODES,
    SYNC_MARGIN_MODES,
    SimConfig,
    default_endpoint_limits,
    numbered_users,
)

logger = logging.getLogger(__name__)


def _user_limit(text: str) -> tuple[int, float]:
    count, sep, window = text.partition("/")
    try:
        if not sep:
            raise ValueError(text)
        return int(count), float(window)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected COUNT/WINDOW_S, got {text!r}") from None


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="tradovate-sim",
        description="A local Tradovate: REST under /v1, the user WebSocket at /v1/websocket, "
        "market data on its own port, and an admin API under /_sim/.",
    )
    net = p.add_argument_group("network")
    net.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    net.add_argument(
        "--port", type=int, default=0, help="REST/user-socket/admin port; 0 = any free"
    )
    net.add_argument("--md-port", type=int, default=0, help="market-data socket port; 0 = any free")
    world = p.add_argument_group("world")
    world.add_argument("--accounts", type=int, default=4, help="number of accounts (default 4)")
    world.add_argument("--seed", type=int, default=1, help="random seed: same seed, same world")
    world.add_argument("--user", default="sim-user", help="login name (default sim-user)")
    world.add_argument("--password", default="sim-pass", help="login password (default sim-pass)")
    world.add_argument(
        "--users",
        type=int,
        default=0,
        help="serve N users, USER-1..USER-N with passwords PASSWORD-1..PASSWORD-N, each with "
        "--accounts accounts (default 0: the one user --user)",
    )
    auth = p.add_argument_group("auth and sockets")
    auth.add_argument(
        "--token-ttl",
        type=float,
        default=4800.0,
        help="token lifetime, seconds (default 4800 = 80 min)",
    )
    auth.add_argument(
        "--max-sessions",
        type=int,
        default=2,
        help="sessions per user before the oldest is revoked (default 2)",
    )
    auth.add_argument(
        "--heartbeat",
        type=float,
        default=2.5,
        help="server h-frame interval, seconds (default 2.5)",
    )
    auth.add_argument(
        "--client-timeout",
        type=float,
        default=10.0,
        help="drop a socket after this long without a [] heartbeat (default 10)",
    )
    auth.add_argument(
        "--authorize-timeout",
        type=float,
        default=10.0,
        help="close a socket not authorized within this time (default 10)",
    )
    activity = p.add_argument_group("market and activity")
    activity.add_argument(
        "--price-interval",
        type=float,
        default=0.5,
        help="seconds between random-walk price steps; 0 freezes prices (default 0.5)",
    )
    activity.add_argument(
        "--activity-rate",
        type=float,
        default=0.0,
        help="random orders/fills/cancels per second (default 0)",
    )
    activity.add_argument(
        "--props-arrays",
        choices=PROPS_ARRAY_MODES,
        default="mixed",
        help="send props entities as single objects, arrays, or a seeded mix (default mixed)",
    )
    activity.add_argument(
        "--sync-margin-snapshots",
        choices=SYNC_MARGIN_MODES,
        default="include",
        help="the sync snapshot's marginSnapshots: the margins, null, or [] (default include)",
    )
    faults = p.add_argument_group("latency, faults and limits")
    faults.add_argument("--latency-ms", type=float, default=0.0, help="added latency per call, ms")
    faults.add_argument(
        "--jitter-ms", type=float, default=0.0, help="added uniform jitter per call, ms"
    )
    faults.add_argument(
        "--error-rate", type=float, default=0.0, help="fraction of calls (except auth) that fail"
    )
    faults.add_argument(
        "--error-status", type=int, default=500, help="status of those failures (default 500)"
    )
    faults.add_argument(
        "--no-endpoint-limits",
        action="store_true",
        help="turn off the documented auth endpoint limits",
    )
    faults.add_argument(
        "--user-limit",
        type=_user_limit,
        action="append",
        metavar="COUNT/WINDOW_S",
        help="user-level limit, repeatable (e.g. 5000/3600); replaces the generous defaults",
    )
    faults.add_argument(
        "--ip-limit",
        type=_user_limit,
        action="append",
        default=[],
        metavar="COUNT/WINDOW_S",
        help="per-IP limit over every user's calls, repeatable (e.g. 20000/3600); none by default",
    )
    p.add_argument("--log-level", default="INFO", help="logging level (default INFO)")
    p.add_argument("--no-uvloop", action="store_true", help="use the default asyncio event loop")
    return p  # fmt: skip


def config_from_args(args: argparse.Namespace) -> SimConfig:
    return SimConfig(
        accounts=args.accounts,
        seed=args.seed,
        user_name=args.user,
        password=args.password,
        token_ttl=args.token_ttl,
        max_sessions=args.max_sessions,
        heartbeat_interval=args.heartbeat,
        client_timeout=args.client_timeout,
        authorize_timeout=args.authorize_timeout,
        price_interval=args.price_interval,
        activity_rate=args.activity_rate,
        props_arrays=args.props_arrays,
        sync_margin_snapshots=args.sync_margin_snapshots,
        latency_ms=args.latency_ms,
        jitter_ms=args.jitter_ms,
        error_rate=args.error_rate,
        error_status=args.error_status,
        endpoint_limits={} if args.no_endpoint_limits else default_endpoint_limits(),
        user_limits=tuple(args.user_limit) if args.user_limit else DEFAULT_USER_LIMITS,
        ip_limits=tuple(args.ip_limit),
        users=numbered_users(args.users, args.accounts, args.user, args.password)
        if args.users > 0
        else (),
    )


async def serve(config: SimConfig, host: str, port: int, md_port: int) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    async with Simulator(config).running(host, port, md_port) as sim:
        ready = {
            "rest_url": sim.rest_url,
            "ws_url": sim.ws_url,
            "md_ws_url": sim.md_ws_url,
            "admin_url": sim.admin_url,
            "user": config.all_users()[0].name,
            "accounts": config.total_accounts,
            "users": [u.name for u in config.all_users()],
        }
        print(json.dumps(ready), flush=True)
        await stop.wait()
        logger.info("stopping")


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(),
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        config = config_from_args(args)
    except ValueError as exc:
        print(f"tradovate-sim: {exc}", file=sys.stderr)
        return 2
    runner = asyncio.run
    if not args.no_uvloop:
        with contextlib.suppress(ImportError):
            import uvloop

            runner = uvloop.run
    runner(serve(config, args.host, args.port, args.md_port))
    return 0


if __name__ == "__main__":
    sys.exit(main())
