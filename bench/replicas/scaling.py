"""Unary calls per second and stream fan-out with 1, 2, 4.. gateway processes on one login.

Unary: closed-loop LIVE reads (GetPositions over the simulator's first accounts,
READ_POLICY_FRESH, served from live state: the holder's own, the followers' mirrored) from
one load-client process (bench/load_client.py) per gateway process, ``concurrency`` calls in
flight in all, started together; calls/s summed, p99 the worst client's.

Streams: ``subscribers`` StreamUpdates streams spread evenly, one subscriber process
(bench/subscribers.py) per gateway process; a burst of simulator actions fans out to all of
them. Messages/s: the deltas made from upstream frames, as received, over the time from the
first one's numbering to the last receipt (bench/replicas/fanout.py ``burst``); beside it
what the simulator offered (the same deltas over the time it took to act): a burst the
gateways kept up with says only that their capacity is at least that. Latency: receipt
minus numbering.

Server CPU is every gateway process's (workers included), over the calls or messages.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.config import BenchConfig
from bench.drivers import write_request
from bench.gateway_client import RPCS, build_request
from bench.gateway_proc import client_metadata
from bench.machine import cpu_seconds
from bench.procs import METADATA_ENV, Child, start_child
from bench.replicas.cluster import GatewayProc
from bench.replicas.fanout import burst, expected, fan_out, latency
from bench.sim_proc import SimHandle

RPC = "GetPositions"
ACCOUNTS = 4


def _cpu(gateways: Sequence[GatewayProc]) -> float:
    return sum(cpu_seconds(pid) for g in gateways for pid in g.pids())


def split(total: int, parts: int) -> list[int]:
    """``total`` spread over ``parts`` as evenly as whole numbers allow."""
    return [total // parts + (1 if i < total % parts else 0) for i in range(parts)]


async def unary(
    workdir: Path,
    sim: SimHandle,
    config: BenchConfig,
    gateways: Sequence[GatewayProc],
    targets: Sequence[str],
    channels: int = 1,
) -> dict[str, Any]:
    """Closed-loop load from one client process per target, all started together."""
    names = [name for _, name in await sim.accounts()][:ACCOUNTS]
    request = write_request(workdir, build_request(RPC, names, "live").SerializeToString())
    go = workdir / f"go-{len(targets)}-{id(targets)}"
    env = {METADATA_ENV: json.dumps([list(m) for m in client_metadata()])}
    shares = split(config.replicas_unary_concurrency, len(targets))

    def args(target: str, concurrency: int) -> list[str]:
        return [
            *("--target", target, "--method", RPCS[RPC].path, "--request-file", str(request)),
            *("--concurrency", str(concurrency), "--channels", str(channels)),
            *("--duration", str(config.replicas_unary_seconds)),
            *("--warmup", str(config.replicas_unary_warmup), "--go-file", str(go)),
        ]

    started = await asyncio.gather(
        *(
            start_child(f"load-client-{i}", "bench.load_client", args(t, c), env=env)
            for i, (t, c) in enumerate(zip(targets, shares, strict=True))
        ),
        return_exceptions=True,
    )
    children = [c for c in started if isinstance(c, Child)]
    limit = config.replicas_unary_seconds + config.replicas_unary_warmup + 120
    try:
        for outcome in started:
            if isinstance(outcome, BaseException):
                raise outcome
        mark = await sim.call_mark()
        go.touch()
        await asyncio.sleep(config.replicas_unary_warmup)
        cpu0 = _cpu(gateways)
        results = await asyncio.gather(*(c.read_result(limit_s=limit) for c in children))
        cpu1 = _cpu(gateways)
        upstream = len(await sim.calls_since(mark))
    finally:
        await asyncio.gather(*(c.stop() for c in children), return_exceptions=True)
        go.unlink(missing_ok=True)
    calls = sum(int(r["calls"]) for r in results)
    errors: dict[str, int] = {}
    for r in results:
        for code, count in r["errors"].items():
            errors[code] = errors.get(code, 0) + int(count)
    return {
        "calls_per_s": sum(float(r["calls_per_s"]) for r in results),
        "p50_ms": max(float(r["latency"]["p50_ms"]) for r in results),
        "p99_ms": max(float(r["latency"]["p99_ms"]) for r in results),
        "server_cpu_us_per_call": (cpu1 - cpu0) / calls * 1e6 if calls else None,
        "upstream_calls": upstream,
        "errors": errors or None,
    }


async def streams(
    workdir: Path,
    sim: SimHandle,
    config: BenchConfig,
    gateways: Sequence[GatewayProc],
    targets: Sequence[str],
    channels: int = 1,
) -> dict[str, Any]:
    """A burst of actions fanned out to the subscribers spread over ``targets``."""
    cpu0 = _cpu(gateways)
    receipts, driven = await fan_out(
        workdir,
        sim,
        targets,
        split(config.replicas_subscribers, len(targets)),
        actions=config.replicas_stream_actions,
        rate=config.replicas_stream_rate,
        idle=1.0,
        channels=channels,
    )
    cpu1 = _cpu(gateways)
    delivered = sum(r.delivered for r in receipts)
    in_burst, seconds = burst(receipts)
    summary = latency(receipts)
    # What the simulator offered: every subscriber's share of the burst's deltas, over the
    # time it took to make the actions. Delivery close to it means the gateways kept up
    # (the burst did not saturate them): messages/s is then a floor of their capacity.
    drive_s = float(driven.get("seconds") or 0.0)
    offered = in_burst / drive_s if drive_s > 0 else None
    rate = in_burst / seconds if seconds else None
    return {
        "messages_per_s": rate,
        "offered_per_s": offered,
        "saturated": bool(rate and offered and rate < 0.8 * offered),
        "delivered": delivered,
        "expected": expected(receipts),
        "stream_p50_ms": summary.p50_ms,
        "stream_p99_ms": summary.p99_ms,
        "server_cpu_us_per_message": (cpu1 - cpu0) / delivered * 1e6 if delivered else None,
    }
