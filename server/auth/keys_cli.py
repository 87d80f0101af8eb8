"""`trading-gateway keys create|hash`: make an API key and the entry for the key file.

    trading-gateway keys create --name risk-service --scope DEMO123,456
    trading-gateway keys create --name ops --all
    trading-gateway keys hash < key.txt        # the entry's sha256 for an existing key

The key is printed once (stdout, first line); only its hash goes in the key file.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import TextIO

from trading_gateway.server.auth.errors import KeyFileError
from trading_gateway.server.auth.keys import generate_key, hash_key, make_entry

PROG = "trading-gateway keys"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, description="Create and hash API keys.")
    sub = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    create = sub.add_parser("create", help="make a new random key and its key-file entry")
    create.add_argument("--name", required=True, help="the key's name (shown in access logs)")
    which = create.add_mutually_exclusive_group(required=True)
    which.add_argument(
        "--scope", metavar="A,B", help="account names or ids this key may see (comma-separated)"
    )
    which.add_argument("--all", action="store_true", help="this key may see every account")
    sub.add_parser("hash", help="print the sha256 of a key read from stdin")
    return parser


def _scope(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


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
    key = generate_key()
    try:
        entry = make_entry(args.name, key, None if args.all else _scope(args.scope))
    except KeyFileError as exc:
        print(f"{PROG}: {str(exc).removeprefix('new key: ')}", file=err)
        return 2
    print(key, file=out)
    print(
        "# ^ the API key: give it to the calling service now; it is not stored anywhere.\n"
        '# Add this entry to the "keys" list of the key file (GATEWAY_API_KEYS_FILE):',
        file=out,
    )
    print(json.dumps(entry.as_json()), file=out)
    return 0
