"""`trading-gateway demo --logins N`: one simulator serving N users, the gateway over N
logins named ``desk-1`` .. ``desk-N``, configured through a logins file as an operator would.

The logins file and the password files go to a private temporary folder (removed when the
demo stops); the API secret goes to an environment variable set for the demo's lifetime.
What it prints fits an 80x24 terminal.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import shlex
import shutil
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from trading_gateway.client.cli import ENV_ADDRESS
from trading_gateway.server.config import GatewaySettings
from trading_gateway.server.demo_logins import (
    SECRET_ENV,
    FileLogin,
    from_credentials,
    numbered_names,
    write_logins_file,
)
from trading_gateway.server.logins.load import SHORTHAND_FIELDS
from trading_gateway.server.sim_settings import simulator_urls
from trading_gateway.simulator import SimConfig, Simulator
from trading_gateway.simulator.config import SimUser

SERVICE: Final = "tradovate_gateway.v1.TradingService"
LOGIN_HEALTH_PREFIX: Final = "tradovate_gateway.login."
DEFAULT_ADDRESS: Final = "127.0.0.1:50051"
WIDTH: Final = 80
# Lines printed at most: a 24-line terminal keeps the command line and the cursor in view.
HEIGHT: Final = 22
# Logins listed one per line; more are summed up in one line (the file lists them all).
SHOWN_LOGINS: Final = 4
USER_PREFIX: Final = "demo-trader"
SETUP_WORDS: Final = {2: "two", 3: "three"}


def sim_users(logins: int, accounts: int) -> tuple[SimUser, ...]:
    """``logins`` simulated Tradovate users with ``accounts`` accounts each and passwords
    made up per run (they only ever live in the simulator and the 0600 password files)."""
    return tuple(
        SimUser(name=f"{USER_PREFIX}-{n}", password=secrets.token_urlsafe(12), accounts=accounts)
        for n in range(1, logins + 1)
    )


def sim_config(logins: int, accounts: int, seed: int, activity_rate: float) -> SimConfig:
    return SimConfig(
        accounts=accounts,
        seed=seed,
        activity_rate=activity_rate,
        users=sim_users(logins, accounts),
    )


@dataclass(frozen=True, slots=True)
class DeskLogin:
    """One login as the demo shows it: its name, its Tradovate user, its account names."""

    name: str
    username: str
    accounts: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Desks:
    """The logins the demo configured and the file that configures them."""

    logins_file: Path
    logins: tuple[DeskLogin, ...]

    def settings(self, settings: GatewaySettings, sim: Simulator) -> GatewaySettings:
        """``settings`` pointed at the simulator, with the logins file as their logins."""
        values = simulator_urls(rest_url=sim.rest_url, ws_url=sim.ws_url, md_url=sim.md_ws_url)
        # TRADOVATE_* credentials from the environment would be a second, unnamed login.
        unset = dict.fromkeys(SHORTHAND_FIELDS)
        return settings.model_copy(update={**values, **unset, "logins_file": str(self.logins_file)})


def file_logins(sim: Simulator) -> list[FileLogin]:
    """One login per simulator user, ``desk-1`` for the first."""
    users = sim.config.all_users()
    names = numbered_names(len(users))
    return [
        from_credentials(name, sim.credentials_for(user.name), "trading-gateway-demo")
        for name, user in zip(names, users, strict=True)
    ]


def desk_logins(sim: Simulator, logins: Sequence[FileLogin]) -> tuple[DeskLogin, ...]:
    """Each login's account names, as the simulator assigned them to its user."""
    account_names = {int(a["id"]): str(a["name"]) for a in sim.control.accounts()}
    owned = {str(u["name"]): sorted(u["accountIds"]) for u in sim.control.users()}
    return tuple(
        DeskLogin(
            name=login.name,
            username=login.username,
            accounts=tuple(account_names[i] for i in owned.get(login.username, [])),
        )
        for login in logins
    )


@contextlib.contextmanager
def desks_for(sim: Simulator, directory: Path) -> Iterator[Desks]:
    """Write the logins file into ``directory`` and set the secret's variable until exit."""
    logins = file_logins(sim)
    path = write_logins_file(directory, logins, SECRET_ENV)
    before = os.environ.get(SECRET_ENV)
    os.environ[SECRET_ENV] = str(sim.credentials["sec"])
    try:
        yield Desks(logins_file=path, logins=desk_logins(sim, logins))
    finally:
        if before is None:
            os.environ.pop(SECRET_ENV, None)
        else:
            os.environ[SECRET_ENV] = before


