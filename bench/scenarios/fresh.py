"""Scenario 1: GetPositions, GetOrders and GetBalances across 4..1000 accounts, through the
report's "before" and "after", and the gateway's upstream, cache and live paths.

Upstream-bound paths are timed per request in this process (their latency is hundreds of
ms; client overhead is noise) and each request's ideal comes from the upstream calls it
caused. The cache and live paths make no upstream call; they are timed from a separate
client process and compared with the bare grpc.aio server returning the very same bytes.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass, field
from typing import Any

from bench import drivers
from bench.baselines import plan as baseline_plan
from bench.config import LatencyProfile
from bench.context import Context
from bench.floors.measure import store as floor_store
from bench.floors.server import UNARY as FLOOR_UNARY
from bench.gateway_client import RPCS, GatewayClient, build_request
from bench.ideal import ideal_ns
from bench.procs import child
from bench.results import ScenarioResult
from bench.sim_proc import SimHandle
from bench.stats import now_ns, percentile, ratio, summarize_ns

logger = logging.getLogger(__name__)

FAST_PROFILE = "none (no upstream call)"


def fresh_target_ok(latencies: list[int], ideals: list[int]) -> bool | None:
    """Target: p50 over requests of (latency - 1.02 x ideal) is at most 3 ms."""
    if not latencies:
        return None
    excess = sorted((lat - 1.02 * ide) / 1e6 for lat, ide in zip(latencies, ideals, strict=True))
    return percentile(excess, 50) <= 3.0


def upstream_row(
    profile: str,
    rpc: str,
    accounts: int,
    path: str,
    latencies: list[int],
    ideals: list[int],
    calls: list[int],
    note: str = "",
    scale: float = 1.0,
) -> dict[str, Any]:
    """A row for a path that calls upstream. ``scale`` extrapolates a sampled loop."""
    scaled = [int(v * scale) for v in latencies]
    lat = summarize_ns(scaled)
    ide = summarize_ns(ideals)
    ratios = sorted(v / i for v, i in zip(scaled, ideals, strict=True) if i > 0)
    return {
        "profile": profile,
        "rpc": rpc,
        "accounts": accounts,
        "path": path,
        "n": lat.n,
        "p50_ms": lat.p50_ms,
        "p99_ms": lat.p99_ms,
        "ideal_p50_ms": ide.p50_ms,
        "ratio_p50": percentile(ratios, 50) if ratios else math.nan,
        "ratio_p99": percentile(ratios, 99) if ratios else math.nan,
        "overhead_p50_ms": lat.p50_ms - ide.p50_ms,
        "calls_per_request": (sum(calls) / len(calls) * scale) if calls else math.nan,
        "target_ok": fresh_target_ok(scaled, ideals) if path == "upstream" else None,
        "note": note,
    }


async def run_baselines(
    ctx: Context, profile: LatencyProfile, account_ids: list[int]
) -> list[dict[str, Any]]:
    """The report's before/after loops, run in their own process, exact or extrapolated."""
    sim = ctx.stack.require_sim()
    cases = baseline_plan.cases(ctx.config, profile, account_ids)
    plan_file = ctx.workdir / f"plan-{profile.mean_ms:.0f}.json"
    plan_file.write_text(json.dumps({"cases": [c.to_json() for c in cases]}))
    creds_file = ctx.workdir / "credentials.json"
    creds_file.write_text(json.dumps(sim.credentials))
    args = ["--rest-url", sim.rest_url, "--credentials", str(creds_file), "--plan", str(plan_file)]
    async with child("baselines", "bench.baselines.worker", args) as worker:
        result = await worker.read_result(limit_s=900)
    logger.info("fresh %s baselines done (%d cases)", profile.name, len(cases))
    threads = int(result["threads"])
    by_key = {(c["rpc"], c["path"], len(c["accounts"])): c for c in result["cases"]}
    rows = []
    for rpc in ctx.config.rpcs:
        for n in ctx.config.account_counts:
            for path in ("before", "after"):
                measured_n = baseline_plan.measured_accounts(ctx.config, profile, path, n, rpc)
                case = by_key[(rpc, path, measured_n)]
                reqs = case["requests"]
                scale = baseline_plan.scale(path, n, measured_n, threads)
                note = ""
                if scale != 1.0:
                    note = f"extrapolated x{scale:.1f} from {measured_n} accounts"
                if path == "after":
                    note = (note + "; " if note else "") + f"{threads} threads"
                rows.append(
                    upstream_row(
                        profile.name,
                        rpc,
                        n,
                        path,
                        [r["latency_ns"] for r in reqs],
                        [ideal_ns(r["calls"]) for r in reqs],
                        [len(r["calls"]) for r in reqs],
                        note,
                        scale,
                    )
                )
    return rows


