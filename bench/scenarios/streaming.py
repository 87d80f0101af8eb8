"""Scenario 3: latency from simulator event to subscriber receipt (p50, p99, max) with 1, 100
and 1000 subscribers, and the maximum sustained events per second; beside it, in the same
run, a bare grpc.aio server fanning the same StreamUpdate out to as many subscribers."""

from __future__ import annotations

import asyncio
import math
from typing import Any

import grpc
from tradovate_gateway.v1 import trading_pb2

from bench import drivers
from bench.context import Context
from bench.floors import measure as floor
from bench.gateway_client import SERVICE
from bench.machine import cpu_seconds, cpu_seconds_when_quiet, rss_mib
from bench.results import ScenarioResult
from bench.stats import ratio, summarize_ns

STREAM = f"/{SERVICE}/StreamUpdates"
# Deltas that carry one upstream entity change. PnL deltas are derived (and may be paced by
# the gateway), so they are reported apart, per kind, not in the comparison with the floor.
ENTITY_KINDS = frozenset({"position", "order", "balance", "account"})
MAX_LAG_MS = 250.0


def stream_request() -> bytes:
    """Every account, every kind, no snapshot: a subscriber that wants deltas only."""
    return trading_pb2.StreamUpdatesRequest(with_snapshot=False).SerializeToString()


def latency_row(
    target: str, subscribers: int, events: int, measured: dict[str, Any]
) -> dict[str, Any]:
    lat, last = measured["latency"], measured["last_subscriber"]
    # The gateway's own share: from its read of the upstream frame. For the bare server,
    # whose events start in-process, that is its whole latency.
    own = measured.get("from_receipt", lat)
    return {
        "target": target,
        "subscribers": subscribers,
        "events": events,
        "delivered": measured["delivered"],
        "expected": measured["expected"],
        "delivered_text": f"{measured['delivered']:,} / {measured['expected']:,}",
        "p50_ms": lat["p50_ms"],
        "p99_ms": lat["p99_ms"],
        "max_ms": lat["max_ms"],
        "last_p99_ms": last["p99_ms"],
        "own_p50_ms": own["p50_ms"],
        "own_p99_ms": own["p99_ms"],
        "server_cpu_us_per_message": measured.get("server_cpu_us_per_message"),
        "client_cpu_us_per_message": measured.get("client_cpu_us_per_message"),
    }


def cause_time(
    published: dict[tuple[str, int], list[int]],
    kind: str,
    entity: int,
    account_id: int,
    first_receipt: int,
) -> int | None:
    """The publish time of the latest simulator change to this entity (or, for balances and
    PnL, to this account) before the first subscriber received the delta."""
    times = published.get((kind, entity)) or published.get((kind, account_id)) or []
    earlier = [t for t in times if t <= first_receipt]
    return max(earlier) if earlier else None


