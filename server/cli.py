"""`trading-gateway`: `serve` and `demo` run the server; every other command is the client's.

trading-gateway serve [--listen HOST:PORT] [--redis-url URL] [--metrics-port N] [--workers N] ...
trading-gateway demo  [--listen HOST:PORT] [--duration SECONDS] [--accounts N] [--logins N] ...
trading-gateway keys create|show|hash ...                           (server/auth/keys_cli.py)
trading-gateway logins check [FILE]                                 (server/logins/check_cli.py)
trading-gateway replicas holders [--pid LOGIN]                  (server/replicas/holders_cli.py)
trading-gateway positions|orders|balances|accounts|pending|snapshot|watch ...  (client/cli.py)
trading-gateway --version
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from collections.abc import Sequence
from typing import Any, Final

from pydantic import ValidationError

from trading_gateway.client.exit_codes import HELP as EXIT_HELP
from trading_gateway.server.config import (
    SECRET_FIELDS,
    GatewaySettings,
    env_name,
    field_name,
    load_settings,
    unknown_variables,
)
from trading_gateway.server.observability.logging import configure_logging
from trading_gateway.server.setting_error import SettingError, masked_url

logger = logging.getLogger(__name__)

PROG: Final = "trading-gateway"
SERVER_COMMANDS: Final = ("serve", "demo")
# `demo --logins N`: one simulator process serves them all; more would only slow it down.
MAX_DEMO_LOGINS: Final = 20
# `demo --replicas N`: each is a process of its own on a small machine.
MAX_DEMO_REPLICAS: Final = 5
USAGE: Final = f"""usage: {PROG} COMMAND [options]

server commands:
  serve       run the gateway against the configured Tradovate (TRADOVATE_* variables,
              or the logins file GATEWAY_LOGINS_FILE names)
  demo        run a local simulator and the gateway on it; prints commands to try
  keys        create and show API keys (`keys create --name NAME --logins L --scope A,B`,
              `keys show`); see docs/SECURITY.md
  logins      check a logins file (`logins check FILE`): its logins, never their secrets
  replicas    which replica holds each login's session (`replicas holders`,
              `replicas holders --pid LOGIN` for `kill`); GATEWAY_REPLICAS=redis

client commands (talk to a running gateway; see `{PROG} COMMAND --help`):
  accounts    the accounts behind the gateway's login
  positions   open positions per account
  orders      orders per account (working by default; --all, --status filled,canceled)
  pending     ids of working orders per account
  balances    cash, net liquidation, PnL and margins, with totals
  snapshot    all of the above in one call
  watch       live positions, orders and PnL (streams, resumes by itself)

options:
  -h, --help  this help
  --version   the version and the git commit it was built from