@dataclass
class Timed:
    """Upstream-path requests: latency, ideal, upstream call count, and the time the gateway
    spent before its first upstream call began and after its last one ended (ns)."""

    latencies: list[int] = field(default_factory=list)
    ideals: list[int] = field(default_factory=list)
    calls: list[int] = field(default_factory=list)
    before: list[int] = field(default_factory=list)
    after: list[int] = field(default_factory=list)


async def upstream_requests(
    ctx: Context,
    client: GatewayClient,
    rpc: str,
    selected: list[str],
    *,
    sim: SimHandle | None = None,
    iterations: int | None = None,
    budget_s: float | None = None,
) -> Timed:
    """Time READ_POLICY_UPSTREAM requests one at a time.

    The first request is a warm-up unless it is slow (over 1 s, e.g. 1000 per-account balance
    snapshots at 250 ms); then as many requests as fit in the cell budget, at least one.
    ``sim`` (default: the stack's), ``iterations`` and ``budget_s`` (default: the config's
    fresh iterations and cell budget) serve scenarios with their own simulator and sizes.
    """
    sim = sim or ctx.stack.require_sim()
    config = ctx.config
    out = Timed()
    planned = (iterations or config.fresh_iterations) + config.fresh_warmup
    budget = config.cell_budget_s if budget_s is None else budget_s
    done = 0
    spent = 0.0
    while done < planned:
        mark = await sim.call_mark()
        start = now_ns()
        await client.call(rpc, selected, "upstream")
        end = now_ns()
        upstream = await sim.calls_detail_since(mark)
        latency = end - start
        done += 1
        spent += latency / 1e9
        if done <= config.fresh_warmup and latency < 1e9:
            continue
        # Calls this request made; of those, the ones it waited for. A hedge that lost (or
        # any call still running when the reply went out) costs upstream but not latency.
        made = [(e, s, d) for e, s, d in upstream if start <= s <= end]
        waited = [(e, s, d) for e, s, d in made if s + d <= end]
        out.latencies.append(latency)
        out.ideals.append(ideal_ns((e, d) for e, _, d in waited))
        out.calls.append(len(made))
        if waited:
            out.before.append(min(s for _, s, _ in waited) - start)
            out.after.append(end - max(s + d for _, s, d in waited))
        if spent + latency / 1e9 > budget:
            break
    return out


async def run_gateway_upstream(
    ctx: Context, profile: LatencyProfile, names: list[str]
) -> list[dict[str, Any]]:
    """Path (c): READ_POLICY_UPSTREAM through the gateway, one request at a time."""
    gateway = ctx.stack.require_gateway()
    rows = []
    async with GatewayClient(gateway.target, gateway.metadata) as client:
        for rpc in ctx.config.rpcs:
            for n in ctx.config.account_counts:
                selected = names[:n] if n < len(names) else []
                timed = await upstream_requests(ctx, client, rpc, selected)
                rows.append(gateway_row(ctx, profile.name, rpc, n, timed))
                logger.info(
                    "fresh %s %s n=%d upstream p50 %.1f ms",
                    profile.name,
                    rpc,
                    n,
                    rows[-1]["p50_ms"],
                )
    return rows


def gateway_row(
    ctx: Context, profile: str, rpc: str, accounts: int, timed: Timed
) -> dict[str, Any]:
    note = ""
    if len(timed.latencies) < ctx.config.fresh_iterations:
        note = f"{len(timed.latencies)} request(s) (slow cell, time budget)"
    row = upstream_row(
        profile, rpc, accounts, "upstream", timed.latencies, timed.ideals, timed.calls, note
    )
    row["before_upstream_p50_ms"] = summarize_ns(timed.before).p50_ms
    row["after_upstream_p50_ms"] = summarize_ns(timed.after).p50_ms
    return row


def fast_note(size: int, sources: dict[str, int], measured: dict[str, Any]) -> str:
    """Payload size, and whether the path stayed a pure cache/live path while timed."""
    parts = [f"{size:,} B"]
    bad = {k: v for k, v in sources.items() if k not in ("SOURCE_CACHE", "SOURCE_LIVE")}
    if bad:
        parts.append(f"sources {sources}")
    if measured.get("upstream_calls"):
        parts.append(f"{measured['upstream_calls']} upstream calls while timed (TTL refresh)")
    if measured["calls"] < 20:
        parts.append(f"{measured['calls']} calls (time cap)")
    return "; ".join(parts)


