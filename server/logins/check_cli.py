"""`trading-gateway logins check [FILE]`: validate a logins file as `serve` would.

    trading-gateway logins check /etc/tg/logins.toml
    trading-gateway logins check            # the file GATEWAY_LOGINS_FILE names

Every check `serve` makes runs, secrets included (each named variable or file must hold
one), with the same one-line error and exit code 2. A good file prints one row per
login: its name, user, environment, REST URL and where its password and secret are
kept. Never a secret.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping, Sequence
from typing import TextIO

from pydantic import ValidationError

from trading_gateway.server.config import load_settings
from trading_gateway.server.logins.load import SETTING, LoadedLogin, read_logins_file
from trading_gateway.server.setting_error import SettingError

PROG = "trading-gateway logins"
COLUMNS = ("NAME", "USER", "ENVIRONMENT", "REST URL", "PASSWORD", "SECRET")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, description="Check a logins file.")
    sub = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    check = sub.add_parser("check", help="validate a logins file and list its logins")
    check.add_argument("file", nargs="?", help=f"the logins file (default: ${SETTING})")
    return parser


def main(
    argv: Sequence[str],
    out: TextIO | None = None,
    err: TextIO | None = None,
    environ: Mapping[str, str] | None = None,
) -> int:
    out = out or sys.stdout
    err = err or sys.stderr
    args = build_parser().parse_args(list(argv))
    try:
        settings = load_settings(logins_file=args.file)
    except ValidationError as exc:
        from trading_gateway.server.cli import describe_invalid

        print(f"{PROG}: {describe_invalid(exc)}", file=err)
        return 2
    if not settings.logins_file:
        print(f"{PROG}: no file: give one, or set {SETTING}", file=err)
        return 2
    try:
        logins = read_logins_file(settings, environ)
    except SettingError as exc:
        print(f"{PROG}: {exc}", file=err)
        return 2
    noun = "login" if len(logins) == 1 else "logins"
    print(
        f"{settings.logins_file}: {len(logins)} {noun}, every password and secret found "
        "(not shown)",
        file=out,
    )
    for line in table(logins):
        print(line, file=out)
    return 0


def table(logins: Sequence[LoadedLogin]) -> list[str]:
    """The logins as aligned text columns, a header first."""
    rows = [COLUMNS] + [
        (
            login.spec.name,
            login.spec.username,
            login.spec.env,
            login.spec.rest_url,
            login.entry.password_from.describe(),
            login.entry.secret_from.describe(),
        )
        for login in logins
    ]
    widths = [max(len(row[column]) for row in rows) for column in range(len(COLUMNS))]
    return [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in rows
    ]