{EXIT_HELP}
"""


def _server_options(parser: argparse.ArgumentParser, *, default_listen: str | None) -> None:
    parser.add_argument(
        "--listen",
        default=default_listen,
        metavar="HOST:PORT",
        help="gRPC listen address (default: $GATEWAY_LISTEN or 127.0.0.1:50051)",
    )
    parser.add_argument(
        "--metrics-port",
        type=int,
        metavar="PORT",
        help="Prometheus /metrics port, 0 disables (default: $GATEWAY_METRICS_PORT or 9464)",
    )
    parser.add_argument("--log-format", choices=("text", "json"), help="log line format")
    parser.add_argument("--log-level", help="DEBUG, INFO, WARNING or ERROR")
    parser.add_argument(
        "--grace", type=float, metavar="SECONDS", help="drain time on SIGTERM/SIGINT"
    )
    parser.add_argument(
        "--allow-insecure",
        action="store_true",
        default=None,
        help="listen beyond loopback without API keys or TLS ($GATEWAY_ALLOW_INSECURE=1)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, description="The Tradovate trading gateway.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    serve = sub.add_parser("serve", help="run against the configured Tradovate")
    _server_options(serve, default_listen=None)
    serve.add_argument("--redis-url", help="Redis cache (default: $REDIS_URL, else in-memory)")
    serve.add_argument(
        "--workers",
        type=int,
        metavar="N",
        help="gateway processes on the one port (SO_REUSEPORT), supervised; N > 1 needs "
        "GATEWAY_REPLICAS=redis (default: $GATEWAY_WORKERS or 1)",
    )
    # Set by the supervisor of `--workers N` on each worker it starts (server/workers.py).
    serve.add_argument("--worker-index", type=int, help=argparse.SUPPRESS)
    serve.add_argument(
        "--logins-file",
        metavar="PATH",
        help="TOML file of many Tradovate logins (default: $GATEWAY_LOGINS_FILE, else the "
        "one TRADOVATE_* login)",
    )
    demo = sub.add_parser("demo", help="run the simulator and the gateway together")
    _server_options(demo, default_listen=None)
    demo.add_argument(
        "--duration", type=float, metavar="SECONDS", help="stop by itself after this long"
    )
    demo.add_argument("--accounts", type=int, default=4, help="simulated accounts (default 4)")
    demo.add_argument(
        "--logins",
        type=_login_count,
        default=1,
        metavar="N",
        help="Tradovate logins desk-1..desk-N, each a simulated user with --accounts "
        "accounts, configured through a logins file (default 1: the TRADOVATE_* shorthand)",
    )
    demo.add_argument(
        "--replicas",
        type=_replica_count,
        default=1,
        metavar="N",
        help="N gateway processes on consecutive ports from --listen sharing one Tradovate "
        "session through a private Redis (GATEWAY_REPLICAS=redis; default 1: one process)",
    )
    demo.add_argument("--seed", type=int, default=7, help="simulator random seed")
    demo.add_argument(
        "--activity-rate",
        type=float,
        default=0.5,
        metavar="PER_SECOND",
        help="random simulated trading activity (default 0.5 orders/s; 0 is quiet)",
    )
    demo.add_argument("--redis-url", help="use Redis instead of the in-memory cache")
    return parser


def _login_count(text: str) -> int:
    try:
        count = int(text)
    except ValueError:
        count = 0
    if not 1 <= count <= MAX_DEMO_LOGINS:
        raise argparse.ArgumentTypeError(
            f"expected a whole number of logins from 1 to {MAX_DEMO_LOGINS}, got {text!r}"
        )
    return count


def _replica_count(text: str) -> int:
    try:
        count = int(text)
    except ValueError:
        count = 0
    if not 1 <= count <= MAX_DEMO_REPLICAS:
        raise argparse.ArgumentTypeError(
            f"expected a whole number of replicas from 1 to {MAX_DEMO_REPLICAS}, got {text!r}"
        )
    return count


def _settings(args: argparse.Namespace, **forced: Any) -> GatewaySettings:
    return load_settings(
        listen=args.listen,
        metrics_port=args.metrics_port,
        log_format=args.log_format,
        log_level=args.log_level,
        grace_s=args.grace,
        allow_insecure=args.allow_insecure,
        **forced,
    )


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    if not args_list or args_list[0] in ("-h", "--help"):
        print(USAGE, end="")
        return 0 if args_list else 2
    if args_list[0] in ("--version", "-V"):
        from trading_gateway.server.version import git_sha, version

        print(f"{PROG} {version()} (git {git_sha()})")
        return 0
    if args_list[0] == "keys":
        from trading_gateway.server.auth.keys_cli import main as keys_main

        return keys_main(args_list[1:])
    if args_list[0] == "logins":
        from trading_gateway.server.logins.check_cli import main as logins_main

        return logins_main(args_list[1:])
    if args_list[0] == "replicas":
        from trading_gateway.server.replicas.holders_cli import main as replicas_main

        return replicas_main(args_list[1:])
    if args_list[0] not in SERVER_COMMANDS:
        from trading_gateway.client.cli import main as client_main

        return client_main(args_list)
    parser = build_parser()
    args = parser.parse_args(args_list)
    if args.command == "demo" and args.replicas > 1 and args.logins > 1:
        parser.error("demo: --replicas and --logins cannot be combined (yet)")
    try:
        if args.command == "serve":
            settings = _settings(
                args,
                redis_url=args.redis_url,
                logins_file=args.logins_file,
                workers=args.workers,
            )
        else:
            # The demo uses memory unless told otherwise, whatever REDIS_URL says.
            settings = _settings(args, redis_url=args.redis_url or "", tradovate_env="demo")
    except ValidationError as exc:
        return _fatal(describe_invalid(exc), json_lines=_json_asked(args))
    configure_logging(settings.log_format, settings.log_level)
    worker = getattr(args, "worker_index", None)
    if worker is not None:
        from trading_gateway.server.workers import tag_worker_logs

        tag_worker_logs(worker)
    else:  # the supervisor of workers warned already
        _warn_unknown_variables(settings)
    from trading_gateway.server.auth.policy import config_problem, listen_refusal, listen_warnings

    refusal = listen_refusal(settings) or config_problem(settings)
    if refusal is not None:
        return _fatal(refusal, json_lines=settings.log_format == "json")
    if worker is None:
        for warning in listen_warnings(settings):
            logger.warning("%s", warning)
    from trading_gateway.server.runner import run

    if args.command == "serve":
        from trading_gateway.server.runner import check_logins, serve

        try:
            if settings.workers > 1 and worker is None:
                from trading_gateway.server.workers import Supervisor

                check_logins(settings)
                # Plain asyncio: it only waits on processes (uvloop lacks process_group).
                return asyncio.run(Supervisor(settings, args_list[1:]).run())
            return run(serve(settings))
        except SettingError as exc:  # a port in use, say: one line, no traceback
            return _fatal(str(exc), json_lines=settings.log_format == "json", setting=exc.setting)
    if args.replicas > 1:
        from trading_gateway.server.demo_replicas import run_replicas_demo
        from trading_gateway.simulator import SimConfig

        config = SimConfig(accounts=args.accounts, seed=args.seed, activity_rate=args.activity_rate)
        return run(
            run_replicas_demo(
                settings,
                replicas=args.replicas,
                config=config,
                duration=args.duration,
                out=sys.stdout,
            )
        )
    from trading_gateway.server.demo import DemoOptions, run_demo

    options = DemoOptions(
        duration=args.duration,
        accounts=args.accounts,
        seed=args.seed,
        activity_rate=args.activity_rate,
        logins=args.logins,
        metrics_port_given=args.metrics_port is not None,
    )
    return run(run_demo(settings, options))


def _warn_unknown_variables(settings: GatewaySettings) -> None:
    from trading_gateway.server.logins.load import variables_named

    named = variables_named(settings)  # a logins file's secret variables are not typos
    for warning in unknown_variables({k: v for k, v in os.environ.items() if k not in named}):
        logger.warning("%s", warning)


def _json_asked(args: argparse.Namespace) -> bool:
    """JSON logs asked for, read before the settings are known to be valid."""
    chosen = args.log_format or os.environ.get("GATEWAY_LOG_FORMAT", "")
    return str(chosen).strip().lower() == "json"


def _fatal(message: str, *, json_lines: bool, setting: str | None = None) -> int:
    """The one stderr line a start-up error gets (a JSON record when logs are JSON); 2."""
    if json_lines:
        configure_logging("json")
        extra = {"setting": setting} if setting else None
        logger.critical("%s", message, extra=extra)
    else:
        print(f"{PROG}: {message}", file=sys.stderr)
    return 2


def describe_invalid(exc: ValidationError) -> str:
    """Every invalid setting in one line: the variable, its value (never a secret), why."""
    parts = []
    for error in exc.errors():
        loc = error["loc"]
        message = str(error["msg"]).removeprefix("Value error, ")
        if not loc:  # a rule across settings; its message names them
            parts.append(message)
            continue
        field = field_name(str(loc[0]))
        setting = env_name(field)
        flag = FLAGS.get(field)
        if flag:
            setting = f"{setting} ({flag})"
        parts.append(f"{setting}={_shown(field, error.get('input'))}: {message}")
    return (
        f"invalid settings: {'; '.join(parts)}; "
        "fix the environment variable or flag (README, Configuration; "
        f"`{PROG} serve --help`)"
    )


# Settings that `serve` also takes as a flag.
FLAGS: Final = {
    "listen": "--listen",
    "metrics_port": "--metrics-port",
    "log_format": "--log-format",
    "log_level": "--log-level",
    "grace_s": "--grace",
    "redis_url": "--redis-url",
    "allow_insecure": "--allow-insecure",
    "logins_file": "--logins-file",
    "workers": "--workers",
}


def _shown(field: str, value: object) -> str:
    if field in SECRET_FIELDS:
        return "<hidden>"
    text = value if isinstance(value, str) else repr(value)
    if field == "redis_url":
        text = masked_url(text)
    return text if len(text) <= 120 else text[:117] + "..."


if __name__ == "__main__":
    sys.exit(main())
