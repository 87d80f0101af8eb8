"""The gateway in its own process, built by its own composition root (server/main.py).

Two run side by side against the same simulator:

- ``live``: the production defaults (live state from the user-sync socket, memory cache);
  it serves the upstream path, the live path and StreamUpdates;
- ``cache``: the same with ``live_enabled=False``, so READ_POLICY_CACHED is served by the TTL
  cache (the gateway's default memory store, production TTLs).

Both differ from production defaults only in: the listen port (free), no metrics port, and
no client-side token buckets (``upstream_rate_per_second=0`` and, where the gateway has it,
``upstream_ip_rate_per_second=0``: they protect a real Tradovate login and IP, and the
simulator has no such limit). API-key auth is on, as in production (one key
made up per run). Logs, the access log included, go to a file.

Child: ``python -m bench.gateway_proc --rest-url ... --ws-url ... --md-url ...
--credentials FILE [--no-live]`` announces ``{"address", "pid"}`` once ready.
"""

from __future__ import annotations

import argparse
import asyncio
import faulthandler
import hashlib
import json
import logging
import os
import secrets
import signal
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench.config import BenchConfig
from bench.procs import Child, announce, install_stop_signal, start_child

if TYPE_CHECKING:
    from bench.sim_proc import SimHandle

logger = logging.getLogger(__name__)

READY_TIMEOUT_S = 120.0


# ---------------------------------------------------------------- child side


def settings_values(args: argparse.Namespace, creds: dict[str, Any]) -> dict[str, Any]:
    from trading_gateway.server.sim_settings import simulator_urls, simulator_values

    if args.logins_file:  # the logins come from the file, as an operator configures them
        upstream = {
            **simulator_urls(rest_url=args.rest_url, ws_url=args.ws_url, md_url=args.md_url),
            "logins_file": args.logins_file,
        }
    else:
        upstream = simulator_values(
            rest_url=args.rest_url,
            ws_url=args.ws_url,
            md_url=args.md_url,
            credentials=creds,
            device_id="bench",
        )
    figures = (
        {} if args.figures_rate is None else {"live_figures_rate_per_second": args.figures_rate}
    )
    return {
        "listen": "127.0.0.1:0",
        "metrics_port": 0,
        "upstream_rate_per_second": 0,
        **no_ip_budget(),
        "live_enabled": not args.no_live,
        **figures,
        **upstream,
        "redis_url": "",
    }


def no_ip_budget() -> dict[str, Any]:
    """The shared per-IP token bucket off, where the gateway has one: like the per-login
    bucket, it protects a real Tradovate, and the simulator has no such limit."""
    from trading_gateway.server.config import GatewaySettings

    if "upstream_ip_rate_per_second" in GatewaySettings.model_fields:
        return {"upstream_ip_rate_per_second": 0}
    return {}


def with_api_key(values: dict[str, Any], key_sha256: str) -> dict[str, Any]:
    """Turn API-key auth on (as a production deployment would) when this gateway has it."""
    from trading_gateway.server.config import GatewaySettings

    if key_sha256 and "api_keys" in GatewaySettings.model_fields:
        entry = {"name": "bench", "sha256": key_sha256, "scope": "*"}
        return {**values, "api_keys": json.dumps({"keys": [entry]})}
    return values


async def serve(args: argparse.Namespace, creds: dict[str, Any]) -> None:
    from trading_gateway.server.config import GatewaySettings
    from trading_gateway.server.main import Gateway

    values = with_api_key(settings_values(args, creds), str(creds.get("bench_key_sha256", "")))
    settings = GatewaySettings.model_validate(values)
    async with Gateway(settings) as gateway:
        await gateway.wait_ready(READY_TIMEOUT_S)
        stop = asyncio.Event()
        install_stop_signal(asyncio.get_running_loop(), stop)
        profile = asyncio.Event()
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGUSR1, profile.set)
        announce({"address": gateway.address, "pid": os.getpid()})
        if args.profile:
            await profiled(stop, profile, Path(args.profile))
        await stop.wait()


