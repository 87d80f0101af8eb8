"""Scenario 4: cached and live unary RPCs per second on 2 cores, many concurrent clients in
a separate process, p99 under that load; the bare grpc.aio server returning the same bytes,
measured in the same run, is the ceiling."""

from __future__ import annotations

from typing import Any

from bench import drivers
from bench.context import Context
from bench.floors.measure import store as floor_store
from bench.floors.server import UNARY as FLOOR_UNARY
from bench.gateway_client import RPCS, GatewayClient, build_request
from bench.machine import cpu_seconds
from bench.results import ScenarioResult
from bench.stats import ratio

RPC = "GetPositions"
ACCOUNTS = 4


async def measure(
    ctx: Context,
    label: str,
    target: str,
    method: str,
    request: bytes,
    metadata: list[tuple[str, str]],
    server_pid: int,
) -> dict[str, Any]:
    config = ctx.config
    cpu0 = cpu_seconds(server_pid)
    result = await drivers.closed_loop(
        ctx.workdir,
        target,
        method,
        request,
        concurrency=config.throughput_concurrency,
        seconds=config.throughput_seconds,
        warmup=config.throughput_warmup,
        metadata=metadata,
    )
    server_cpu = cpu_seconds(server_pid) - cpu0
    lat = result["latency"]
    total = result["calls_per_s"] * (config.throughput_seconds + config.throughput_warmup)
    return {
        "target": label,
        "rpc": RPC,
        "accounts": ACCOUNTS,
        "concurrency": config.throughput_concurrency,
        "calls_per_s": result["calls_per_s"],
        "p50_ms": lat["p50_ms"],
        "p99_ms": lat["p99_ms"],
        "client_cpu_us_per_call": result["client_cpu_us_per_call"],
        "server_cpu_us_per_call": server_cpu / total * 1e6 if total else None,
        "errors": result["errors"] or None,
    }


async def run(ctx: Context, out: ScenarioResult) -> None:
    gateway = ctx.stack.gateway
    floor = ctx.stack.floor_target
    key = f"{RPC}-{ACCOUNTS}-cache"
    names: list[str] = []
    if gateway is not None and ctx.stack.sim is not None:
        names = [n for _, n in await ctx.stack.sim.accounts()][:ACCOUNTS]
        async with GatewayClient(gateway.target, gateway.metadata) as client:
            response, _ = await client.prime(RPC, names, "cache", gateway.cache_target)
        await floor_store(floor, key, response)
    else:
        out.notes.append(
            f"gateway not available ({ctx.stack.missing.get('gateway')}): floor only,"
            " with an empty response"
        )
    floor_row = await measure(
        ctx, "bare grpc.aio", floor, FLOOR_UNARY, key.encode(), [], ctx.stack.floor.pid
    )
    out.rows.append(floor_row)
    if gateway is None:
        return
    for path, target, pid in (
        ("cache", gateway.cache_target, gateway.cache_pid),
        ("live", gateway.target, gateway.pid),
    ):
        request = build_request(RPC, names, path).SerializeToString()
        row = await measure(
            ctx,
            f"gateway {path}",
            target,
            RPCS[RPC].path,
            request,
            list(gateway.metadata),
            pid,
        )
        row["ratio_vs_floor"] = ratio(row["calls_per_s"], floor_row["calls_per_s"])
        row["target_ok"] = row["ratio_vs_floor"] >= 0.8
        out.rows.append(row)
    out.notes.append(
        f"{RPC} over {ACCOUNTS} accounts; the bare server returns the gateway's own response"
        " bytes. Client and server share the same 2 cores."
    )
