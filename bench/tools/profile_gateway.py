"""Where a gateway path spends its time: pyinstrument on the gateway's event-loop thread
while a separate client process loads one RPC.

    python -m bench.tools.profile_gateway --path live --rpc GetPositions --accounts 4 --seconds 5

Starts the simulator and one gateway (live, or cache-only for ``--path cache``) in their own
processes exactly as ``python -m bench`` does, primes the path, starts the profiler
(SIGUSR1), runs the closed-loop load client, stops the gateway (which writes the profile),
and prints the text report (also written to ``--out``). ``--path upstream`` profiles
READ_POLICY_UPSTREAM requests sent one at a time instead; ``--path stream`` profiles the
StreamUpdates fan-out to ``--subscribers`` streams while the simulator trades.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import tempfile
from pathlib import Path
from typing import Any

from bench import drivers
from bench.config import QUICK
from bench.gateway_client import RPCS, GatewayClient, build_request
from bench.gateway_proc import client_metadata, start_one
from bench.scenarios.streaming import STREAM, stream_request
from bench.sim_proc import start_sim

logger = logging.getLogger(__name__)


async def profile(args: argparse.Namespace, workdir: Path, out: Path) -> None:
    missing: dict[str, str] = {}
    config = QUICK
    sim = await start_sim(config, missing)
    if sim is None:
        raise SystemExit(f"simulator unavailable: {missing}")
    try:
        await sim.set_latency(args.latency_ms, 0.0)
        gateway = await start_one(
            "gateway-profiled", sim, workdir, live=args.path != "cache", profile=out
        )
        try:
            target = gateway.ready["address"]
            names = [n for _, n in await sim.accounts()][: args.accounts]
            if args.path == "stream":
                await profile_stream(args, workdir, gateway, sim)
                return
            async with GatewayClient(target, client_metadata()) as client:
                await client.prime(args.rpc, names, args.path, target)
                gateway.proc.send_signal(signal.SIGUSR1)
                await asyncio.sleep(0.2)
                if args.path == "upstream":
                    result: dict[str, Any] = {"requests": 0}
                    loop = asyncio.get_running_loop()
                    end = loop.time() + args.seconds
                    while loop.time() < end:
                        await client.call(args.rpc, names, "upstream", target)
                        result["requests"] += 1
                else:
                    request = build_request(args.rpc, names, args.path).SerializeToString()
                    result = await drivers.closed_loop(
                        workdir,
                        target,
                        RPCS[args.rpc].path,
                        request,
                        concurrency=args.concurrency,
                        seconds=args.seconds,
                        warmup=0.0,
                        metadata=client_metadata(),
                    )
            print(f"load: {result}")
        finally:
            await gateway.stop(grace=30)
    finally:
        await sim.child.stop()
        await sim.aclose()


async def profile_stream(args: argparse.Namespace, workdir: Path, gateway: Any, sim: Any) -> None:
    """``--subscribers`` StreamUpdates subscribers in a separate process while the simulator
    makes ``--events`` random trading actions at ``--rate`` per second."""
    await sim.set_latency(0.0, 0.0)

    async def produce() -> Any:
        gateway.proc.send_signal(signal.SIGUSR1)
        await asyncio.sleep(0.2)
        return await sim.drive_events(args.events, args.rate)

    result, produced = await drivers.with_subscribers(
        workdir,
        gateway.ready["address"],
        STREAM,
        stream_request(),
        subscribers=args.subscribers,
        expect=0,
        mode="gateway",
        produce=produce,
        idle=1.0,
        metadata=client_metadata(),
    )
    delivered = sum(len(v) for v in result["deltas"].values())
    print(f"stream: {args.subscribers} subscribers, {delivered} deltas received; sim {produced}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--path", choices=("cache", "live", "upstream", "stream"), default="live")
    parser.add_argument("--rpc", choices=sorted(RPCS), default="GetPositions")
    parser.add_argument("--accounts", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--latency-ms", type=float, default=20.0)
    parser.add_argument("--subscribers", type=int, default=1000, help="--path stream")
    parser.add_argument("--events", type=int, default=40, help="--path stream")
    parser.add_argument("--rate", type=float, default=20.0, help="--path stream: events/s")
    parser.add_argument("--out", default="bench/results/profile.txt")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    out = Path(args.out).resolve()
    with tempfile.TemporaryDirectory(prefix="tg-profile-") as tmp:
        asyncio.run(profile(args, Path(tmp), out))
    print(out.read_text())


if __name__ == "__main__":
    main()