async def gateway_fanout(
    ctx: Context, subscribers: int, events: int, rate: float
) -> dict[str, Any]:
    """Drive ``events`` simulator events at ``rate``/s and match every delta the subscribers
    received to the simulator's publish time of the entity change that caused it."""
    sim = ctx.stack.require_sim()
    gateway = ctx.stack.require_gateway()
    mark: list[int] = []
    cpu: list[float] = []

    async def produce() -> dict[str, Any]:
        mark.append(await sim.event_mark())
        cpu.append(cpu_seconds(gateway.pid))
        driven = await sim.drive_events(events, rate)
        # Resident memory while every subscriber is connected (scenario 6 reports it).
        driven["rss_mib"] = rss_mib(gateway.pid)
        cpu.append(await cpu_seconds_when_quiet(gateway.pid))
        return driven

    result, produced = await drivers.with_subscribers(
        ctx.workdir,
        gateway.target,
        STREAM,
        stream_request(),
        subscribers=subscribers,
        expect=0,
        mode="gateway",
        produce=produce,
        idle=1.0,
        metadata=list(gateway.metadata),
    )
    server_cpu = cpu[1] - cpu[0]
    published = await sim.publish_times_since(mark[0])
    every: list[int] = []
    from_receipt: list[int] = []
    last: list[int] = []
    by_kind: dict[str, list[int]] = {}
    unmatched = 0
    entity_deltas = 0
    # Balance deltas with no received_time come from the gateway's background REST refresh
    # of Tradovate's figures, not from a simulator event: counted apart, never matched.
    refreshed = {
        k for k, v in result["info"].items() if v[1] == "balance" and k not in result["stamps"]
    }
    for key, receipts in result["deltas"].items():
        if key in refreshed:
            continue
        account_id, kind, entity = result["info"][key]
        t0 = cause_time(published, kind, int(entity), int(account_id), min(receipts))
        if t0 is None:
            unmatched += len(receipts)
            continue
        latencies = [r - t0 for r in receipts]
        by_kind.setdefault(kind, []).extend(latencies)
        if kind in ENTITY_KINDS:
            entity_deltas += 1
            every.extend(latencies)
            last.append(max(receipts) - t0)
            received = result["stamps"].get(key)
            if received is not None:
                from_receipt.extend(r - received for r in receipts)
    delivered = sum(
        len(v)
        for k, v in result["deltas"].items()
        if result["info"][k][1] in ENTITY_KINDS and k not in refreshed
    )
    receipts = [r for v in result["deltas"].values() for r in v]
    window = (max(receipts) - min(receipts)) / 1e9 if receipts else 0.0
    return {
        "delivered": delivered,
        "receive_window_s": window,
        "delivered_all": sum(len(v) for v in result["deltas"].values()),
        "expected": entity_deltas * subscribers,
        "figure_refresh_deltas": sum(len(result["deltas"][k]) for k in refreshed),
        # Every message counts here (PnL deltas too), as every one is a write.
        "server_cpu_us_per_message": server_cpu / max(1, len(receipts)) * 1e6,
        # The subscriber process shares the 2 cores: what each message costs it.
        "client_cpu_us_per_message": result["client_cpu_s"] / max(1, len(receipts)) * 1e6,
        "unmatched": unmatched,
        "sim": produced,
        "latency": summarize_ns(every).to_json(),
        "from_receipt": summarize_ns(from_receipt).to_json(),
        "last_subscriber": summarize_ns(last).to_json(),
        "by_kind": {k: summarize_ns(v).to_json() for k, v in sorted(by_kind.items())},
        "latencies_ns_sample": sorted(every)[:: max(1, len(every) // 2000)],
        "raw": {"every": every, "from_receipt": from_receipt, "last": last, "by_kind": by_kind},
    }


def pooled(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Repeated runs of one side (gateway or bare) as one: counts summed, samples pooled."""
    if len(runs) == 1:
        return runs[0]
    raw: dict[str, list[int]] = {}
    by_kind: dict[str, list[int]] = {}
    for run in runs:
        for name, values in run["raw"].items():
            if name == "by_kind":
                for kind, latencies in values.items():
                    by_kind.setdefault(kind, []).extend(latencies)
            else:
                raw.setdefault(name, []).extend(values)
    out = dict(runs[-1])
    for name in ("delivered", "delivered_all", "expected", "unmatched"):
        if name in out:
            out[name] = sum(run[name] for run in runs)
    weights = [r.get("delivered_all", r["delivered"]) for r in runs]
    for name in ("server_cpu_us_per_message", "client_cpu_us_per_message"):
        cpu = [r.get(name) for r in runs]
        if all(c is not None for c in cpu) and sum(weights):
            out[name] = sum(c * w for c, w in zip(cpu, weights, strict=True)) / sum(weights)
    every = raw["every"]
    out["latency"] = summarize_ns(every).to_json()
    out["last_subscriber"] = summarize_ns(raw["last"]).to_json()
    if "from_receipt" in raw:
        out["from_receipt"] = summarize_ns(raw["from_receipt"]).to_json()
    if by_kind:
        out["by_kind"] = {k: summarize_ns(v).to_json() for k, v in sorted(by_kind.items())}
    out["latencies_ns_sample"] = sorted(every)[:: max(1, len(every) // 2000)]
    out["raw"] = {**raw, "by_kind": by_kind} if by_kind else raw
    return out


async def floor_max_rate(
    ctx: Context, rates: tuple[float, ...], seconds: float
) -> list[dict[str, Any]]:
    """The bare server publishing to one subscriber at rising rates."""
    rows = []
    for rate in rates:
        events = max(10, int(rate * seconds))
        measured = await floor.fanout(
            ctx.workdir,
            ctx.stack.floor_target,
            subscribers=1,
            events=events,
            rate=rate,
            event=ctx.shared.get("stream_event"),
        )
        elapsed = measured.get("publish_seconds") or seconds
        sustained = (
            measured["delivered"] == measured["expected"]
            and measured["latency"]["p99_ms"] <= MAX_LAG_MS
        )
        rows.append(
            {
                "target": "bare grpc.aio",
                "subscribers": 1,
                "offered_eps": events / max(elapsed, 1e-9),
                "delivered_eps": measured["delivered"] / max(elapsed, 1e-9),
                "delivered_fraction": measured["delivered"] / max(1, measured["expected"]),
                "p99_ms": measured["latency"]["p99_ms"],
                "sustained": sustained,
            }
        )
    return rows


async def run(ctx: Context, out: ScenarioResult) -> None:
    config = ctx.config
    gateway_ok = ctx.stack.gateway is not None and ctx.stack.sim is not None
    if gateway_ok:
        assert ctx.stack.sim is not None
        await ctx.stack.sim.set_latency(0.0, 0.0)
        ctx.shared["stream_event"] = await capture_event(ctx)
    else:
        out.notes.append(f"gateway not available ({ctx.stack.missing.get('gateway')}): floor only")
    for n in config.stream_subscribers:
        large, fewer = config.stream_events_large
        events = fewer if n >= large else config.stream_events
        repeats = max(1, config.stream_repeats)
        mine_runs: list[dict[str, Any]] = []
        bare_runs: list[dict[str, Any]] = []
        run_ratios: list[float] = []
        burst = 1.0
        # Gateway and bare runs alternate, so a drift in the machine's state hits both.
        for _ in range(repeats):
            mine_run: dict[str, Any] | None = None
            if gateway_ok:
                mine_run = await gateway_fanout(ctx, n, events, config.stream_rate)
                mine_runs.append(mine_run)
                # The bare server sends as many messages as the gateway did (on average per
                # event: 2.5 alternates bursts of 2 and 3).
                burst = max(1.0, mine_run["delivered_all"] / max(1, events * n))
            bare_run = await floor.fanout(
                ctx.workdir,
                ctx.stack.floor_target,
                subscribers=n,
                events=events,
                rate=config.stream_rate,
                event=ctx.shared.get("stream_event"),
                server_pid=ctx.stack.floor.pid,
                burst=burst,
            )
            bare_runs.append(bare_run)
            if mine_run is not None:
                run_ratios.append(
                    ratio(mine_run["from_receipt"]["p99_ms"], bare_run["latency"]["p99_ms"])
                )
        events *= repeats
        row: dict[str, Any] | None = None
        if mine_runs:
            mine = pooled(mine_runs)
            ctx.shared.setdefault("stream_rss", {})[("gateway", n)] = mine["sim"]["rss_mib"]
            row = latency_row("gateway", n, events, mine)
            row["messages_per_event"] = mine["delivered_all"] / max(1, events * n)
            if n == 1:
                ctx.shared["deltas_per_action"] = mine["delivered"] / max(1, events)
            out.samples[f"gateway:{n}"] = mine["latencies_ns_sample"]
            kinds = ", ".join(
                f"{k} p50 {v['p50_ms']:.2f} / p99 {v['p99_ms']:.2f} ms (n={v['n']})"
                for k, v in mine["by_kind"].items()
            )
            out.notes.append(
                f"gateway, {n} subscriber(s): {row['messages_per_event']:.1f} deltas per event"
                f" per subscriber; by kind: {kinds}; deltas with no matching simulator change:"
                f" {mine['unmatched']}"
            )
            if repeats > 1:
                out.notes.append(
                    f"{n} subscriber(s), {repeats} alternating runs of {events // repeats}"
                    " events each, pooled in the table; the gateway's p99 from its read ÷ the"
                    " bare p99, run by run: " + ", ".join(f"{r:.2f}x" for r in run_ratios)
                )
        bare = pooled(bare_runs)
        bare_row = latency_row("bare grpc.aio", n, events, bare)
        # Pooled, like the gateway's: each run's burst matched its own gateway run.
        bare_row["messages_per_event"] = bare["delivered"] / max(1, events * n)
        out.samples[f"floor:{n}"] = bare["latencies_ns_sample"]
        ctx.shared.setdefault("stream_rss", {})[("floor", n)] = bare["rss_mib"]
        if row is not None:
            row["ratio_p99"] = ratio(row["p99_ms"], bare_row["p99_ms"])
            row["ratio_own_p99"] = ratio(row["own_p99_ms"], bare_row["p99_ms"])
            # The bare server's events start in-process, so its twin is the gateway's time
            # from reading the upstream frame; the end-to-end ratio is shown beside it.
            row["target_ok"] = row["ratio_own_p99"] <= 1.25
            out.rows.append(row)
        out.rows.append(bare_row)
    rate_rows = await floor_max_rate(ctx, config.floor_rate_steps, config.max_rate_seconds)
    if gateway_ok:
        rate_rows = await gateway_max_rate(ctx) + rate_rows
    # The maximum-rate table is its own section of the report.
    ctx.run.scenario("stream_rate").rows = rate_rows
    large, fewer = config.stream_events_large
    out.notes.append(
        f"{config.stream_events} events x {config.stream_repeats} alternating runs ({fewer}"
        f" events per run with {large}+ subscribers) at {config.stream_rate:g}/s per"
        " subscriber count; for the gateway an event is one random"
        " trading action in the simulator (an order, fill or cancel: several entity changes and"
        " deltas). All subscribers share one client process and one channel."
    )


async def capture_event(ctx: Context) -> trading_pb2.StreamUpdate | None:
    """One real position delta from the gateway, so the bare fan-out sends the same message."""
    sim = ctx.stack.require_sim()
    gateway = ctx.stack.require_gateway()
    async with grpc.aio.insecure_channel(gateway.target) as channel:
        stream: grpc.aio.UnaryStreamMultiCallable[
            trading_pb2.StreamUpdatesRequest, trading_pb2.StreamUpdate
        ] = channel.unary_stream(
            STREAM,
            request_serializer=lambda m: m.SerializeToString(),
            response_deserializer=trading_pb2.StreamUpdate.FromString,
        )
        call = stream(
            trading_pb2.StreamUpdatesRequest(with_snapshot=False),
            metadata=tuple(gateway.metadata) or None,
            timeout=30,
        )
        driver: asyncio.Task[dict[str, Any]] | None = None
        try:
            async for update in call:
                kind = update.WhichOneof("payload")
                if kind in ("subscription", "snapshot_complete") and driver is None:
                    driver = asyncio.ensure_future(sim.drive_events(5, 50.0))
                if kind == "position":
                    return update
        except grpc.aio.AioRpcError:
            return None
        finally:
            call.cancel()
            if driver is not None:
                await asyncio.gather(driver, return_exceptions=True)
    return None


async def gateway_max_rate(ctx: Context) -> list[dict[str, Any]]:
    """Random trading actions at rising rates to one subscriber. Expected deltas per action
    come from the unhurried 1-subscriber run; a rate is sustained when at least 95 % of them
    arrived and their p99 latency stayed within MAX_LAG_MS."""
    per_action = float(ctx.shared.get("deltas_per_action", 0.0))
    rows = []
    for rate in ctx.config.max_rate_steps:
        actions = max(10, int(rate * ctx.config.max_rate_seconds))
        mine = await gateway_fanout(ctx, 1, actions, rate)
        produced = mine["sim"]
        seconds = max(float(produced.get("seconds", 0.0)), 1e-9)
        window = max(seconds, mine["receive_window_s"])
        p99 = mine["latency"]["p99_ms"]
        expected = actions * per_action
        fraction = mine["delivered"] / expected if expected else math.nan
        rows.append(
            {
                "target": "gateway",
                "subscribers": 1,
                "offered_eps": float(produced.get("props", 0)) / seconds,
                "actions_per_s": actions / seconds,
                "delivered_eps": mine["delivered"] / window,
                "delivered_fraction": fraction,
                "p99_ms": p99,
                "sustained": bool(p99 is not None and p99 <= MAX_LAG_MS and fraction >= 0.95),
            }
        )
    return rows
