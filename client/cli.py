"""`trading-gateway accounts|positions|orders|pending|balances|snapshot`: read the gateway.

The server's console script hands every subcommand other than serve/demo to `main`.
Results print as aligned tables (or JSON with --json). A failed call prints one
actionable line on stderr and exits 1; bad flags exit 2; a result in which some accounts
answered with an error, or a login could not list its accounts, is printed and exits 3
(client/exit_codes.py). A closed stdout
(`... | head`) ends quietly.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from importlib import metadata
from typing import Final

import grpc
from google.protobuf.message import Message

from trading_gateway.client import render
from trading_gateway.client.channel import TlsConfig
from trading_gateway.client.client import DEFAULT_ADDRESS, TradingClient
from trading_gateway.client.errors import ClientError
from trading_gateway.client.exit_codes import (
    EXIT_CALL_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_PARTIAL,
    EXIT_USAGE,
)
from trading_gateway.client.exit_codes import HELP as EXIT_HELP
from trading_gateway.client.watch_cli import add_watch_parser, run_watch

PROG: Final = "trading-gateway"
ENV_ADDRESS: Final = "TRADING_GATEWAY_ADDRESS"
ENV_API_KEY: Final = "TRADING_GATEWAY_API_KEY"
__all__ = ["EXIT_CALL_FAILED", "EXIT_OK", "EXIT_PARTIAL", "EXIT_USAGE", "main"]

Output = tuple[Message, Callable[[], str]]


@dataclass(frozen=True)
class Command:
    help: str
    run: Callable[[TradingClient, argparse.Namespace], Awaitable[Output]]
    orders: bool = False  # takes --all/--working
    flat: bool = False  # takes --include-flat


async def _accounts(client: TradingClient, args: argparse.Namespace) -> Output:
    response = await client.list_accounts(args.accounts, args.policy, args.include_inactive)
    return response, lambda: render.render_accounts(response)


async def _positions(client: TradingClient, args: argparse.Namespace) -> Output:
    response = await client.get_positions(args.accounts, args.policy, args.include_flat)
    return response, lambda: render.render_positions(response)


async def _orders(client: TradingClient, args: argparse.Namespace) -> Output:
    # --status picks from every order: filled and canceled ones are never working.
    which = args.filter or ("all" if args.status else None)
    response = await client.get_orders(args.accounts, args.policy, which, args.status)
    return response, lambda: render.render_orders(response)


async def _pending(client: TradingClient, args: argparse.Namespace) -> Output:
    response = await client.list_pending_order_ids(args.accounts, args.policy)
    return response, lambda: render.render_pending(response)


async def _balances(client: TradingClient, args: argparse.Namespace) -> Output:
    response = await client.get_balances(args.accounts, args.policy)
    return response, lambda: render.render_balances(response)


async def _snapshot(client: TradingClient, args: argparse.Namespace) -> Output:
    response = await client.get_snapshot(args.accounts, args.policy, args.include_flat, args.filter)
    return response, lambda: render.render_snapshot(response)


COMMANDS: Final[dict[str, Command]] = {
    "accounts": Command("the accounts behind the gateway's login", _accounts),
    "positions": Command("open positions per account", _positions, flat=True),
    "orders": Command("orders per account (working by default)", _orders, orders=True),
    "pending": Command("ids of working orders per account", _pending),
    "balances": Command("cash, net liquidation, PnL and margins, with totals", _balances),
    "snapshot": Command("all of the above in one call", _snapshot, orders=True, flat=True),
}


def _accounts_arg(text: str) -> list[str]:
    """--accounts A,B. A blank entry ("", " ", "A,,B") is refused: it is never "every account"."""
    parts = [part.strip() for part in text.split(",")]
    if not all(parts):
        raise argparse.ArgumentTypeError(
            f"{text!r} has a blank account entry; give account names or ids such as A,B, "
            "or leave out --accounts to select every active account"
        )
    return parts


def _names_arg(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def _positive(text: str) -> float:
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError("must be a positive number of seconds")
    return value


def _common_options() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    conn = common.add_argument_group("connection")
    conn.add_argument(
        "--address",
        default=os.environ.get(ENV_ADDRESS, DEFAULT_ADDRESS),
        help=f"gateway HOST:PORT (default: ${ENV_ADDRESS} or {DEFAULT_ADDRESS})",
    )
    conn.add_argument(
        "--timeout", type=_positive, default=5.0, help="deadline in seconds (default 5)"
    )
    conn.add_argument("--retries", type=int, default=3, help="retries when UNAVAILABLE (default 3)")
    conn.add_argument(
        "--api-key",
        default=os.environ.get(ENV_API_KEY),
        help=f"bearer token; prefer ${ENV_API_KEY} (flags show up in `ps`)",
    )
    conn.add_argument("--tls-ca", help="PEM CA bundle; enables TLS")
    conn.add_argument("--tls-cert", help="client certificate (PEM) for mutual TLS")
    conn.add_argument("--tls-key", help="client private key (PEM) for mutual TLS")
    conn.add_argument("--tls-server-name", help="name to verify in the server certificate")
    what = common.add_argument_group("selection and output")
    what.add_argument(
        "--accounts",
        type=_accounts_arg,
        default=[],
        metavar="A,B",
        help="account names or ids (default: every active account)",
    )
    what.add_argument(
        "--policy",
        choices=("fresh", "cached", "upstream"),
        help="read policy (default: each call's own)",
    )
    what.add_argument("--json", action="store_true", help="print JSON instead of a table")
    return common


def package_version() -> str:
    try:
        return metadata.version("trading-gateway")
    except metadata.PackageNotFoundError:
        return "unknown"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG, description="Read accounts through the gateway.", epilog=EXIT_HELP
    )
    parser.add_argument(
        "--version", action="version", version=f"{PROG} {package_version()} (client)"
    )
    subcommands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    common = _common_options()
    for name, command in COMMANDS.items():
        sub = subcommands.add_parser(name, parents=[common], help=command.help, epilog=EXIT_HELP)
        sub.set_defaults(include_flat=False, include_inactive=False, filter=None, status=[])
        if name == "accounts":
            sub.add_argument(
                "--include-inactive", action="store_true", help="list inactive accounts too"
            )
        if command.flat:
            sub.add_argument(
                "--include-flat", action="store_true", help="include flat (zero) positions"
            )
        if command.orders:
            which = sub.add_mutually_exclusive_group()
            which.add_argument(
                "--all", dest="filter", action="store_const", const="all", help="every order"
            )
            which.add_argument(
                "--working",
                dest="filter",
                action="store_const",
                const="working",
                help="working orders only (the default)",
            )
        if name == "orders":
            sub.add_argument(
                "--status",
                type=_names_arg,
                default=[],
                metavar="S1,S2",
                help="only these statuses, from every order unless --working, e.g. filled,canceled",
            )
    add_watch_parser(subcommands, common)
    return parser


def tls_from_args(args: argparse.Namespace) -> TlsConfig | None:
    if not (args.tls_ca or args.tls_cert or args.tls_key or args.tls_server_name):
        return None
    return TlsConfig(args.tls_ca, args.tls_cert, args.tls_key, args.tls_server_name)


def describe_error(error: ClientError, address: str, timeout: float, *, tls: bool = False) -> str:
    """One line saying what went wrong and what to try next. Never includes the API key.

    With TLS on, a refused connection is most often a failed handshake (grpc reports a
    gateway that rejects a client certificate only as "Socket closed"), so say so.
    """
    code, message = error.code, error.message
    tag = f"{code.name}, {error.reason}" if error.reason else code.name
    if code is grpc.StatusCode.UNAVAILABLE and not error.reason:
        if tls or any(word in message.lower() for word in ("ssl", "handshake", "certificate")):
            return (
                f"TLS with the gateway at {address} failed (UNAVAILABLE): {message}; "
                "check --tls-ca, --tls-cert/--tls-key and --tls-server-name"
            )
        return (
            f"cannot reach the gateway at {address} (UNAVAILABLE): is it running? try `make demo`"
        )
    if code is grpc.StatusCode.UNAVAILABLE:
        return f"the gateway at {address} cannot serve this now ({tag}): {message}"
    if code is grpc.StatusCode.DEADLINE_EXCEEDED:
        return (
            f"no answer from the gateway at {address} within {timeout:g}s ({tag}): "
            "try a larger --timeout or --policy cached"
        )
    if code is grpc.StatusCode.UNAUTHENTICATED:
        return (
            f"the gateway at {address} refused the credentials ({tag}): {message}; "
            f"pass --api-key or set {ENV_API_KEY}"
        )
    if code is grpc.StatusCode.PERMISSION_DENIED:
        return f"not allowed ({tag}): {message}; ask for a key with access"
    if code is grpc.StatusCode.NOT_FOUND:
        return f"not found ({tag}): {message}; `{PROG} accounts` lists valid names"
    if code is grpc.StatusCode.INVALID_ARGUMENT:
        fields = "; ".join(
            f"{v.field}: {v.description}"
            for v in error.field_violations
            if v.description != message
        )
        return f"invalid request ({tag}): {message}" + (f" ({fields})" if fields else "")
    if code is grpc.StatusCode.RESOURCE_EXHAUSTED:
        after = f"; retry after {error.retry_after:g}s" if error.retry_after is not None else ""
        return f"rate limited ({tag}): {message}{after}"
    if code is grpc.StatusCode.UNIMPLEMENTED:
        return f"the gateway at {address} does not implement this call ({tag}): is it older?"
    return f"the gateway at {address} failed ({tag}): {message or 'no details'}"


async def run(args: argparse.Namespace) -> Output:
    client = TradingClient(
        args.address,
        api_key=args.api_key,
        tls=tls_from_args(args),
        timeout=args.timeout,
        retries=max(args.retries, 0),
    )
    async with client:
        return await COMMANDS[args.command].run(client, args)


def main(argv: Sequence[str] | None = None) -> int:
    """The CLI; exit codes as client/exit_codes.py says. A closed stdout ends it quietly."""
    try:
        return _main(argv)
    except BrokenPipeError:
        # The reader went away (`| head`): nothing more to say, and nowhere to say it.
        # Point stdout at /dev/null so the interpreter's final flush cannot fail again.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
        return EXIT_OK


def _main(argv: Sequence[str] | None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    tls = tls_from_args(args)
    if args.command == "watch":
        try:
            watcher = TradingClient(
                args.address,
                api_key=args.api_key,
                tls=tls,
                timeout=args.timeout,
                retries=max(args.retries, 0),
            )
        except ValueError as error:
            print(f"{PROG}: {error}", file=sys.stderr)
            return EXIT_USAGE
        return run_watch(args, watcher, describe_error)
    try:
        response, text = asyncio.run(run(args))
    except ClientError as error:
        line = describe_error(error, args.address, args.timeout, tls=tls is not None)
        if error.request_id:  # what to quote to the gateway's operators (its access log)
            line += f" [request id {error.request_id}]"
        print(f"{PROG}: {line}", file=sys.stderr)
        return EXIT_CALL_FAILED
    except ValueError as error:  # unreadable TLS file, bad status name, malformed API key
        print(f"{PROG}: {error}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    print(render.render_json(response) if args.json else text(), flush=True)
    partial = render.failed_accounts(response) or render.unavailable_logins(response)
    return EXIT_PARTIAL if partial else EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
