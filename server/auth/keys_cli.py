"""`trading-gateway keys create|show|hash`: make an API key and its key-file entry, show
what the configured keys may see.

    trading-gateway keys create --name risk-service --scope DEMO123,456
    trading-gateway keys create --name desk-a-risk --logins desk-a
    trading-gateway keys create --name desk-b-one --scope desk-b/DEMO7
    trading-gateway keys create --name ops --all
    trading-gateway keys show [--file keys.json]   # default: the GATEWAY_API_KEYS* variables
    trading-gateway keys hash < key.txt        # the entry's sha256 for an existing key

The key is printed once (stdout, first line); only its hash goes in the key file.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from typing import TextIO

from trading_gateway.server.auth.errors import KeyFileError
from trading_gateway.server.auth.keys import (
    KeyEntry,
    generate_key,
    hash_key,
    load_keyring,
    make_entry,
)

PROG = "trading-gateway keys"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, description="Create, show and hash API keys.")
    sub = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    create = sub.add_parser(
        "create",
        help="make a new random key and its key-file entry",
        description="A key sees --all accounts, or the accounts of --logins plus those in --scope.",
    )
    create.add_argument("--name", required=True, help="the key's name (shown in access logs)")
    create.add_argument(
        "--scope",
        metavar="A,B",
        help="accounts this key may see (comma-separated): names or ids under any login, "
        "or login/name, login/id under that login only",
    )
    create.add_argument(
        "--logins",
        metavar="L1,L2",
        help="logins whose every account (present and future) this key may see",
    )
    create.add_argument("--all", action="store_true", help="this key may see every account")
    show = sub.add_parser(
        "show",
        help="what each configured key may see",
        description="Check a key configuration and list each key's scope (no keys, no hashes).",
    )
    show.add_argument(
        "--file",
        metavar="PATH",
        help="the key file (default: $GATEWAY_API_KEYS_FILE and $GATEWAY_API_KEYS)",
    )
    sub.add_parser("hash", help="print the sha256 of a key read from stdin")
    return parser


def _list(text: str | None) -> list[str]:
    return [part.strip() for part in (text or "").split(",") if part.strip()]


def describe(entry: KeyEntry) -> str:
    """What a key may see, in words: ``every account``, or
    ``every account of logins a, b; accounts x, y``."""
    if entry.scope_text is None:
        return "every account"
    parts = []
    if entry.logins:
        parts.append("every account of logins " + ", ".join(entry.logins))
    if entry.scope_text:
        parts.append("accounts " + ", ".join(entry.scope_text))
    return "; ".join(parts)


def main(argv: Sequence[str], out: TextIO | None = None, err: TextIO | None = None) -> int:
    out = out or sys.stdout
    err = err or sys.stderr
    args = build_parser().parse_args(list(argv))
    if args.action == "hash":
        key = sys.stdin.readline().strip()
        if not key:
            print(f"{PROG}: no key on stdin", file=err)
            return 2
        print(hash_key(key), file=out)
        return 0
    if args.action == "show":
        return _show(args.file, out, err)
    return _create(args, out, err)


def _create(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    scope, logins = _list(args.scope), _list(args.logins)
    if args.all and (args.scope is not None or args.logins is not None):
        print(f"{PROG} create: --all already covers every account; drop --scope/--logins", file=err)
        return 2
    if not args.all and not scope and not logins:
        print(f"{PROG} create: say what the key may see: --scope, --logins or --all", file=err)
        return 2
    key = generate_key()
    try:
        entry = make_entry(args.name, key, None if args.all else scope, logins)
    except KeyFileError as exc:
        print(f"{PROG}: {str(exc).removeprefix('new key: ')}", file=err)
        return 2
    print(key, file=out)
    print(
        "# ^ the API key: give it to the calling service now; it is not stored anywhere.\n"
        f"# It may see: {describe(entry)}.\n"
        '# Add this entry to the "keys" list of the key file (GATEWAY_API_KEYS_FILE):',
        file=out,
    )
    print(json.dumps(entry.as_json()), file=out)
    return 0


def _show(file: str | None, out: TextIO, err: TextIO) -> int:
    if file is not None:
        sources: tuple[str | None, str | None] = (file, None)
    else:
        sources = (os.environ.get("GATEWAY_API_KEYS_FILE"), os.environ.get("GATEWAY_API_KEYS"))
    if not any(sources):
        print(
            f"{PROG} show: no keys configured (pass --file, or set GATEWAY_API_KEYS_FILE "
            "or GATEWAY_API_KEYS); without keys every caller sees every account",
            file=err,
        )
        return 2
    try:
        ring = load_keyring(*sources)
    except KeyFileError as exc:
        print(f"{PROG} show: {exc}", file=err)
        return 2
    width = max(len(entry.name) for entry in ring.entries)
    for entry in ring.entries:
        print(f"{entry.name:<{width}}  {describe(entry)}", file=out)
    return 0
