"""`trading-gateway`: the server's CLI, or one line saying which install it needs.

The plain install is the client alone; the server's packages (aiohttp, redis,
pydantic-settings, ...) come with the `server` extra. Without them the command says so,
instead of a traceback, and names the client's own command.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

NEEDS_SERVER_EXTRA = (
    "trading-gateway: this install has the client only (missing: {name}); for the gateway "
    "and the demo, pip install 'trading-gateway[server]'; for the read commands, run "
    "trading-gateway-client"
)


def main(argv: Sequence[str] | None = None) -> int:
    try:
        from trading_gateway.server.cli import main as cli_main
    except ModuleNotFoundError as missing:
        own = __name__.partition(".")[0]  # a module of ours missing is a bug, not an extra
        if missing.name is None or missing.name.partition(".")[0] == own:
            raise
        print(NEEDS_SERVER_EXTRA.format(name=missing.name), file=sys.stderr)
        return 2
    return cli_main(argv)
