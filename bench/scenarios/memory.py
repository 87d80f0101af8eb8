"""Scenario 6: peak RSS of the gateway with every simulator account (1000 in the full run)
and 1000 subscribers connected, beside the bare fan-out server with as many subscribers.

The streaming scenario already connects that many subscribers to both servers; it samples
each server's resident memory while they are connected, and this scenario reports it with
each process's high-water mark. Run alone, it connects the subscribers itself.
"""

from __future__ import annotations

from typing import Any

from bench.context import Context
from bench.floors import measure as floor
from bench.machine import peak_rss_mib, rss_mib
from bench.results import ScenarioResult
from bench.scenarios.streaming import gateway_fanout


def row(process: str, pid: int, accounts: int, subscribers: int, during: float) -> dict[str, Any]:
    return {
        "process": process,
        "accounts": accounts,
        "subscribers": subscribers,
        "peak_rss_mib": round(peak_rss_mib(pid), 1),
        "rss_mib": round(during, 1),
    }


async def run(ctx: Context, out: ScenarioResult) -> None:
    n = ctx.config.memory_subscribers
    stack = ctx.stack
    accounts = ctx.config.sim_accounts
    sampled: dict[tuple[str, int], float] = ctx.shared.setdefault("stream_rss", {})
    if ("floor", n) not in sampled:
        measured = await floor.fanout(
            ctx.workdir,
            stack.floor_target,
            subscribers=n,
            events=5,
            rate=10.0,
            server_pid=stack.floor.pid,
        )
        sampled[("floor", n)] = measured["rss_mib"]
    out.rows.append(row("bare grpc.aio fan-out", stack.floor.pid, 0, n, sampled[("floor", n)]))
    if stack.gateway is None or stack.sim is None:
        out.notes.append(f"gateway not available ({stack.missing.get('gateway')})")
        return
    gateway, sim = stack.gateway, stack.sim
    if ("gateway", n) not in sampled:
        mine = await gateway_fanout(ctx, n, 10, 10.0)
        sampled[("gateway", n)] = mine["sim"]["rss_mib"]
    out.rows.append(row("gateway (live)", gateway.pid, accounts, n, sampled[("gateway", n)]))
    out.rows.append(
        row("gateway (cache only)", gateway.cache_pid, accounts, 0, rss_mib(gateway.cache_pid))
    )
    out.rows.append(row("simulator", sim.pid, accounts, 0, rss_mib(sim.pid)))
    out.notes.append(
        "Peak RSS is each process's high-water mark over the whole run (every earlier scenario"
        f" included). 'RSS sampled' is the server's resident set sampled while the {n}"
        " subscribers were connected (for the others: at the end)."
    )
