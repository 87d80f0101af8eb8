"""Scenario 5: upstream economy. How many upstream calls 100 concurrent identical requests
cause, and how many a minute of steady traffic causes, per path; the report's designs make
one call per account per request, measured here the same way."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from bench.config import LatencyProfile
from bench.context import Context
from bench.gateway_client import GatewayClient
from bench.procs import child
from bench.results import ScenarioResult

RPC = "GetPositions"
ACCOUNTS = 4
# Longer than the positions TTL (1 s by default), so the cache burst starts cold.
COLD_WAIT_S = 1.1


async def report_burst(ctx: Context, account_ids: list[int], concurrent: int) -> int:
    """Upstream calls for ``concurrent`` simultaneous "after" requests (the report's design)."""
    sim = ctx.stack.require_sim()
    plan = {
        "cases": [
            {
                "rpc": RPC,
                "path": "after",
                "accounts": account_ids,
                "iterations": 1,
                "warmup": 0,
                "concurrent": concurrent,
            }
        ]
    }
    plan_file = ctx.workdir / "economy-plan.json"
    plan_file.write_text(json.dumps(plan))
    creds = ctx.workdir / "credentials.json"
    creds.write_text(json.dumps(sim.credentials))
    args = ["--rest-url", sim.rest_url, "--credentials", str(creds), "--plan", str(plan_file)]
    async with child("baselines", "bench.baselines.worker", args) as worker:
        result = await worker.read_result(limit_s=600)
    return len(result["cases"][0]["requests"][0]["calls"])


async def steady(
    client: GatewayClient, names: list[str], path: str, target: str, rate: float, seconds: float
) -> int:
    """Send ``rate`` requests/s for ``seconds`` (open loop); returns how many were sent."""
    interval = 1.0 / rate
    start = time.monotonic()
    sent = 0
    pending: set[asyncio.Task[Any]] = set()
    try:
        while time.monotonic() - start < seconds:
            task = asyncio.ensure_future(client.call(RPC, names, path, target))
            pending.add(task)
            task.add_done_callback(pending.discard)
            sent += 1
            await asyncio.sleep(max(0.0, start + sent * interval - time.monotonic()))
        await asyncio.gather(*pending)
    finally:
        for task in pending:
            task.cancel()
    return sent


async def run(ctx: Context, out: ScenarioResult) -> None:
    sim = ctx.stack.require_sim()
    config = ctx.config
    profile: LatencyProfile = config.profiles[-1]
    await sim.set_latency(profile.mean_ms, profile.jitter_ms)
    accounts = await sim.accounts()
    ids = [a for a, _ in accounts][-ACCOUNTS:]
    names = [n for _, n in accounts][-ACCOUNTS:]
    n = config.economy_concurrent
    mark = await sim.call_mark()
    calls = await report_burst(ctx, ids, n)
    sim_calls = len(await sim.calls_since(mark))
    out.rows.append(
        {
            "case": f"{n} concurrent identical requests",
            "path": "report after",
            "requests": n,
            "upstream_calls": sim_calls,
            "detail": f"client counted {calls}",
        }
    )
    gateway = ctx.stack.gateway
    if gateway is None:
        out.notes.append(f"gateway not available ({ctx.stack.missing.get('gateway')})")
        return
    async with GatewayClient(gateway.target, gateway.metadata) as client:
        for path, target in (
            ("upstream", gateway.target),
            ("cache", gateway.cache_target),
            ("live", gateway.target),
        ):
            await asyncio.sleep(COLD_WAIT_S if path == "cache" else 0)
            mark = await sim.call_mark()
            await asyncio.gather(*(client.call(RPC, names, path, target) for _ in range(n)))
            made = len(await sim.calls_since(mark))
            out.rows.append(
                {
                    "case": f"{n} concurrent identical requests",
                    "path": f"gateway {path}",
                    "requests": n,
                    "upstream_calls": made,
                    "detail": "cold cache" if path == "cache" else "",
                }
            )
        rate, seconds = config.economy_steady_rate, config.economy_steady_seconds
        for path, target in (("cache", gateway.cache_target), ("live", gateway.target)):
            mark = await sim.call_mark()
            sent = await steady(client, names, path, target, rate, seconds)
            made = len(await sim.calls_since(mark))
            out.rows.append(
                {
                    "case": f"steady {rate:g} req/s for {seconds:g} s",
                    "path": f"gateway {path}",
                    "requests": sent,
                    "upstream_calls": made,
                    "upstream_calls_per_min": made * 60.0 / seconds,
                }
            )
    per_request = out.rows[0]["upstream_calls"] / n
    out.rows.append(
        {
            "case": f"steady {config.economy_steady_rate:g} req/s",
            "path": "report after",
            "requests": None,
            "upstream_calls": None,
            "upstream_calls_per_min": per_request * config.economy_steady_rate * 60,
            "detail": f"measured {per_request:g} calls/request above x rate (positions uncached"
            " in the report)",
        }
    )
    out.notes.append(
        f"{RPC} over {ACCOUNTS} accounts with upstream latency {profile.name}; counts come from"
        " the simulator's per-call record."
    )
