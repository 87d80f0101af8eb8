"""Unary calls per second through `serve --workers N`, for each N given.

    .venv/bin/python -m bench.tools.workers_unary [--workers 1 2] [--clients 4]

For each N: a private redis-server, a simulator, and `trading-gateway serve --workers N`
(GATEWAY_REPLICAS=redis for every N, so N=1 pays the same lease and token sharing; other
settings at their defaults, logs to a file). Once every worker is logged in (its own
metrics), ``--clients`` load-client processes (bench/load_client.py, one connection
each, ``--concurrency`` calls in flight) run GetPositions over all accounts with the
cached read policy, as the throughput scenario does, at the same time. It prints the
summed calls/s, the slowest client's p99 and how the kernel spread the calls over the
workers (each worker's own `tg_rpc_duration_seconds_count`), with the core count: on a
machine with fewer cores than workers plus clients, the figure says little.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import re
import signal
import socket
import sys
import tempfile
import urllib.request
from pathlib import Path
from typing import Any

from bench import drivers
from bench.gateway_client import RPCS, build_request
from bench.tools.delta_log import private_redis
from trading_gateway.server.config import env_name
from trading_gateway.server.sim_settings import simulator_values
from trading_gateway.simulator import SimConfig, Simulator

RPC = "GetPositions"
SERVED = re.compile(
    rf'^tg_rpc_duration_seconds_count\{{code="OK",method="{RPC}"\}} (\S+)$', re.MULTILINE
)


def _free_run(count: int) -> int:
    for _ in range(50):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            base = int(probe.getsockname()[1])
        held = []
        try:
            for port in range(base, base + count):
                s = socket.socket()
                held.append(s)
                s.bind(("127.0.0.1", port))
            return base
        except OSError:
            continue
        finally:
            for s in held:
                s.close()
    raise SystemExit("no run of free ports")


def _metrics(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=3) as reply:
        return str(reply.read().decode())


async def _sample(port: int, pattern: re.Pattern[str]) -> float:
    text = await asyncio.to_thread(_metrics, port)
    found = pattern.search(text)
    return float(found[1]) if found else 0.0


LOGGED_IN = re.compile(r'^tg_component_up\{component="broker_login"\} (\S+)$', re.MULTILINE)


async def _all_logged_in(base: int, count: int) -> bool:
    try:
        return all([await _sample(base + i, LOGGED_IN) == 1 for i in range(count)])
    except OSError:
        return False


def _env(sim: Simulator, redis_url: str, listen: str, metrics: int) -> dict[str, str]:
    values: dict[str, Any] = simulator_values(
        rest_url=sim.rest_url,
        ws_url=sim.ws_url,
        md_url=sim.md_ws_url,
        credentials=sim.credentials,
        device_id="bench-workers",
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GATEWAY_", "TRADOVATE_"))}
    for field, value in values.items():
        secret = getattr(value, "get_secret_value", None)
        env[env_name(field)] = secret() if secret else str(value)
    env.update(
        {
            "REDIS_URL": redis_url,
            "GATEWAY_REPLICAS": "redis",
            "GATEWAY_TOKEN_PLAINTEXT": "true",
            "GATEWAY_LISTEN": listen,
            "GATEWAY_METRICS_PORT": str(metrics),
        }
    )
    return env


async def measure(workers: int, args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    with private_redis() as redis_url:
        async with Simulator(SimConfig(accounts=4, seed=7)).running(
            host="127.0.0.1", port=0
        ) as sim:
            with socket.socket() as probe:
                probe.bind(("127.0.0.1", 0))
                port = int(probe.getsockname()[1])
            metrics = _free_run(workers)
            listen = f"127.0.0.1:{port}"
            with (workdir / f"gateway-{workers}.log").open("wb") as log:
                proc = await asyncio.create_subprocess_exec(
                    sys.executable,
                    "-m",
                    "trading_gateway.server",
                    "serve",
                    "--workers",
                    str(workers),
                    env=_env(sim, redis_url, listen, metrics),
                    stdout=log,
                    stderr=log,
                )
            try:
                for _ in range(600):
                    if await _all_logged_in(metrics, workers):
                        break
                    await asyncio.sleep(0.1)
                else:
                    raise SystemExit(f"workers not ready; see {workdir}")
                request = build_request(RPC, [], "cache").SerializeToString()
                results = await asyncio.gather(
                    *(
                        drivers.closed_loop(
                            workdir,
                            listen,
                            RPCS[RPC].path,
                            request,
                            concurrency=args.concurrency,
                            seconds=args.seconds,
                            warmup=args.warmup,
                        )
                        for _ in range(args.clients)
                    )
                )
                spread = [int(await _sample(metrics + i, SERVED)) for i in range(workers)]
            finally:
                with contextlib.suppress(ProcessLookupError):
                    proc.send_signal(signal.SIGTERM)
                await proc.wait()
    return {
        "workers": workers,
        "calls_per_s": sum(r["calls_per_s"] for r in results),
        "p99_ms": max(r["latency"]["p99_ms"] for r in results),
        "errors": sum(sum(r.get("errors", {}).values()) for r in results),
        "spread": spread,
    }


async def main_async(args: argparse.Namespace) -> None:
    print(
        f"{RPC} (cached, 4 accounts), {args.clients} clients x {args.concurrency} in flight, "
        f"{args.seconds:g} s after {args.warmup:g} s warm-up; {os.cpu_count()} cores"
    )
    with tempfile.TemporaryDirectory(prefix="tg-bench-workers-") as folder:
        for workers in args.workers:
            row = await measure(workers, args, Path(folder))
            print(
                f"workers {row['workers']}: {row['calls_per_s']:8.0f} calls/s  "
                f"p99 {row['p99_ms']:6.1f} ms  errors {row['errors']}  "
                f"calls per worker {row['spread']}",
                flush=True,
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--warmup", type=float, default=1.0)
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