async def wait_logins_serving(address: str, desks: Desks, limit_s: float) -> None:
    """Wait until every login's health service answers SERVING (TimeoutError naming the
    logins that do not), so the accounts the demo prints can all be read at once."""
    waiting = [d.name for d in desks.logins]
    async with grpc.aio.insecure_channel(address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        try:
            async with asyncio.timeout(limit_s):
                while waiting:
                    for name in list(waiting):
                        request = health_pb2.HealthCheckRequest(service=LOGIN_HEALTH_PREFIX + name)
                        with contextlib.suppress(grpc.aio.AioRpcError):
                            answer = await stub.Check(request, timeout=2.0)
                            if answer.status == health_pb2.HealthCheckResponse.SERVING:
                                waiting.remove(name)
                    if waiting:
                        await asyncio.sleep(0.1)
        except TimeoutError:
            raise TimeoutError(
                f"logins not serving after {limit_s:.0f} s: {', '.join(waiting)}"
            ) from None


def _fit(text: str, width: int = WIDTH) -> str:
    return text if len(text) <= width else text[: width - 3] + "..."


def _account_list(accounts: Sequence[str], room: int) -> str:
    """Account names separated by spaces, cut to ``room`` characters with "+N more"."""
    shown: list[str] = []
    for index, name in enumerate(accounts):
        rest = len(accounts) - index - 1
        tail = f" +{rest} more" if rest else ""
        candidate = " ".join([*shown, name])
        if len(candidate + tail) > room:
            return " ".join(shown) + f" +{len(accounts) - index} more"
        shown.append(name)
    return " ".join(shown)


def login_lines(logins: Sequence[DeskLogin]) -> list[str]:
    """One line per login (name, user, accounts); past SHOWN_LOGINS, one line for the rest."""
    shown = logins if len(logins) <= SHOWN_LOGINS else logins[: SHOWN_LOGINS - 1]
    label = max(len(f"{d.name} ({d.username})") for d in shown)
    lines = []
    for desk in shown:
        head = f"  {desk.name} ({desk.username})".ljust(label + 2) + ": "
        lines.append(head + _account_list(desk.accounts, WIDTH - len(head)))
    hidden = logins[len(shown) :]
    if hidden:
        total = sum(len(d.accounts) for d in hidden)
        lines.append(
            _fit(f"  ... and {len(hidden)} more logins ({total} accounts): see the logins file")
        )
    return lines


def _bin_dir() -> str | None:
    """The folder to put on PATH for grpcurl and trading-gateway, when they are not."""
    if shutil.which("grpcurl") and shutil.which("trading-gateway"):
        return None
    folder = Path(sys.executable).parent
    try:
        return "$PWD/" + str(folder.relative_to(Path.cwd()))
    except ValueError:
        return str(folder)


def try_lines(address: str, logins: Sequence[DeskLogin]) -> list[str]:
    """Commands to paste: one or two setup lines, then grpcurl and CLI calls with
    ``login/name`` selectors; each fits 80 columns (long ones go on with a backslash) and
    none is ever cut (tests/api/test_demo_logins.py checks the widest cases)."""
    first, second = logins[0], logins[1 % len(logins)]
    one = second.accounts[0] if second.accounts else "ACCOUNT"
    pair = [f"{d.name}/{d.accounts[0]}" for d in (first, logins[-1]) if d.accounts]
    body = shlex.quote(f'{{"selector": {{"accounts": ["{second.name}/{one}"]}}}}')
    health = shlex.quote(f'{{"service": "{LOGIN_HEALTH_PREFIX}{second.name}"}}')
    exports = []
    if address != DEFAULT_ADDRESS:  # the CLI reads it, so its lines need no --address
        exports.append(f"{ENV_ADDRESS}=$g")
    folder = _bin_dir()
    if folder:
        exports.append(f'PATH="{folder}:$PATH"')
    lines = [f"  g={address} s={SERVICE}"]
    if exports and len(f"  export {' '.join(exports)}") <= WIDTH:
        lines.append(f"  export {' '.join(exports)}")
    else:  # a long PATH entry gets a line of its own
        lines += [f"  export {name_value}" for name_value in exports]
    lines += [
        "  grpcurl -plaintext -d '{}' $g $s/ListAccounts",
        f"  grpcurl -plaintext -d {body} \\",
        "    $g $s/GetPositions",
        f"  grpcurl -plaintext -d {health} \\",
        "    $g grpc.health.v1.Health/Check",
        "  trading-gateway accounts",
        f"  trading-gateway positions --accounts {','.join(dict.fromkeys(pair))}",
        "  trading-gateway watch",
    ]
    return lines


def announce_lines(
    *,
    sim_url: str,
    address: str,
    metrics_port: int | None,
    cache: str,
    desks: Desks,
) -> list[str]:
    """Everything the demo prints once the gateway is ready: at most WIDTH x HEIGHT."""
    accounts = sum(len(d.accounts) for d in desks.logins)
    head = [
        f"trading-gateway demo is running: {len(desks.logins)} logins, {accounts} accounts",
        _fit(f"  simulator: {sim_url} ({len(desks.logins)} Tradovate users)"),
        _fit(f"  gateway:   {address} (gRPC, reflection, health; {cache} cache)"),
    ]
    if metrics_port:
        head.append(f"  metrics:   http://127.0.0.1:{metrics_port}/metrics")
    head.append(f"  logins:    {desks.logins_file}")  # whole, to be opened
    tries = try_lines(address, desks.logins)
    setup_lines = sum(1 for line in tries if line.startswith(("  g=", "  export ")))
    setup = (
        f"paste the first {SETUP_WORDS[setup_lines]} lines first"
        if setup_lines > 1
        else "the first line sets $g and $s"
    )
    parts = [
        [*head, *login_lines(desks.logins)],
        [f"Try ({setup}):", *tries],
        ["Press Ctrl-C to stop."],
    ]
    # A blank line between the parts when the screen has room for them.
    gap = [""] if sum(len(p) for p in parts) + len(parts) - 1 <= HEIGHT else []
    return [*parts[0], *gap, *parts[1], *gap, *parts[2]]
