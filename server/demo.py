"""`trading-gateway demo`: the simulator and the gateway in one process, ready to try.

Starts the simulator (4 accounts with some random activity) on free loopback ports,
points the gateway at it with the simulator's credentials and an in-memory cache,
prints grpcurl and CLI lines to try, then runs until Ctrl-C, SIGTERM or --duration.
With ``--logins N`` (server/demo_many.py) the simulator serves N users and the gateway
holds N logins, configured through a logins file in a temporary folder.
"""

from __future__ import annotations

import logging
import os
import pathlib
import shlex
import shutil
import sys
import tempfile
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Final, TextIO

from trading_gateway.server import demo_many
from trading_gateway.server.config import GatewaySettings
from trading_gateway.server.login import FatalStartupError
from trading_gateway.server.main import Gateway
from trading_gateway.server.observability.tracing import Tracing, tracing_from_env
from trading_gateway.server.runner import StopSignals
from trading_gateway.server.setting_error import SettingError
from trading_gateway.server.sim_settings import simulator_values
from trading_gateway.server.version import version
from trading_gateway.simulator import SimConfig, Simulator

logger = logging.getLogger(__name__)

SERVICE: Final = "tradovate_gateway.v1.TradingService"
DEFAULT_ADDRESS: Final = "127.0.0.1:50051"
READY_TIMEOUT: Final = 30.0


@dataclass(frozen=True, slots=True)
class DemoOptions:
    duration: float | None = None
    accounts: int = 4
    seed: int = 7
    activity_rate: float = 0.5
    metrics_port_given: bool = False
    logins: int = 1


def demo_settings(settings: GatewaySettings, sim: Simulator) -> GatewaySettings:
    """The gateway's settings pointed at a running simulator."""
    values = simulator_values(
        rest_url=sim.rest_url,
        ws_url=sim.ws_url,
        md_url=sim.md_ws_url,
        credentials=sim.credentials,
        device_id="trading-gateway-demo",
    )
    # The one simulated login, whatever GATEWAY_LOGINS_FILE says (`--logins N` for more).
    return settings.model_copy(update={**values, "logins_file": None})


def runnable(command: str) -> str:
    """How to type `command` from here: its bare name when it is on PATH, else the path
    beside this interpreter (e.g. `.venv/bin/grpcurl` right after `make demo`)."""
    if shutil.which(command):
        return command
    beside = pathlib.Path(sys.executable).parent / command
    if not beside.exists():
        return command
    try:
        return str(beside.relative_to(pathlib.Path.cwd()))
    except ValueError:
        return str(beside)


def try_lines(address: str, account_names: list[str], metrics_port: int | None) -> list[str]:
    """What the demo prints: commands that work against this gateway right now."""
    first = account_names[0] if account_names else "DEMO1"
    body = shlex.quote(f'{{"selector": {{"accounts": ["{first}"]}}}}')
    health = shlex.quote(f'{{"service": "{SERVICE}"}}')
    cli_address = "" if address == DEFAULT_ADDRESS else f" --address {address}"
    grpcurl = runnable("grpcurl")
    cli = runnable("trading-gateway")
    lines = [
        f"  {grpcurl} -plaintext {address} list",
        f"  {grpcurl} -plaintext {address} describe {SERVICE}",
        f"  {grpcurl} -plaintext -d {body} {address} {SERVICE}/GetPositions",
        f"  {grpcurl} -plaintext -d '{{}}' {address} {SERVICE}/GetBalances",
        f"  {grpcurl} -plaintext -d {health} {address} grpc.health.v1.Health/Check",
        f"  {cli} accounts{cli_address}",
        f"  {cli} positions{cli_address}",
        f"  {cli} orders --all{cli_address}",
        f"  {cli} snapshot --json{cli_address}",
        f"  {cli} watch{cli_address}",
    ]
    if metrics_port:
        lines.append(f"  curl -s http://127.0.0.1:{metrics_port}/metrics | grep ^tg_")
    return lines