async def profiled(stop: asyncio.Event, start: asyncio.Event, out: Path) -> None:
    """SIGUSR1 starts pyinstrument (event-loop thread, wall clock); SIGTERM writes the text
    report to ``out``, then the gateway stops as usual."""
    from pyinstrument import Profiler

    waiter = asyncio.ensure_future(start.wait())
    stopper = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({waiter, stopper}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        waiter.cancel()
        stopper.cancel()
        await asyncio.gather(waiter, stopper, return_exceptions=True)
    if stop.is_set():
        return
    profiler = Profiler(interval=0.0005, async_mode="disabled")
    profiler.start()
    await stop.wait()
    profiler.stop()
    text = profiler.output_text(unicode=False, color=False, show_all=False)
    await asyncio.to_thread(out.write_text, text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rest-url", required=True)
    parser.add_argument("--ws-url", required=True)
    parser.add_argument("--md-url", required=True)
    parser.add_argument("--credentials", required=True)
    parser.add_argument("--no-live", action="store_true")
    parser.add_argument("--logins-file", default="", help="GATEWAY_LOGINS_FILE (several logins)")
    parser.add_argument(
        "--figures-rate", type=float, default=None, help="GATEWAY_LIVE_FIGURES_RATE_PER_SECOND"
    )
    parser.add_argument("--log-file", required=True)
    parser.add_argument("--profile", default="", help="write a pyinstrument profile here")
    args = parser.parse_args()
    logging.basicConfig(
        level=logging.INFO,
        filename=args.log_file,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    creds = json.loads(Path(args.credentials).read_text())
    # A crash of the gateway (e.g. a segfault) leaves its Python stacks here.
    fault_file = open(args.log_file + ".fault", "w")  # noqa: SIM115 - open for the process's life
    faulthandler.enable(fault_file, all_threads=True)
    from trading_gateway.server.runner import run

    run(serve(args, creds))


# ---------------------------------------------------------------- parent side


@dataclass
class GatewayHandle:
    child: Child
    cache_child: Child
    target: str
    cache_target: str
    metadata: list[tuple[str, str]]

    @property
    def pid(self) -> int:
        return self.child.pid

    @property
    def cache_pid(self) -> int:
        return self.cache_child.pid


# One API key per bench run, made up here; clients send it, gateways know its hash only.
_API_KEY = "tgk_bench_" + secrets.token_urlsafe(24)


def api_key_sha256() -> str:
    return hashlib.sha256(_API_KEY.encode()).hexdigest()


def client_metadata() -> list[tuple[str, str]]:
    """What every bench client sends to the gateway."""
    return [("authorization", f"Bearer {_API_KEY}")]


async def start_one(
    name: str,
    sim: SimHandle,
    workdir: Path,
    *,
    live: bool,
    profile: Path | None = None,
    credentials: dict[str, Any] | None = None,
    logins_file: Path | None = None,
    figures_rate: float | None = None,
    env: dict[str, str] | None = None,
) -> Child:
    """One gateway process against ``sim``; logs go to ``workdir/<name>.log``.

    It logs in as ``credentials`` (default: the simulator's first user), or with the logins
    of ``logins_file`` (whose secrets' variables ``env`` sets)."""
    creds = workdir / f"{name}-credentials.json"
    body = credentials if credentials is not None else sim.credentials
    creds.write_text(json.dumps({**body, "bench_key_sha256": api_key_sha256()}))
    args = [
        "--rest-url",
        sim.rest_url,
        "--ws-url",
        sim.ws_url,
        "--md-url",
        sim.md_ws_url,
        "--credentials",
        str(creds),
        "--log-file",
        str(workdir / f"{name}.log"),
    ]
    if not live:
        args.append("--no-live")
    if profile is not None:
        args += ["--profile", str(profile)]
    if logins_file is not None:
        args += ["--logins-file", str(logins_file)]
    if figures_rate is not None:
        args += ["--figures-rate", str(figures_rate)]
    return await start_child(
        name, "bench.gateway_proc", args, ready_timeout=READY_TIMEOUT_S + 30, env=env
    )


async def start_gateway(
    config: BenchConfig, sim: SimHandle, workdir: Path, missing: dict[str, str]
) -> GatewayHandle | None:
    try:
        import trading_gateway.server.main  # noqa: F401
    except Exception as exc:  # an unbuildable gateway is reported, not fatal to the bench
        missing["gateway"] = (
            f"trading_gateway.server.main is not importable ({type(exc).__name__}: {exc})"
        )
        return None
    try:
        # Unpaced figures refresh: its default pace (GATEWAY_LIVE_FIGURES_RATE_PER_SECOND,
        # 5 accounts/s, sparing a real login's limiter) takes 200 s to reach 1000
        # accounts, and until it has, a LIVE balance read falls through upstream.
        live = await start_one("gateway", sim, workdir, live=True, figures_rate=0)
    except (RuntimeError, TimeoutError) as exc:
        missing["gateway"] = f"the gateway did not start ({exc}); see its log"
        return None
    try:
        cache = await start_one("gateway-cache", sim, workdir, live=False)
    except BaseException:
        await live.stop()
        raise
    return GatewayHandle(
        child=live,
        cache_child=cache,
        target=live.ready["address"],
        cache_target=cache.ready["address"],
        metadata=client_metadata(),
    )


if __name__ == "__main__":
    main()
