"""Quick check: GetPositions for 4 accounts with 250 ms of injected upstream latency.

    .venv/bin/python -m bench.tools.smoke_positions [--calls 10] [--latency-ms 250] [--live]

Simulator and gateway run in this process; the client runs in a child process (as a
real caller would), sequentially, one call at a time. Prints medians for:
- fresh reads (READ_POLICY_FRESH, live state off: one upstream call per request),
- cached reads (READ_POLICY_CACHED, a warm 1 s TTL cache),
- with --live, fresh reads served from the live user-sync state.
The report this project descends from measured 400-800 ms for fresh positions.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from typing import Any

import grpc
from tradovate_gateway.v1 import trading_pb2 as pb
from tradovate_gateway.v1 import trading_pb2_grpc as pb_grpc

from trading_gateway.server.config import load_settings
from trading_gateway.server.demo import demo_settings
from trading_gateway.server.main import Gateway
from trading_gateway.server.runner import run
from trading_gateway.simulator import SimConfig, Simulator


async def _timed(stub: Any, policy: pb.ReadPolicy.ValueType, calls: int) -> list[float]:
    samples = []
    for _ in range(calls):
        started = time.perf_counter()
        reply = await stub.GetPositions(pb.GetPositionsRequest(read_policy=policy), timeout=10)
        samples.append((time.perf_counter() - started) * 1000)
        assert all(a.meta.status.code == 0 for a in reply.accounts), reply
    return samples


def _line(name: str, samples: list[float]) -> str:
    ordered = sorted(samples)
    return (
        f"{name:<28} median {statistics.median(ordered):8.2f} ms   "
        f"min {ordered[0]:8.2f}   max {ordered[-1]:8.2f}   (n={len(ordered)})"
    )


async def client_phase(address: str, calls: int, live: bool) -> list[str]:
    """The measuring client (runs in the child process)."""
    async with grpc.aio.insecure_channel(address) as channel:
        stub = pb_grpc.TradingServiceStub(channel)
        lines = []
        if live:
            lines.append(
                _line("fresh (LIVE state)", await _timed(stub, pb.READ_POLICY_FRESH, calls))
            )
        upstream = await _timed(stub, pb.READ_POLICY_UPSTREAM, calls)
        lines.append(_line("fresh (upstream call)", upstream))
        await _timed(stub, pb.READ_POLICY_UPSTREAM, 1)  # fill the cache
        cached = await _timed(stub, pb.READ_POLICY_CACHED, max(calls, 50))
        lines.append(_line("cached (TTL cache hits)", cached))
        return lines


async def measure(calls: int, latency_ms: float, live: bool) -> list[str]:
    async with Simulator(SimConfig(accounts=4, seed=7)).running() as sim:
        base = load_settings(
            listen="127.0.0.1:0",
            metrics_port=0,
            access_log=False,
            redis_url="",
            live_enabled=live,
            log_level="WARNING",
        )
        async with Gateway(demo_settings(base, sim)) as gateway:
            await gateway.wait_ready(20)
            async with grpc.aio.insecure_channel(gateway.address) as channel:
                warm = pb_grpc.TradingServiceStub(channel)
                await _timed(warm, pb.READ_POLICY_UPSTREAM, 3)  # contracts, account list
            sim.control.set_latency(ms=latency_ms)
            args = ["--client", gateway.address, "--calls", str(calls)]
            child = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "bench.tools.smoke_positions",
                *args,
                *(["--live"] if live else []),
                stdout=asyncio.subprocess.PIPE,
            )
            out, _ = await child.communicate()
            header = f"4 accounts, {latency_ms:.0f} ms injected upstream latency"
            return [header, *out.decode().splitlines()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=10)
    parser.add_argument("--latency-ms", type=float, default=250.0)
    parser.add_argument("--live", action="store_true", help="also measure live-state reads")
    parser.add_argument("--client", metavar="ADDRESS", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.client:
        lines = asyncio.run(client_phase(args.client, args.calls, args.live))
    else:
        lines = run(measure(args.calls, args.latency_ms, args.live))  # uvloop, as `serve` does
    print("\n".join(lines), flush=True)


if __name__ == "__main__":
    main()