async def run_demo(
    settings: GatewaySettings, options: DemoOptions, *, out: TextIO | None = None
) -> int:
    out = out or sys.stdout
    with StopSignals() as signals:
        return await _run(settings, options, out, signals)


async def _run(
    settings: GatewaySettings, options: DemoOptions, out: TextIO, signals: StopSignals
) -> int:
    if options.logins > 1:
        config = demo_many.sim_config(
            options.logins, options.accounts, options.seed, options.activity_rate
        )
    else:
        config = SimConfig(
            accounts=options.accounts, seed=options.seed, activity_rate=options.activity_rate
        )
    try:  # OTEL_* as for serve: `OTEL_TRACES_EXPORTER=console make demo` shows the spans
        tracing = tracing_from_env(os.environ, version=version())
    except SettingError as exc:
        print(f"trading-gateway demo: {exc}", file=sys.stderr)
        return 2
    async with Simulator(config).running(host="127.0.0.1", port=0) as sim:
        with ExitStack() as scratch:
            desks: demo_many.Desks | None = None
            if options.logins > 1:
                folder = scratch.enter_context(tempfile.TemporaryDirectory(prefix="tg-demo-"))
                desks = scratch.enter_context(demo_many.desks_for(sim, pathlib.Path(folder)))
            gateway_settings = (
                desks.settings(settings, sim) if desks else demo_settings(settings, sim)
            )
            code = await _serve(gateway_settings, options, out, signals, sim, desks, tracing)
    return code


async def _serve(
    settings: GatewaySettings,
    options: DemoOptions,
    out: TextIO,
    signals: StopSignals,
    sim: Simulator,
    desks: demo_many.Desks | None,
    tracing: Tracing | None,
) -> int:
    try:
        gateway = Gateway(
            settings, metrics_optional=not options.metrics_port_given, tracing=tracing
        )
    except SettingError as exc:  # a logins file the gateway refuses
        print(f"trading-gateway demo: {exc}", file=sys.stderr)
        return 2
    try:
        await gateway.start()
    except (OSError, SettingError) as exc:  # a port in use (AddressInUse, metrics)
        await gateway.stop(0)
        print(f"trading-gateway demo: {exc}", file=sys.stderr)
        return 2
    try:
        try:
            await gateway.wait_ready(READY_TIMEOUT)
            if desks is not None:
                await demo_many.wait_logins_serving(gateway.address, desks, READY_TIMEOUT)
        except (FatalStartupError, TimeoutError) as exc:
            print(f"trading-gateway demo: the gateway could not start: {exc}", file=sys.stderr)
            return 1
        if desks is None:
            names = [a.name for a in gateway.directory.known if a.active]
            _announce(out, sim.rest_url, gateway, names, settings)
        else:
            lines = demo_many.announce_lines(
                sim_url=sim.rest_url,
                address=gateway.address,
                metrics_port=gateway.metrics_port,
                cache="Redis" if settings.redis_url else "in-memory",
                desks=desks,
            )
            print("\n".join(lines), file=out, flush=True)
        why = await signals.wait(options.duration)
        print(f"\n{why}: stopping the demo", file=out, flush=True)
    finally:
        await gateway.stop()
    return 0


def _announce(
    out: TextIO,
    sim_url: str,
    gateway: Gateway,
    names: list[str],
    settings: GatewaySettings,
) -> None:
    cache = "Redis" if settings.redis_url else "in-memory"
    lines = [
        "trading-gateway demo is running",
        f"  simulator: {len(names)} accounts ({', '.join(names)}) at {sim_url}",
        f"  gateway:   {gateway.address} (gRPC, reflection and health; {cache} cache)",
    ]
    if gateway.metrics_port:
        lines.append(f"  metrics:   http://127.0.0.1:{gateway.metrics_port}/metrics")
    lines += ["", "Try:", *try_lines(gateway.address, names, gateway.metrics_port), ""]
    lines.append("Press Ctrl-C to stop.")
    print("\n".join(lines), file=out, flush=True)