def fast_calls(config_calls: int, accounts: int) -> int:
    """Fewer sequential calls for the big payloads, so the run stays bounded."""
    if accounts <= 16:
        return config_calls
    return max(20, config_calls * 16 // accounts)


async def run_fast_paths(ctx: Context, names: list[str]) -> list[dict[str, Any]]:
    """Paths (d) cache and (e) live, each beside the bare server returning the same bytes."""
    gateway = ctx.stack.require_gateway()
    sim = ctx.stack.require_sim()
    floor = ctx.stack.floor_target
    jobs: list[dict[str, Any]] = []
    keys: list[tuple[str, int, str, int]] = []
    async with GatewayClient(gateway.target, gateway.metadata) as client:
        for rpc in ctx.config.rpcs:
            for n in ctx.config.account_counts:
                selected = names[:n] if n < len(names) else []
                calls = fast_calls(ctx.config.fast_calls, n)
                warm = max(5, ctx.config.fast_warmup * calls // ctx.config.fast_calls)
                for path in ("cache", "live"):
                    target = gateway.target if path == "live" else gateway.cache_target
                    response, sources = await client.prime(rpc, selected, path, target)
                    key = f"{rpc}-{n}-{path}"
                    size = await floor_store(floor, key, response)
                    ctx.shared.setdefault("payload_bytes", {})[key] = size
                    ctx.shared.setdefault("sources", {})[key] = sources
                    request = build_request(rpc, selected, path).SerializeToString()
                    for tgt, method, body in (
                        (target, RPCS[rpc].path, request),
                        (floor, FLOOR_UNARY, key.encode()),
                    ):
                        jobs.append(
                            {
                                "target": tgt,
                                "method": method,
                                "request_hex": body.hex(),
                                "calls": calls,
                                "warmup_calls": warm,
                                "metadata": gateway.metadata if tgt != floor else [],
                                "max_seconds": ctx.config.fast_job_seconds,
                                "mark_url": sim.mark_url if tgt != floor else "",
                            }
                        )
                    keys.append((rpc, n, path, size))
    results = await drivers.sequential_jobs(ctx.workdir, jobs)
    rows = []
    for idx, (rpc, n, path, size) in enumerate(keys):
        mine, bare = results[2 * idx], results[2 * idx + 1]
        lat, floor_lat = mine["latency"], bare["latency"]
        sources = ctx.shared["sources"][f"{rpc}-{n}-{path}"]
        rows.append(
            {
                "profile": FAST_PROFILE,
                "rpc": rpc,
                "accounts": n,
                "path": path,
                "n": lat["n"],
                "p50_ms": lat["p50_ms"],
                "p99_ms": lat["p99_ms"],
                "floor_p50_ms": floor_lat["p50_ms"],
                "floor_p99_ms": floor_lat["p99_ms"],
                "floor_ratio_p50": ratio(lat["p50_ms"], floor_lat["p50_ms"]),
                "calls_per_request": 0,
                "payload_bytes": size,
                "target_ok": ratio(lat["p50_ms"], floor_lat["p50_ms"]) <= 1.15,
                "errors": mine["errors"] or None,
                "upstream_calls_during": mine["upstream_calls"],
                "note": fast_note(size, sources, mine),
            }
        )
    return rows


async def run(ctx: Context, out: ScenarioResult) -> None:
    sim = ctx.stack.require_sim()
    accounts = await sim.accounts()
    ids = [a for a, _ in accounts]
    names = [n for _, n in accounts]
    gateway_ok = ctx.stack.gateway is not None
    if not gateway_ok:
        out.notes.append(f"gateway paths not run: {ctx.stack.missing.get('gateway')}")
    for profile in ctx.config.profiles:
        await sim.set_latency(profile.mean_ms, profile.jitter_ms)
        out.rows += await run_baselines(ctx, profile, ids)
        if gateway_ok:
            out.rows += await run_gateway_upstream(ctx, profile, names)
    if gateway_ok:
        # A cache path that misses waits for upstream; the nearer profile keeps that visible
        # but bounded (misses show up as upstream calls in the row's note).
        near = ctx.config.profiles[-1]
        await sim.set_latency(near.mean_ms, near.jitter_ms)
        out.rows += await run_fast_paths(ctx, names)
    out.notes += [
        "Baselines run in their own process; `after` uses asyncio.to_thread on the default"
        " executor, whose size caps its concurrency (the report's code does the same).",
        "Rows marked extrapolated ran the loop on fewer accounts and scaled the time (a"
        " sequential loop is linear in accounts; a thread pool is linear in waves of"
        " `threads` accounts); their ideal is the sample's.",
        "Cache and live rows make no upstream call, so their profile is irrelevant; they are"
        " compared with the bare grpc.aio twin (same response bytes) instead of an ideal.",
        "Gateway `upstream calls / req` counts the calls that started while the request was in"
        " flight, hedged re-sends it did not wait for included; the ideal and the before/after"
        " split use only the calls it waited for (those that ended before its reply).",
    ]
