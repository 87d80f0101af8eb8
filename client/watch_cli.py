"""`trading-gateway watch`: a live-updating table of positions, orders and PnL per account.

On a terminal the screen is redrawn at most every ``--refresh`` seconds, fitted to the
terminal's size (status and totals always show; rows cut with "+N more"); otherwise (or
with ``--plain``) the final table is printed when the watch ends (``--duration``,
``--count`` or Ctrl-C). ``--json`` prints every update as one JSON line instead. The
stream resumes by itself after a disconnect (client/watch.py). Exit codes: client/exit_codes.py.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import sys
import time
from collections.abc import Callable
from typing import TextIO

from google.protobuf import json_format

from trading_gateway.client.board import WatchBoard
from trading_gateway.client.client import TradingClient
from trading_gateway.client.errors import ClientError
from trading_gateway.client.exit_codes import (
    EXIT_CALL_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_PARTIAL,
    EXIT_USAGE,
)
from trading_gateway.client.watch import KIND_NAMES

CLEAR = "\x1b[H\x1b[2J"


def _kinds(text: str) -> list[str]:
    kinds = [part.strip().lower() for part in text.split(",") if part.strip()]
    unknown = [k for k in kinds if k not in KIND_NAMES]
    if unknown:
        raise argparse.ArgumentTypeError(
            f"unknown kind {unknown[0]!r}; use {', '.join(KIND_NAMES)}"
        )
    return kinds


def _seconds(text: str) -> float:
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError("must be a positive number of seconds")
    return value


def add_watch_parser(
    subcommands: argparse._SubParsersAction[argparse.ArgumentParser],
    common: argparse.ArgumentParser,
) -> None:
    sub = subcommands.add_parser(
        "watch", parents=[common], help="live positions, orders and PnL (streams, resumes)"
    )
    sub.add_argument(
        "--kinds",
        type=_kinds,
        default=[],
        metavar="K1,K2",
        help=f"update kinds: {','.join(KIND_NAMES)} (default: all)",
    )
    sub.add_argument("--heartbeat", type=_seconds, help="heartbeat interval in seconds")
    sub.add_argument("--duration", type=_seconds, help="stop after this many seconds")
    sub.add_argument("--count", type=int, help="stop after this many deltas")
    sub.add_argument(
        "--refresh", type=_seconds, default=0.25, help="screen refresh in seconds (default 0.25)"
    )
    sub.add_argument("--plain", action="store_true", help="never redraw the screen")


async def watch(client: TradingClient, args: argparse.Namespace, out: TextIO) -> WatchBoard:
    board = WatchBoard()
    redraw = out.isatty() and not args.plain and not args.json
    deltas = 0
    last_draw = 0.0
    stream = client.watch(args.accounts, args.kinds, heartbeat_interval=args.heartbeat)
    reader_gone = False
    try:
        async with asyncio.timeout(args.duration):
            async for update in stream:
                board.apply(update)
                if args.json:
                    line = json_format.MessageToJson(
                        update, preserving_proto_field_name=True, indent=None
                    )
                    print(line, file=out, flush=True)
                if update.WhichOneof("payload") in (
                    "position",
                    "order",
                    "balance",
                    "pnl",
                    "account",
                ):
                    deltas += 1
                now = time.monotonic()
                if redraw and now - last_draw >= args.refresh:
                    last_draw = now
                    # COLUMNS/LINES when set, else the terminal's size; one line spare
                    # for the cursor, so nothing scrolls.
                    size = shutil.get_terminal_size()
                    out.write(CLEAR + board.render(size.columns, size.lines - 1))
                    out.flush()
                if args.count is not None and deltas >= args.count:
                    break
    except TimeoutError:
        pass
    except BrokenPipeError:
        reader_gone = True  # `| head`: nothing more to say, not even the summary
        raise
    finally:
        await stream.aclose()
        if not reader_gone:
            # What the chain check saw: merged deltas are fine, gaps are not.
            print(f"watch: {stream.stats.summary()}", file=sys.stderr)
    return board


def run_watch(
    args: argparse.Namespace,
    client: TradingClient,
    describe: Callable[[ClientError, str, float], str],
) -> int:
    """Run the watch command; ``describe(error, address, timeout)`` words a failure.

    Exit codes as client/exit_codes.py documents them; an account the stream could not follow
    (shown under the tables) makes it ``EXIT_PARTIAL``.
    """

    async def main() -> WatchBoard:
        async with client:
            return await watch(client, args, sys.stdout)

    try:
        board = asyncio.run(main())
    except ClientError as error:
        print(f"trading-gateway: {describe(error, args.address, args.timeout)}", file=sys.stderr)
        return EXIT_CALL_FAILED
    except ValueError as error:
        print(f"trading-gateway: {error}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    if not args.json:
        print(board.render())
    return EXIT_PARTIAL if board.problems() else EXIT_OK
