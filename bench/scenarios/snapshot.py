"""Scenario 2: GetSnapshot (accounts, positions, orders and balances in one call) against
the same ideal: the slowest chain of upstream calls that request caused."""

from __future__ import annotations

from typing import Any

from bench import drivers
from bench.context import Context
from bench.floors.measure import store as floor_store
from bench.floors.server import UNARY as FLOOR_UNARY
from bench.gateway_client import RPCS, GatewayClient, build_request
from bench.results import ScenarioResult
from bench.scenarios.fresh import fast_note, gateway_row, upstream_requests
from bench.stats import ratio

RPC = "GetSnapshot"


async def run(ctx: Context, out: ScenarioResult) -> None:
    sim = ctx.stack.require_sim()
    gateway = ctx.stack.require_gateway()
    names = [n for _, n in await sim.accounts()]
    config = ctx.config
    async with GatewayClient(gateway.target, gateway.metadata) as client:
        for profile in config.profiles:
            await sim.set_latency(profile.mean_ms, profile.jitter_ms)
            for n in config.snapshot_accounts:
                selected = names[:n] if n < len(names) else []
                timed = await upstream_requests(ctx, client, RPC, selected)
                row = gateway_row(ctx, profile.name, RPC, n, timed)
                row.pop("rpc")
                out.rows.append(row)
        jobs: list[dict[str, Any]] = []
        keys: list[tuple[int, str, int]] = []
        for n in config.snapshot_accounts:
            selected = names[:n] if n < len(names) else []
            for path in ("cache", "live"):
                target = gateway.target if path == "live" else gateway.cache_target
                response, _ = await client.prime(RPC, selected, path, target)
                key = f"{RPC}-{n}-{path}"
                size = await floor_store(ctx.stack.floor_target, key, response)
                request = build_request(RPC, selected, path).SerializeToString()
                calls_n = config.fast_calls if n <= 16 else max(20, config.fast_calls // 4)
                for tgt, method, body, md in (
                    (target, RPCS[RPC].path, request, list(gateway.metadata)),
                    (ctx.stack.floor_target, FLOOR_UNARY, key.encode(), []),
                ):
                    jobs.append(
                        {
                            "target": tgt,
                            "method": method,
                            "request_hex": body.hex(),
                            "calls": calls_n,
                            "warmup_calls": max(5, calls_n // 4),
                            "metadata": md,
                            "max_seconds": config.fast_job_seconds,
                            "mark_url": sim.mark_url if tgt != ctx.stack.floor_target else "",
                        }
                    )
                keys.append((n, path, size))
    results = await drivers.sequential_jobs(ctx.workdir, jobs)
    for idx, (n, path, size) in enumerate(keys):
        mine, bare = results[2 * idx]["latency"], results[2 * idx + 1]["latency"]
        r = ratio(mine["p50_ms"], bare["p50_ms"])
        out.rows.append(
            {
                "profile": "none (no upstream call)",
                "accounts": n,
                "path": path,
                "n": mine["n"],
                "p50_ms": mine["p50_ms"],
                "p99_ms": mine["p99_ms"],
                "floor_p50_ms": bare["p50_ms"],
                "floor_ratio_p50": r,
                "calls_per_request": 0,
                "target_ok": r <= 1.15,
                "upstream_calls_during": results[2 * idx]["upstream_calls"],
                "note": fast_note(size, {}, results[2 * idx]),
            }
        )
    out.notes.append(
        "The snapshot's ideal is its longest dependency chain over every account: orders then"
        " (versions | fills), positions (then contract data when needed), or the slowest single"
        " cash-balance or margin call (bench/ideal.py)."
    )
